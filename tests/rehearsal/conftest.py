"""Fixtures for the rehearsal: the machine check, the image (once per session), the running pod."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.rehearsal import netns
from tests.rehearsal.image import Image, obtain
from tests.rehearsal.pod import KindPod

TOOLS = ("buildah", "mmdebstrap", "umoci", "runc", "ip")


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "the rehearsal needs root (runc, network namespaces)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {' '.join(missing)} (make debs installs them)"
    return netns.can_create()


@pytest.fixture(scope="session")
def rehearsal_machine() -> None:
    """Skip only where the machine cannot run containers; CI (CI=true) must run the rehearsal."""
    reason = _cannot_run()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kind-swap rehearsal, but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def kdns_image(rehearsal_machine: None, tmp_path_factory: pytest.TempPathFactory) -> Image:
    image = obtain(tmp_path_factory.mktemp("image"))
    built = f"built in {image.build_seconds:.0f}s" if image.build_seconds is not None else "reused"
    print(f"\nkdns image {image.tag}: {built}, unpacked in {image.unpack_seconds:.0f}s")
    return image


@pytest.fixture(scope="module")
def kind_pod(kdns_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KindPod]:
    """kdns running as kubelet would run it, with kind's Corefile; the API server not yet started."""
    pod = KindPod(kdns_image, tmp_path_factory.mktemp("pod"))
    try:
        yield pod.start()
    finally:
        pod.stop()
        logs = pod.container.logs()
        if logs:
            print(f"\n--- kdns container log ---\n{logs[-6000:]}")
