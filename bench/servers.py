"""The processes a benchmark runs on loopback: kdns, knotd and the test API server, each pinned to
one CPU with taskset, plus the probes the figures need (first correct answer, RSS from /proc)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query

ROOT = Path(__file__).resolve().parents[1]


class Proc:
    """A child process pinned to the CPU list `cpu` (None: unpinned), logging to `log`.

    stop() ends it by its own PID (never by name: other people's servers may run alongside)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cpu: str | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        pin = ["taskset", "-c", cpu] if cpu is not None else []
        full_env = {**os.environ, **(env or {})}
        self._log_file = open(log, "wb")  # noqa: SIM115 - lives as long as the process
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [*pin, *argv], stdout=self._log_file, stderr=subprocess.STDOUT, env=full_env, cwd=cwd
        )

    @property
    def pid(self) -> int:
        return self.popen.pid  # taskset execs the program, so this is the server's own PID

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log_file.close()


def python_env(root: Path = ROOT) -> dict[str, str]:
    """Run the kdns (and tests.support) of the checkout at `root` without installing it: PYTHONPATH
    comes before the editable install's finder, which Python consults last."""
    return {"PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"}


def start_kdns(
    workdir: Path,
    corefile: str,
    cpu: str | None,
    name: str = "kdns",
    extra_args: Sequence[str] = (),
    root: Path = ROOT,
    python: str = sys.executable,
) -> Proc:
    """kdns from the checkout at `root` (another one than this: bench/churn.py's --kdns-root)."""
    path = workdir / f"{name}.Corefile"
    path.write_text(corefile)
    argv = [python, "-m", "kdns", "-conf", str(path), "-quiet", *extra_args]
    return Proc(name, argv, workdir / f"{name}.log", cpu, env=python_env(root), cwd=workdir)


def knot_config(workdir: Path, zones: dict[str, Path], port: int) -> str:
    """One UDP and one TCP worker: knotd gets one core, as kdns does (issue #4 compares per core)."""
    zone_items = "".join(f'  - domain: {name}\n    file: "{path}"\n' for name, path in zones.items())
    return (
        "server:\n"
        f'    rundir: "{workdir}"\n'
        f"    listen: 127.0.0.1@{port}\n"
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "log:\n"
        "  - target: stderr\n"
        "    any: warning\n"
        "database:\n"
        f'    storage: "{workdir}/knot-db"\n'
        "template:\n"
        "  - id: default\n"
        "    journal-content: none\n"
        "    zonefile-sync: -1\n"
        "    zonefile-load: whole\n"
        "    semantic-checks: off\n"
        "zone:\n" + zone_items
    )


def start_knotd(
    workdir: Path, zones: dict[str, Path], port: int, cpu: str | None, name: str = "knotd"
) -> Proc:
    knotd = shutil.which("knotd") or "/usr/sbin/knotd"
    conf = workdir / f"{name}.conf"
    conf.write_text(knot_config(workdir, zones, port))
    return Proc(name, [knotd, "-c", str(conf)], workdir / f"{name}.log", cpu)


def start_apiserver(workdir: Path, manifests: Path, port: int, cpu: str | None) -> Proc:
    """tests/support/apiserver.py standalone, preloaded with the generated objects (plain HTTP)."""
    argv = [
        sys.executable,
        "-m",
        "tests.support.apiserver",
        "--port",
        str(port),
        "--manifest",
        str(manifests),
    ]
    return Proc("apiserver", argv, workdir / "apiserver.log", cpu, env=python_env(), cwd=ROOT)


def ask(port: int, name: str, rdtype: str, timeout: float = 2.0, tcp: bool = False) -> dns.message.Message:
    """One question without EDNS, as a Pod's stub resolver (and dnsperf by default) asks it."""
    q = dns.message.make_query(name, rdtype, use_edns=-1)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout, ignore_trailing=True)


def wait_for(proc: Proc, check: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Seconds from the process's start until `check()` first holds; raises on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            if check():
                return time.monotonic() - proc.started
        except (OSError, dns.exception.DNSException):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{proc.name}: not ready within {timeout:.0f}s:\n{proc.tail()}")


def answers(port: int, name: str, rdtype: str, expected: set[str]) -> Callable[[], bool]:
    """A check: the server answers `name`/`rdtype` NOERROR with exactly the rdata texts `expected`."""

    def check() -> bool:
        reply = ask(port, name, rdtype, timeout=0.2)
        got = {rd.to_text() for rrset in reply.answer for rd in rrset}
        return reply.rcode() == 0 and got == expected

    return check


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far, all threads (/proc/PID/stat fields 14 and 15).

    Answers per CPU-second stay meaningful on a machine shared with other work, where wall-clock
    qps drops whenever something else runs on the server's core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_list(spec: str) -> list[int]:
    """taskset's CPU list syntax ("0", "0,2", "0-3") as CPU numbers."""
    out: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return out


def cpus_busy(cpus: list[int]) -> float:
    """Seconds the CPUs `cpus` have been busy since boot, time stolen by the hypervisor included
    (/proc/stat: user nice system idle iowait irq softirq steal …). Less the server's own CPU time
    over a run, it is what else ran on the server's core: the noise of a shared machine."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
            busy += user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]
