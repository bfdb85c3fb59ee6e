"""Upstream selection order per query (CoreDNS forward `policy`; default `random`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def random_order(items: Sequence[T]) -> list[T]:
    """A fresh random permutation for every query."""
    return random.sample(list(items), len(items))


def sequential_order(items: Sequence[T]) -> list[T]:
    """Always the configured order: the first healthy upstream gets every query."""
    return list(items)


class RoundRobin:
    """Each query starts one upstream further along the list."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, items: Sequence[T]) -> list[T]:
        if not items:
            return []
        start = self._next % len(items)
        self._next += 1
        return [*items[start:], *items[:start]]


def make_policy(name: str) -> Callable[[Sequence[T]], list[T]]:
    if name == "round_robin":
        return RoundRobin()
    if name == "sequential":
        return sequential_order
    return random_order
