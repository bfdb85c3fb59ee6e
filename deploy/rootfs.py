"""Assemble the kdns image's root filesystem: what `kdns` runs with, and nothing else.

The Dockerfile's build stage runs this after installing kdns into a venv; the final stage is the
result alone (FROM scratch), so the image has no shell, package manager, pip or compiler. Files keep
their paths, so the venv's pyvenv.cfg and the interpreter's own search paths hold as they are:

* the venv (kdns and its dependencies) and the interpreter its python3 points at, with the symlinks;
* the standard library, without test suites, IDLE, tkinter, ensurepip, lib2to3 and help texts, and
  without the extension modules of libraries kdns never loads (sqlite, readline, curses, dbm, nis);
* the shared libraries all these load (ldd), and libgcc_s, which glibc opens itself when a thread
  ends through pthread_exit;
* the CA bundle (`endpoint https://...` without `tls` verifies against it) and OpenSSL's config;
* /etc/passwd and /etc/group naming 65532 (distroless's `nonroot`, the uid CoreDNS's image runs as),
  and /etc/nsswitch.conf (files before DNS for host names);
* for every Debian package a file comes from, its copyright file and its dpkg record under
  /var/lib/dpkg/status.d/ (distroless's layout, which image scanners read), and os-release.

Byte code is compiled here, because the container cannot write it at run time: for the whole venv and
for the standard library modules kdns imports; the rest of the standard library ships as source only.
The .pyc files are unchecked-hash based (PEP 552), so whatever mtime a layer gives a source file, its
byte code stays valid. Extension modules from wheels lose their debug symbols (most of their size).

Last, the new root is tried: chroot into it and import every kdns module.

usage: python3 deploy/rootfs.py VENV DEST
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import os
import py_compile
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Parts of the standard library no server process loads: tests, the IDE, the GUI toolkit, the pip
# bootstrapper, 2to3, distutils (for building packages), pydoc's help topics, the demo modules, and
# the packages whose extension modules DYNLOAD_SKIP leaves out. Also config-*/, which holds what
# compiling extensions needs (Makefile, static libpython): it came with python3-dev.
STDLIB_SKIP = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "turtle.py",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "__phello__",
        "__hello__.py",
        "sqlite3",
        "curses",
        "distutils",
        "lib-dynload",  # copied on its own, without DYNLOAD_SKIP
    }
)
# Extension modules for tests and for libraries kdns does not use; each would bring its own
# shared libraries (libsqlite3, libreadline, libncurses, libdb, libnsl).
DYNLOAD_SKIP = re.compile(r"(_test|_xxtest|_ctypes_test|xxlimited|_sqlite3|readline|_curses|_dbm|_gdbm|nis)")

# Imports every kdns module (the plugins are imported lazily at run time) and the `fast` extra's
# event loop, then reports where the standard library is and which of its modules got loaded.
PROBE = """
import importlib, json, pkgutil, sys, sysconfig
import kdns, uvloop
for m in pkgutil.walk_packages(kdns.__path__, "kdns."):
    if not m.name.endswith(".__main__"):
        importlib.import_module(m.name)
files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
print(json.dumps({"stdlib": sysconfig.get_paths()["stdlib"], "loaded": sorted(f for f in files if f)}))
"""

PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
# Without this file glibc asks DNS before /etc/hosts for host names, and does not fall back to the
# file on NXDOMAIN: kubelet's /etc/hosts (localhost, the pod's own name) must come first.
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"


class Rootfs:
    """A directory that mirrors chosen paths of this system (same paths, symlinks kept)."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.files: set[Path] = set()  # regular files copied, by their path on this system

    def at(self, path: Path) -> Path:
        return self.dest / path.relative_to("/")

    def add(self, path: Path) -> None:
        """Copy one path (a directory without its contents) to the same place.

        Symlinks on the way are copied as symlinks, with what they point at; files are written at
        their real path only, so nothing is ever written through a link (an absolute one would lead
        out of the new root).
        """
        real_parent = Path("/")
        for part in path.parent.parts[1:]:
            self._copy(real_parent / part)
            real_parent = Path(os.path.realpath(real_parent / part))
        self._copy(real_parent / path.name)

    def _copy(self, path: Path) -> None:
        """Copy `path`, whose parent is free of symlinks and already copied."""
        if os.path.lexists(self.at(path)):
            return
        if path.is_symlink():
            target = os.readlink(path)
            os.symlink(target, self.at(path))
            self.add(Path(os.path.normpath(path.parent / target)))
        elif path.is_dir():
            self.at(path).mkdir()
            shutil.copystat(path, self.at(path))
        else:
            shutil.copy2(path, self.at(path))
            self.files.add(path)

    def add_tree(self, top: Path, skip: Callable[[Path], bool] = lambda _: False) -> None:
        """A directory with its contents, but without __pycache__ (compiled afresh) and `skip`ped paths."""
        self.add(top)
        for root, dirs, names in os.walk(top):
            here = Path(root)
            dirs[:] = [d for d in dirs if d != "__pycache__" and not skip(here / d)]
            for path in (here / name for name in dirs + names):
                if not skip(path):
                    self.add(path)

    def write(self, path: str, text: str) -> None:
        """A file of its own, in directories this system may not have (they get mode 755)."""
        file = Path(path)
        self.add(next(d for d in file.parents if d.exists()))
        self.at(file.parent).mkdir(mode=0o755, parents=True, exist_ok=True)
        self.at(file).write_text(text)


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def shared_libraries(binary: Path) -> set[Path]:
    """What the dynamic linker loads for `binary` (ldd lists the whole closure)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
    return {Path(p) for p in re.findall(r"(/\S+) \(0x", out)}


def ldconfig_path(soname: str) -> Path:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    found = re.search(rf"^\s*{re.escape(soname)} \(.*\) => (\S+)$", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"rootfs.py: {soname} not found by ldconfig")
    return Path(found.group(1))


def compile_pyc(fs: Rootfs, sources: list[Path]) -> None:
    for src in sources:
        py_compile.compile(
            str(fs.at(src)),
            cfile=str(fs.at(Path(importlib.util.cache_from_source(str(src))))),
            dfile=str(src),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def debian_records(fs: Rootfs) -> None:
    """Copyright file and dpkg record of each package a copied file comes from.

    dpkg's file lists may name a directory from before the merged /usr (/lib/...), so their paths
    are compared with the directory resolved (the file itself not: a -dev package's libz.so is a
    symlink to zlib1g's file).
    """
    owner: dict[str, str] = {}
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        for line in listing.read_text().splitlines():
            owner[os.path.join(os.path.realpath(os.path.dirname(line)), os.path.basename(line))] = (
                listing.stem
            )
    packages = {owner[p] for p in map(os.path.realpath, fs.files) if p in owner}
    for pkg in sorted(packages):
        record = subprocess.run(["dpkg-query", "-s", pkg], capture_output=True, text=True, check=True).stdout
        fs.write(f"/var/lib/dpkg/status.d/{pkg.split(':')[0]}", record)
        copyright_file = Path(f"/usr/share/doc/{pkg.split(':')[0]}/copyright")
        if copyright_file.is_file():
            fs.add(copyright_file)


def main(venv: Path, dest: Path) -> None:
    dest.mkdir(mode=0o755)
    fs = Rootfs(dest)
    python = venv / "bin" / "python3"
    # From /, so that `import kdns` finds the installed package, not a source tree in the cwd.
    probe = json.loads(
        subprocess.run(
            [str(python), "-c", PROBE], stdout=subprocess.PIPE, text=True, check=True, cwd="/"
        ).stdout
    )
    stdlib = Path(probe["stdlib"])

    fs.add_tree(venv, skip=lambda p: p.parent == venv / "bin" and p.name.lower().startswith("activate"))
    fs.add(python)  # the symlink chain down to the interpreter binary
    fs.add_tree(
        stdlib, skip=lambda p: p.parent == stdlib and (p.name in STDLIB_SKIP or p.name.startswith("config-"))
    )
    fs.add_tree(stdlib / "lib-dynload", skip=lambda p: DYNLOAD_SKIP.match(p.name) is not None)

    venv_elves = [f for f in fs.files if f.is_relative_to(venv) and is_elf(f)]
    libraries: set[Path] = set()
    for elf in [f for f in fs.files if is_elf(f)]:
        libraries |= shared_libraries(elf)
    for lib in libraries:
        fs.add(lib)
    fs.add(ldconfig_path("libgcc_s.so.1"))
    subprocess.run(["strip", "--strip-unneeded", *(str(fs.at(f)) for f in venv_elves)], check=True)

    paths = ssl.get_default_verify_paths()
    if paths.openssl_cafile is None or not Path(paths.openssl_cafile).is_file():
        raise SystemExit("rootfs.py: no CA bundle (install ca-certificates)")
    fs.add(Path(paths.openssl_cafile))
    fs.add(Path(paths.openssl_cafile).parent / "openssl.cnf")
    fs.add(Path("/etc/os-release"))
    fs.write("/etc/passwd", PASSWD)
    fs.write("/etc/group", GROUP)
    fs.write("/etc/nsswitch.conf", NSSWITCH)
    debian_records(fs)

    used_stdlib = [Path(f) for f in probe["loaded"] if f.endswith(".py") and Path(f).is_relative_to(stdlib)]
    compile_pyc(fs, [f for f in used_stdlib if f in fs.files])
    if not compileall.compile_dir(
        fs.at(venv),
        ddir=str(venv),
        quiet=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    ):
        raise SystemExit("rootfs.py: byte-compiling the venv failed")

    # The new root on its own: every kdns module imports with only what was copied.
    subprocess.run(["chroot", str(dest), str(python), "-c", PROBE], check=True, stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.rsplit("usage: ", 1)[1] if __doc__ else "usage: rootfs.py VENV DEST")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
