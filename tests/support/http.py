"""HTTP GETs against kdns's side listeners (health, ready, metrics) and polling for what they report."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; HTTP errors are results, connection failures raise OSError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def until(check: Callable[[], T], what: str, timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy (returned); exceptions count as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> tuple[dict[str, str], Samples]:
    """Metrics as exposed (name → type; counters keep `_total`) and samples ((name, labels) → value)."""
    status, body = get(url)
    assert status == 200, body
    families: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        families[family.name + ("_total" if family.type == "counter" else "")] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (0 when absent, as a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
