"""reload: interval/jitter rules, change detection, and a real kdns process whose Corefile is edited
the way kubelet updates a ConfigMap volume (`..data` symlink swap): the new configuration takes
effect, a broken one is refused and logged while the old keeps answering, and no query goes
unanswered while configurations are swapped."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import pytest

from kdns.corefile import CorefileError
from kdns.corefile.model import Corefile
from kdns.plugins import reload
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import FakeController, context, directive

# --- syntax and timing rules (unit) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reload 1s", "interval value must be greater or equal to 2s"),
        ("reload 2s 500ms", "jitter value must be greater or equal to 1s"),
        ("reload 2s 1s 1s", "wrong argument count"),
        ("reload often", "invalid interval 'often'"),
        ("reload 10s {\n now\n}", "reload takes no block"),
    ],
)
def test_bad_syntax(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        reload.setup(directive(text), context(text))


def test_interval_with_jitter() -> None:
    rng = random.Random(5)
    draws = [reload.poll_interval(30, 15, rng) for _ in range(2000)]
    assert 22.5 <= min(draws) < 23.5 and 36.5 < max(draws) < 37.5  # 30s ± 7.5s, as CoreDNS computes it
    capped = [reload.poll_interval(4, 10, rng) for _ in range(2000)]
    assert 3 <= min(capped) < 3.2 and 4.8 < max(capped) < 5  # jitter capped at interval/2
    plugin = reload.setup(directive("reload"), context("reload"))
    assert isinstance(plugin, reload.Reload) and 22.5 <= plugin.period <= 37.5


def test_a_change_asks_for_one_reload(tmp_path: Path) -> None:
    path = tmp_path / "Corefile"
    path.write_text(". {\n    whoami\n}\n")
    controller = FakeController(config_path=str(path))
    plugin = reload.Reload(controller, 2.0, Corefile.digest(path.read_text()))
    assert not plugin.check() and controller.reloads == 0
    path.write_text(". {\n    whoami\n    broken here\n}\n")
    assert plugin.check() and controller.reloads == 1
    assert not plugin.check() and controller.reloads == 1  # a file that failed is not retried as is
    path.write_text(". {\n    whoami\n}\n")
    assert plugin.check() and controller.reloads == 2
    path.unlink()
    assert not plugin.check()  # a missing file is no change (kubelet swaps, it never deletes)


# --- a real server, edited like a ConfigMap volume --------------------------------------------------


class ConfigMapVolume:
    """`Corefile -> ..data/Corefile`, `..data -> ..<version>`: what kubelet mounts for a ConfigMap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = 0
        root.mkdir()
        (root / "Corefile").symlink_to("..data/Corefile")

    def publish(self, text: str) -> str:
        """Write a new version and swap `..data` to it atomically (rename over the old link)."""
        self.version += 1
        target = self.root / f"..v{self.version}"
        target.mkdir()
        (target / "Corefile").write_text(text)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.root / "..data")
        return hashlib.sha512(text.encode()).hexdigest()


def block(port: int, key: str = ".", extra: str = "") -> str:
    return f"{key}:{port} {{\n    reload 2s 1s\n    whoami\n{extra}}}\n"


@pytest.fixture
def volume(tmp_path: Path) -> ConfigMapVolume:
    return ConfigMapVolume(tmp_path / "config")


@pytest.fixture
def served(volume: ConfigMapVolume, tmp_path: Path) -> Iterator[tuple[KdnsProcess, str]]:
    port = free_port()
    first = volume.publish(block(port))
    p = KdnsProcess("", tmp_path, port, name="unused")
    p.corefile_path = volume.root / "Corefile"
    p.start()
    yield p, first
    p.stop()


def sha_lines(p: KdnsProcess) -> list[str]:
    return re.findall(r"^\[INFO\] plugin/reload: Running configuration SHA512 = ([0-9a-f]+)$", p.logs(), re.M)


def test_configmap_edit_takes_effect(served: tuple[KdnsProcess, str], volume: ConfigMapVolume) -> None:
    p, first = served
    assert sha_lines(p) == [first]
    assert rcode(ask(p.port, "foo.test.")) == "NOERROR"  # `.` serves every name
    second = volume.publish(block(p.port, key="example.org"))
    until(lambda: sha_lines(p) == [first, second], "the swapped ..data to be applied")
    assert rcode(ask(p.port, "foo.test.")) == "REFUSED"  # only example.org now
    assert rcode(ask(p.port, "www.example.org.")) == "NOERROR"
    lines = p.logs().splitlines()
    i = lines.index("[INFO] Reloading")
    assert lines[i : i + 3] == [
        "[INFO] Reloading",
        f"[INFO] plugin/reload: Running configuration SHA512 = {second}",
        "[INFO] Reloading complete",
    ]


def test_broken_edit_keeps_the_old_configuration(
    served: tuple[KdnsProcess, str], volume: ConfigMapVolume
) -> None:
    p, first = served
    volume.publish(block(p.port, extra="    frobnicate\n"))
    failure = until(
        lambda: re.search(
            r"^\[ERROR\] Reload failed, keeping the running configuration: (.*)$", p.logs(), re.M
        ),
        "the failed reload",
    )
    assert failure[1].endswith(
        "/Corefile:4 - Error during parsing: 'frobnicate': unknown directive 'frobnicate'"
    )
    assert rcode(ask(p.port, "foo.test.")) == "NOERROR"  # still the old configuration
    assert sha_lines(p) == [first]
    time.sleep(6)  # several polling periods: an unchanged broken file is not tried again
    assert p.logs().count("Reload failed") == 1
    fixed = volume.publish(block(p.port, key="example.org"))
    until(lambda: sha_lines(p) == [first, fixed], "the fixed file")
    assert rcode(ask(p.port, "foo.test.")) == "REFUSED"


def test_an_unimplemented_directive_in_a_reload_keeps_the_old_configuration(
    served: tuple[KdnsProcess, str], volume: ConfigMapVolume
) -> None:
    p, first = served
    volume.publish(block(p.port, key="example.org", extra="    erratic\n"))
    failed = r"^\[ERROR\] Reload failed, keeping the running configuration: (.*)$"
    failure = until(lambda: re.search(failed, p.logs(), re.M), "the failed reload")
    assert failure[1].endswith("/Corefile:4 - Error during parsing: 'erratic': plugin 'erratic' is not "
                               "implemented by kdns (see docs/plugins.md)")  # fmt: skip
    assert rcode(ask(p.port, "foo.test.")) == "NOERROR"  # `.` still served: the old configuration
    assert sha_lines(p) == [first]


class Prober(threading.Thread):
    """Asks the server one question after another, UDP and TCP in turn, recording failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.answered = 0
        self.failures: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            try:
                r = ask(self.port, f"q{n}.example.org.", tcp=n % 2 == 0, timeout=5)
                if rcode(r) != "NOERROR":
                    self.failures.append(f"{n}: {rcode(r)}")
                else:
                    self.answered += 1
            except (dns.exception.DNSException, OSError) as e:
                self.failures.append(f"{n}: {type(e).__name__} {e}")


def test_no_query_goes_unanswered_during_reloads(
    served: tuple[KdnsProcess, str], volume: ConfigMapVolume
) -> None:
    p, _ = served
    prober = Prober(p.port)
    prober.start()
    try:
        for n in range(1, 7):
            # Alternate the two ways a reload starts: the poller seeing a new file, and SIGUSR1.
            text = block(p.port, key="example.org" if n % 2 else ".", extra=f"    # edit {n}\n")
            if n % 3:
                volume.publish(text)
            else:
                (volume.root / "..data" / "Corefile").write_text(text)
                p.signal(signal.SIGUSR1)
            until(lambda n=n: p.logs().count("[INFO] Reloading complete") == n, f"reload {n}")  # type: ignore[misc]
    finally:
        prober.stopping.set()
        prober.join(30)
    assert prober.failures == []
    assert prober.answered > 6
    assert "Reload failed" not in p.logs()


def test_without_reload_nothing_is_polled(tmp_path: Path, kdns: Callable[..., KdnsProcess]) -> None:
    p = kdns(".:{port} {\n    whoami\n}\n")
    p.corefile_path.write_text(f"example.org:{p.port} {{\n    whoami\n}}\n")
    time.sleep(5)  # longer than the shortest allowed interval
    assert rcode(ask(p.port, "foo.test.")) == "NOERROR" and "Reloading" not in p.logs()
    p.signal(signal.SIGUSR1)  # an explicit reload still works
    until(lambda: "[INFO] Reloading complete" in p.logs(), "the SIGUSR1 reload")
    assert rcode(ask(p.port, "foo.test.")) == "REFUSED"
    assert sha_lines(p) == []  # the SHA line belongs to the reload plugin
