"""Helpers for the API-side tests: condition waits and a sink that records what it was told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from kdns.k8s.models import Kind, Model, parse_object
from tests.support.apiserver import ApiServer


async def eventually(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    """Wait (without blocking the loop) until cond() is truthy; generous timeout for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class RecordingSink:
    """An ObjectSink keeping the current objects per kind and a log of calls."""

    def __init__(self) -> None:
        self.state: dict[Kind, dict[tuple[str, str], Model]] = {}
        self.calls: list[tuple[str, Kind, object]] = []

    def replace(self, kind: Kind, objects: Iterable[Model]) -> None:
        objs = list(objects)
        self.state[kind] = {o.key: o for o in objs}
        self.calls.append(("replace", kind, len(objs)))

    def upsert(self, kind: Kind, obj: Model) -> None:
        self.state.setdefault(kind, {})[obj.key] = obj
        self.calls.append(("upsert", kind, obj.key))

    def delete(self, kind: Kind, key: tuple[str, str]) -> None:
        self.state.setdefault(kind, {}).pop(key, None)
        self.calls.append(("delete", kind, key))

    def count(self, op: str, kind: Kind | None = None) -> int:
        return sum(1 for c in self.calls if c[0] == op and kind in (None, c[1]))


def api_state(api: ApiServer, kind: Kind) -> dict[tuple[str, str], Model]:
    """What the sink must hold for `kind`: the server's objects, parsed the same way."""
    models = (parse_object(kind, o) for o in api.objects(kind.kind_name))
    return {m.key: m for m in models}


def matches_api(sink: RecordingSink, api: ApiServer, *kinds: Kind) -> bool:
    return all(sink.state.get(k) == api_state(api, k) for k in kinds)
