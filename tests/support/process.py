"""Run the real `kdns` process (python -m kdns) with a Corefile, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class KdnsProcess:
    """A kdns child process. Use as a context manager, or call start()/stop()."""

    def __init__(
        self,
        corefile: str,
        workdir: Path,
        port: int,
        *,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wait_tcp: bool = True,
        name: str = "Corefile",
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.corefile_path = workdir / name
        self.corefile_path.write_text(corefile)
        self.log_path = workdir / f"kdns-{port}.log"
        self.extra_args = extra_args
        self.env = env
        self.wait_tcp = wait_tcp
        self.prefix = prefix  # a command that runs kdns elsewhere, e.g. `ip netns exec NAME`
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> KdnsProcess:
        env = dict(os.environ)
        env.update(self.env or {})
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "kdns", "-conf", str(self.corefile_path), *self.extra_args],
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if self.wait_tcp:
            self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kdns exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"kdns did not listen on {self.port} within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> KdnsProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_kdns(
    args: list[str], timeout: float = 20.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run kdns to completion (for -version, -plugins, bad Corefiles)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "kdns", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin,
    )
