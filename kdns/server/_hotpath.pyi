"""Types of the C extension kdns/server/_hotpath.c (kdns/server/replay.py implements the same)."""

from collections.abc import Callable, Sequence
from typing import Any

from kdns.server.limits import Limits

class Table:
    def __init__(
        self, limits: Limits, time_bounds: Sequence[float], size_bounds: Sequence[float]
    ) -> None: ...
    def __len__(self) -> int: ...
    def key(self, data: bytes, tcp: bool, /) -> bytes | None: ...
    def answer(self, data: bytes, tcp: bool, ipv6: bool, /) -> bytes | None: ...
    def store(self, key: bytes, template: Any, /) -> None: ...
    def harvest(
        self,
    ) -> list[
        tuple[
            int,
            tuple[tuple[int, int], tuple[int, int]],
            tuple[int, ...],
            float,
            tuple[tuple[int, ...], float, tuple[int, ...], float],
            tuple[tuple[int, ...], float, tuple[int, ...], float],
        ]
    ]: ...
    def clear(self) -> None: ...

def drain(
    table: Table, fd: int, answer_hits: bool, rounds: int, prepare: Callable[[bytes], bool] | None, /
) -> list[tuple[bytes, Any]]: ...
