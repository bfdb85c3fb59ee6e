"""The kdns image for the rehearsal: built as deploy/README.md says (or reused), unpacked with umoci.

BUILD_COMMAND is the README's daemonless build, word for word (tests/deploy/test_readme.py checks):
buildah builds the Dockerfile from the source tree alone, FROM a local Debian base. That takes
about a minute, plus a minute or two on a machine that has not yet cached the base, so it happens
once per test session; a CI step that already built an OCI archive can hand it over with
KDNS_IMAGE_OCI_ARCHIVE=/path/to/kdns-oci.tar.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_COMMAND = ("deploy/build-image.sh", "-o", "dist/kdns-image.tar", "--oci-archive", "dist/kdns-oci.tar")
BUILT_ARCHIVE = ROOT / BUILD_COMMAND[-1]
ARCHIVE_ENV = "KDNS_IMAGE_OCI_ARCHIVE"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Image:
    """An unpacked image: its tag, its OCI config, and a rootfs that runc bundles can point at."""

    tag: str
    config: dict[str, Any]  # the OCI image config's "config" (User, Entrypoint, Cmd, Env, ...)
    layers: list[Path]  # the layer blobs, as the archive stores them (buildah: gzip)
    rootfs: Path
    archive: Path
    build_seconds: float | None  # None when an existing archive was reused
    unpack_seconds: float

    def base_spec(self) -> dict[str, Any]:
        """The OCI runtime spec umoci wrote for the image (defaults before kubelet's settings)."""
        return json.loads((self.rootfs.parent / "config.json").read_text())  # type: ignore[no-any-return]

    def size(self) -> int:
        """Bytes of the layers uncompressed: the size `docker images` and `buildah images` show."""
        total = 0
        for layer in self.layers:
            with open(layer, "rb") as raw:
                gzipped = raw.read(2) == b"\x1f\x8b"
            with gzip.open(layer) if gzipped else open(layer, "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
        return total

    def stored_size(self) -> int:
        """Bytes of the layers as the archive stores them (buildah: gzip, as a registry serves them)."""
        return sum(layer.stat().st_size for layer in self.layers)


def build_archive(log: Path) -> float:
    """Run BUILD_COMMAND; the seconds it took. Its output goes to `log` (shown on failure)."""
    start = time.monotonic()
    with open(log, "wb") as out:
        result = subprocess.run(
            BUILD_COMMAND, stdout=out, stderr=subprocess.STDOUT, timeout=1200, cwd=ROOT, check=False
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
    manifest = _blob(layout, entry["digest"])
    config = _blob(layout, manifest["config"]["digest"])["config"]
    layers = [layout / "blobs" / Path(*layer["digest"].split(":", 1)) for layer in manifest["layers"]]
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
        layers=layers,
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
    seconds = build_archive(workdir / "build.log")
    return unpack(BUILT_ARCHIVE, workdir, seconds)


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
