"""One container run by runc with the restrictions containerd's CRI derives from kubeadm's pod spec.

kubeadm's coredns container (deploy/coredns.yaml) has capabilities drop ALL + add NET_BIND_SERVICE,
allowPrivilegeEscalation false, readOnlyRootFilesystem true, no runAsUser (the image's USER applies),
and a 170Mi memory limit. containerd turns that into an OCI spec with bounding = effective =
permitted = {NET_BIND_SERVICE}, no inheritable or ambient capabilities, no_new_privs, a read-only
root, the image's ENTRYPOINT followed by the container's args, and bind mounts for the volumes,
/etc/resolv.conf, /etc/hosts, /etc/hostname and /dev/termination-log (read-only with a read-only root).
This module starts from umoci's config.json for the image and applies exactly that.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.rehearsal.image import Image

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str) -> int:
    """A Kubernetes memory quantity in bytes ("170Mi" → 178257920); binary suffixes only."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    if not m:
        raise ValueError(f"unsupported quantity {text!r}")
    return int(m.group(1)) * _UNITS.get(m.group(2) or "", 1)


@dataclass(frozen=True)
class Mount:
    destination: str
    source: Path
    readonly: bool = True


def kubelet_spec(
    image: Image,
    container: dict[str, Any],
    *,
    env: list[str],
    mounts: list[Mount],
    hostname: str,
    netns: str | None,
) -> dict[str, Any]:
    """The image as containerd would run the Deployment's `container` (a dict from the YAML).

    `env` is the image's environment plus what kubelet adds; `netns` a namespace to join (None: a new one).
    """
    sc = container["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"], "kubeadm drops every capability"
    caps = [f"CAP_{c}" for c in sc["capabilities"]["add"]]
    spec = copy.deepcopy(image.base_spec())
    proc = spec["process"]
    proc["terminal"] = False
    proc["args"] = [*image.config["Entrypoint"], *container["args"]]  # no `command`: ENTRYPOINT stays
    proc["env"] = env
    proc["capabilities"] = {
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
        "inheritable": [],
        "ambient": [],
    }
    proc["noNewPrivileges"] = not sc["allowPrivilegeEscalation"]
    spec["root"] = {"path": str(image.rootfs), "readonly": bool(sc["readOnlyRootFilesystem"])}
    spec["hostname"] = hostname
    spec["mounts"] = [
        *spec["mounts"],
        *(
            {
                "destination": m.destination,
                "type": "bind",
                "source": str(m.source),
                "options": ["rbind", "rprivate", "ro" if m.readonly else "rw"],
            }
            for m in mounts
        ),
    ]
    spaces = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
    spaces.append({"type": "network", "path": netns} if netns else {"type": "network"})
    spec["linux"]["namespaces"] = spaces
    spec["linux"]["resources"] = {"memory": {"limit": quantity(container["resources"]["limits"]["memory"])}}
    return spec


class Container:
    """`runc run` in the foreground (so its exit status is the container's), state in its own root."""

    def __init__(self, cid: str, bundle: Path, state_root: Path) -> None:
        self.cid = cid
        self.bundle = bundle
        self.state_root = state_root
        self.log_path = bundle / "container.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _runc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runc", "--root", str(self.state_root), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def start(self, spec: dict[str, Any]) -> Container:
        self.bundle.mkdir(parents=True, exist_ok=True)
        (self.bundle / "config.json").write_text(json.dumps(spec, indent=1))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["runc", "--root", str(self.state_root), "run", "--bundle", str(self.bundle), self.cid],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while self.running() and self._runc("state", self.cid, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"runc did not create {self.cid}:\n{self.logs()}")
            time.sleep(0.05)
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pid(self) -> int:
        """The container's init process (kdns itself) as the host sees it."""
        return int(json.loads(self._runc("state", self.cid).stdout)["pid"])

    def proc_status(self) -> dict[str, str]:
        lines = Path(f"/proc/{self.pid()}/status").read_text().splitlines()
        return {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}

    def kill(self, signal: str) -> None:
        self._runc("kill", self.cid, signal)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._runc("kill", self.cid, "KILL")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(20)
        self._runc("delete", "--force", self.cid, check=False)
