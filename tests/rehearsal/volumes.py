"""Volumes written the way kubelet writes configMap, secret and projected volumes (AtomicWriter).

The files live in a timestamped directory `..2026_11_22_05_00_00.123456789`; `..data` is a symlink
to it, and each visible name is a symlink `NAME -> ..data/NAME`. An update writes a new timestamped
directory, points `..data_tmp` at it, renames that over `..data` (atomic), then removes the old
directory. So a reader that holds the old path sees either the old or the new file, never a mix, and
the inode behind `Corefile` changes on every edit (why CoreDNS's reload polls the content).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path


class AtomicVolume:
    """A volume directory; `write()` replaces its whole content as kubelet does on an update."""

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode  # kubelet's defaultMode for configMap and projected volumes (420)
        self.path.mkdir(parents=True, exist_ok=True)
        self.path.chmod(0o755)

    def write(self, files: Mapping[str, str | bytes]) -> Path:
        old = self.data_dir()
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
        new = self.path / stamp
        new.mkdir(mode=0o755)
        for name, content in files.items():
            f = new / name
            f.write_bytes(content.encode() if isinstance(content, str) else content)
            f.chmod(self.mode)
        tmp = self.path / "..data_tmp"
        tmp.symlink_to(stamp)
        os.rename(tmp, self.path / "..data")
        for name in files:
            link = self.path / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if old is not None:
            shutil.rmtree(old)
        return new

    def data_dir(self) -> Path | None:
        """The directory `..data` points at now (None before the first write)."""
        data = self.path / "..data"
        return self.path / os.readlink(data) if data.is_symlink() else None
