"""Fixtures for the API-side tests: a running test API server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apiserver import ApiServer


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[ApiServer]:
    """A plain-http test API server (no auth), stopped after the test."""
    with ApiServer(workdir=tmp_path) as api:
        yield api
