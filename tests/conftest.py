"""Shared fixtures: free ports and a factory for real kdns processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
