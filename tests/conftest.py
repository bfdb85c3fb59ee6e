"""Shared fixtures: free ports, a factory for real kdns processes, a scratch network namespace."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.rehearsal.netns import NetNs, can_create
from tests.support.ports import free_port
from tests.support.process import KdnsProcess


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def kdns(tmp_path: Path) -> Iterator[Callable[..., KdnsProcess]]:
    """`kdns(corefile_text, port, **kw)` starts a kdns process that is stopped after the test.

    Write `{port}` in the Corefile text where the DNS port goes; it is filled in.
    """
    started: list[KdnsProcess] = []

    def start(corefile: str, port: int | None = None, **kw: object) -> KdnsProcess:
        p = port if port is not None else free_port()
        proc = KdnsProcess(corefile.replace("{port}", str(p)), tmp_path, p, **kw)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def netns() -> Iterator[NetNs]:
    """A network namespace of its own for one test (loopback up), deleted after it. Making one needs
    root; elsewhere the test is skipped, but CI (CI=true), which runs as root, must run it."""
    reason = can_create()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test, but {reason}")
        pytest.skip(reason)
    ns = NetNs(f"kdns-t{os.getpid()}-{secrets.token_hex(3)}").create()
    try:
        yield ns
    finally:
        ns.delete()
