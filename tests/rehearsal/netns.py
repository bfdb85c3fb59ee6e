"""Network namespaces for the rehearsal: a "node" and a "pod" joined by a veth pair.

Both namespaces are made by the test and deleted after it, so every address used lives only inside
them (a link-local /30: the node end and the pod's eth0); the machine's own network is not touched.
Python code runs inside a namespace through `NetNs.call`: a fresh thread setns()es into it, and
sockets (and threads) it creates stay there, which is how the test API server and the fake upstream
resolver are placed and how the test queries the pod from the node, as kubelet's probes do.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000  # <sched.h>; os.setns arrived only in Python 3.12
_libc = ctypes.CDLL(None, use_errno=True)


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=check)


class NetNs:
    """A named network namespace (`ip netns add`), with loopback up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    def create(self) -> NetNs:
        _run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        _run("ip", "netns", "del", self.name, check=False)

    def ip(self, *args: str) -> str:
        return _run("ip", "-n", self.name, *args).stdout

    def sysctl(self, key: str) -> str:
        return _run("ip", "netns", "exec", self.name, "sysctl", "-n", key).stdout.strip()

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """fn(*args, **kw) on a thread inside this namespace; its result or its exception."""
        out: dict[str, Any] = {}

        def target() -> None:
            try:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {self.path}: {os.strerror(err)}")
                finally:
                    os.close(fd)
                out["value"] = fn(*args, **kw)
            except BaseException as e:
                out["error"] = e

        t = threading.Thread(target=target, name=f"netns-{self.name}", daemon=True)
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        return out["value"]  # type: ignore[no-any-return]


def veth(node: NetNs, pod: NetNs, node_ip: str, pod_ip: str, prefix: int = 30) -> None:
    """Join node and pod: `veth-pod` on the node side, `eth0` in the pod, as a CNI plugin would."""
    node.ip("link", "add", "veth-pod", "type", "veth", "peer", "name", "eth0", "netns", pod.name)
    node.ip("addr", "add", f"{node_ip}/{prefix}", "dev", "veth-pod")
    pod.ip("addr", "add", f"{pod_ip}/{prefix}", "dev", "eth0")
    node.ip("link", "set", "veth-pod", "up")
    pod.ip("link", "set", "eth0", "up")


def can_create() -> str | None:
    """None when this machine lets us make a network namespace, else why not."""
    probe = NetNs(f"kdns-probe-{os.getpid()}")
    try:
        probe.create()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"cannot create a network namespace: {getattr(e, 'stderr', '') or e}"
    finally:
        probe.delete()
    return None
