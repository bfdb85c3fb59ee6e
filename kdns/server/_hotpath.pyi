"""Types of the C extension kdns/server/_hotpath.c."""

from collections.abc import Sequence
from typing import Any

BATCH: int
MAX_QUERY: int

class Table:
    shuffle: bool
    def __init__(
        self,
        time_bounds: Sequence[float],
        size_bounds: Sequence[float],
        max_entries: int,
        shuffle: bool = ...,
    ) -> None: ...
    def __len__(self) -> int: ...
    def key(self, data: bytes, tcp: bool, /) -> bytes | None: ...
    def answer(self, data: bytes, tcp: bool, ipv6: bool, /) -> bytes | None: ...
    def drain(self, fd: int, answer_hits: bool, rounds: int, /) -> list[tuple[bytes, Any]]: ...
    def store(
        self,
        key: bytes,
        head: bytes,
        answers: tuple[bytes, ...],
        after: bytes,
        serial_at: int,
        source: object,
        scope: str,
        generation: int,
        slot: int,
        stored: float = ...,
        ttl: int = ...,
        ttl_at: Sequence[int] = ...,
        question: bytes | None = ...,
        only_limit: int = ...,
    ) -> None: ...
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
