"""The kdns image for the rehearsal: built by deploy/build-image.sh (or reused), unpacked with umoci.

Building takes about a minute (plus ~30 s for the Debian base on a machine that has not cached it),
so it happens once per test session; a CI step that already built an OCI archive can hand it over
with KDNS_IMAGE_OCI_ARCHIVE=/path/to/kdns-oci.tar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "build-image.sh"
ARCHIVE_ENV = "KDNS_IMAGE_OCI_ARCHIVE"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Image:
    """An unpacked image: its tag, its OCI config, and a rootfs that runc bundles can point at."""

    tag: str
    config: dict[str, Any]  # the OCI image config's "config" (User, Entrypoint, Cmd, Env, ...)
    rootfs: Path
    archive: Path
    build_seconds: float | None  # None when an existing archive was reused
    unpack_seconds: float

    def base_spec(self) -> dict[str, Any]:
        """The OCI runtime spec umoci wrote for the image (defaults before kubelet's settings)."""
        return json.loads((self.rootfs.parent / "config.json").read_text())  # type: ignore[no-any-return]


def build_archive(dest: Path, log: Path) -> float:
    """Run the build script; the seconds it took. Its output goes to `log` (shown on failure)."""
    start = time.monotonic()
    with open(log, "wb") as out:
        result = subprocess.run(
            [str(BUILD_SCRIPT), "--oci-archive", str(dest), "--python", sys.executable],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1200,
            cwd=ROOT,
        )
    if result.returncode != 0:
        raise RuntimeError(f"build-image.sh failed ({result.returncode}):\n{log.read_text(errors='replace')}")
    return time.monotonic() - start


def _blob(layout: Path, digest: str) -> dict[str, Any]:
    algo, hexdigest = digest.split(":", 1)
    return json.loads((layout / "blobs" / algo / hexdigest).read_text())  # type: ignore[no-any-return]


def unpack(archive: Path, workdir: Path, build_seconds: float | None) -> Image:
    """Untar the OCI archive into a layout, read its config, `umoci unpack` it into workdir/bundle."""
    start = time.monotonic()
    layout = workdir / "oci"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True, timeout=300)
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    tag = entry["annotations"][REF_NAME]
    config = _blob(layout, _blob(layout, entry["digest"])["config"]["digest"])["config"]
    bundle = workdir / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return Image(
        tag=tag,
        config=config,
        rootfs=bundle / "rootfs",
        archive=archive,
        build_seconds=build_seconds,
        unpack_seconds=time.monotonic() - start,
    )


def obtain(workdir: Path) -> Image:
    """The image: the archive named by KDNS_IMAGE_OCI_ARCHIVE, or a fresh build."""
    given = os.environ.get(ARCHIVE_ENV)
    if given:
        return unpack(Path(given), workdir, None)
    archive = workdir / "kdns-oci.tar"
    seconds = build_archive(archive, workdir / "build.log")
    return unpack(archive, workdir, seconds)


def resolve_in(rootfs: Path, path: str) -> Path:
    """Follow symlinks as the container sees them (absolute targets are inside rootfs)."""
    current = path
    for _ in range(40):
        host = rootfs / current.lstrip("/")
        if not host.is_symlink():
            return host
        target = os.readlink(host)
        current = (
            target
            if target.startswith("/")
            else os.path.normpath(os.path.join(os.path.dirname(current), target))
        )
    raise RuntimeError(f"symlink loop at {path}")
