"""What `docker build .` sends: the source the Dockerfile builds from, no local builds or caches.

.dockerignore is an allow-list. This copies the build context into an image with buildah (which
reads .dockerignore as docker does) and lists it: the package's source and metadata are there, and
nothing that a developer's checkout or CI's clean clone grows (.venv, .git, dist/, the C extension
built in place by `pip install -e`, __pycache__) gets in, so the image never depends on them.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rehearsal.image import ROOT

BUILDAH = ("buildah", "--storage-driver", "vfs")


@pytest.fixture
def context_files(rehearsal_machine: None, tmp_path: Path) -> Iterator[set[str]]:
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM scratch\nCOPY . /context/\n")
    iid, out = tmp_path / "iid", tmp_path / "dir"
    build = ["bud", "--quiet", "--isolation", "chroot", "--layers=false", "--iidfile", str(iid)]
    subprocess.run([*BUILDAH, *build, "-f", str(containerfile), str(ROOT)], check=True, capture_output=True)
    image = iid.read_text().strip()
    try:
        subprocess.run([*BUILDAH, "push", "--quiet", image, f"dir:{out}"], check=True, capture_output=True)
        (layer,) = json.loads((out / "manifest.json").read_text())["layers"]
        with tarfile.open(out / layer["digest"].split(":", 1)[1]) as tar:
            names = [m.name.removeprefix("./") for m in tar.getmembers()]
        yield {n.removeprefix("context/") for n in names if n.startswith("context/")}
    finally:
        subprocess.run([*BUILDAH, "rmi", image], check=False, capture_output=True, timeout=120)


def test_build_context_is_the_source_without_builds_or_caches(context_files: set[str]) -> None:
    for needed in ("pyproject.toml", "setup.py", "README.md", "kdns/cli.py", "kdns/server/_hotpath.c"):
        assert needed in context_files, f"{needed} is not in the build context"
    assert "deploy/rootfs.py" in context_files
    assert (ROOT / ".venv").exists() and any(ROOT.glob("kdns/server/_hotpath*.so")), "nothing to leave out"
    for name in context_files:
        top = name.split("/", 1)[0]
        assert top not in {".venv", ".git", "dist", "tests", "bench", "build"}, name
        assert not name.endswith(".so") and "__pycache__" not in name.split("/"), name
