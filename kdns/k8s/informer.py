"""List/watch informers: keep an ObjectSink equal to the API server's objects, through any fault.

One task per watched kind runs client-go's reflector loop:

    list (paginated) ──sink.replace──▶ watch from the list's resourceVersion ──events──▶ sink
        ▲                                   │ clean end (timeoutSeconds): watch again from the last RV
        └──── 410 Gone / garbage ───────────┤ connection error, 429, 5xx, hung stream: back off,
                                            │ then watch again from the last RV (a 410 re-lists)

The sink gets one replace() per complete list, so objects deleted while disconnected disappear and
changed ones update in one step. Nothing half-parsed is ever applied: an event is applied only after
its whole line was read and parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from kdns.http1.client import HttpError
from kdns.k8s.client import ApiClient, ApiError, TruncatedStream
from kdns.k8s.models import Kind, Model, object_key, parse_object
from kdns.k8s.sink import ObjectSink
from kdns.log import plugin_logger

log = plugin_logger("kubernetes")


@dataclass(frozen=True)
class WatchSpec:
    """One list/watch: a kind and the server-side selectors applied to it."""

    kind: Kind
    label_selector: str = ""
    field_selector: str = ""


TIMING_ENV = "KDNS_INFORMER_TIMING"


@dataclass(frozen=True)
class InformerTiming:
    """Timeouts and backoff; the defaults are for real clusters, tests shrink them.

    - watch_timeout: the server ends each watch after timeoutSeconds = watch_timeout * U[1, 2),
      client-go's reflector rule (minWatchTimeout 5 min), so reconnections of many clients spread out.
    - read_timeout: no byte on a watch (or a list) for this long means the connection is dead or the
      server hung. API servers send a BOOKMARK about every minute to watchers that allow bookmarks
      (watch cache), so 90 s of silence is 1.5 missed bookmarks. A false alarm on a server without
      bookmarks only costs a re-watch from the last resourceVersion, not a re-list.
    - backoff_initial / backoff_max: jittered exponential backoff between failed attempts
      (client-go's reflector backs off 800 ms → 30 s; we start lower since a watch restart is cheap).
    - retry_after_max: cap on a server's Retry-After (429/5xx), so a bogus value cannot stall sync.
    - page_size: `limit` for paginated lists (client-go's pager default, 500).
    - healthy_watch: a watch that stayed open this long, or delivered any event, resets the backoff.
    """

    watch_timeout: float = 300.0
    read_timeout: float = 90.0
    backoff_initial: float = 0.2
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    page_size: int = 500
    healthy_watch: float = 1.0

    @classmethod
    def from_env(cls) -> InformerTiming:
        """The defaults, with fields overridden by KDNS_INFORMER_TIMING ("read_timeout=2,backoff_max=1"):
        kdns-only, like KDNS_SERVICEACCOUNT_DIR, so fault tests can shrink the timeouts of a real
        process. A bad value is a ValueError naming the variable."""
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in os.environ.get(TIMING_ENV, "").split(","))):
            key, _, text = item.partition("=")
            try:
                values[key] = (int if types[key] in (int, "int") else float)(text)
            except (KeyError, ValueError):
                raise ValueError(
                    f"{TIMING_ENV}: bad item {item!r} (want FIELD=NUMBER, FIELD one of {', '.join(types)})"
                ) from None
        return cls(**values)


@dataclass
class InformerStats:
    """Per-kind counters for logs, metrics and tests. Times are time.monotonic()."""

    synced: bool = False
    connected: bool = False  # a watch stream is open
    lists: int = 0  # complete lists applied (the first one included)
    relists: int = 0  # complete lists after the first
    watches: int = 0  # watch streams opened
    watch_restarts: int = 0  # watch streams opened after the first
    events: int = 0  # ADDED/MODIFIED/DELETED applied
    bookmarks: int = 0
    errors: int = 0
    last_event: float | None = None  # any event, bookmarks included: proof the stream is alive
    last_sync: float | None = None  # last complete list
    last_error: str = ""
    last_error_time: float | None = None
    resource_version: str = ""
    objects: int = 0  # size of the last complete list


class Gone(Exception):
    """410: the resourceVersion (or continue token) is too old; re-list."""


class Garbage(Exception):
    """A watch event that cannot be parsed; drop the watch and re-list."""


class Backoff:
    """Jittered exponential backoff: initial * 2^n, capped, each delay drawn from [d/2, d]."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum, self._n = initial, maximum, 0

    def reset(self) -> None:
        self._n = 0

    def next(self) -> float:
        d = min(self.maximum, self.initial * (2 ** min(self._n, 30)))
        self._n += 1
        return random.uniform(d / 2, d)


@dataclass
class _Informer:
    spec: WatchSpec
    stats: InformerStats = field(default_factory=InformerStats)
    task: asyncio.Task[None] | None = None
    failing_since: float | None = None  # monotonic time of the first failure of the current run
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # cuts a connection-error backoff short
    wakeable: bool = False  # sleeping after a connection error (not a server-requested Retry-After)


class InformerSet:
    """Informers for several kinds sharing one ApiClient and one sink.

    stop() also closes the client's HTTP session (the client reopens one if used again), so a
    Corefile reload that replaces the plugin leaves no connection behind.
    """

    def __init__(
        self,
        client: ApiClient,
        sink: ObjectSink,
        specs: Sequence[WatchSpec],
        *,
        timing: InformerTiming | None = None,
    ) -> None:
        kinds = [s.kind for s in specs]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"one WatchSpec per kind, got {kinds}")
        self.client, self.sink = client, sink
        self.timing = timing or InformerTiming.from_env()
        self._informers = {s.kind: _Informer(s) for s in specs}
        self._synced = asyncio.Event()
        if not specs:
            self._synced.set()

    @property
    def stats(self) -> Mapping[Kind, InformerStats]:
        return {kind: inf.stats for kind, inf in self._informers.items()}

    async def start(self) -> None:
        for inf in self._informers.values():
            if inf.task is None:
                inf.task = asyncio.create_task(self._run(inf), name=f"informer-{inf.spec.kind.value}")

    async def stop(self) -> None:
        tasks = [inf.task for inf in self._informers.values() if inf.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for inf in self._informers.values():
            inf.task = None
            inf.stats.connected = False
        await self.client.close()

    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.synced()

    # -- the reflector loop -------------------------------------------------------------------

    async def _run(self, inf: _Informer) -> None:
        kind, st = inf.spec.kind, inf.stats
        backoff = Backoff(self.timing.backoff_initial, self.timing.backoff_max)
        need_list = True
        while True:
            action = "list" if need_list else "watch"
            try:
                if need_list:
                    await self._list(inf)
                    need_list, action = False, "watch"
                if await self._watch(inf):
                    backoff.reset()
                    continue  # clean end after a healthy watch: watch again at once
                delay = backoff.next()
                log.debug("watch %s ended early, watching again in %.1fs", kind.value, delay)
            except asyncio.CancelledError:
                raise
            except (Gone, Garbage) as exc:
                need_list = True
                delay = self._failed(inf, f"{action} {kind.value}: {exc}", backoff.next(), "re-listing")
            except ApiError as exc:
                delay = backoff.next()
                if exc.retry_after is not None and (exc.status == 429 or exc.status >= 500):
                    delay = max(delay, min(exc.retry_after, self.timing.retry_after_max))
                delay = self._failed(inf, f"{action} {kind.value} failed: {exc}", delay)
            except (HttpError, OSError, TimeoutError, TruncatedStream, ValueError) as exc:
                delay = self._failed(inf, f"{action} {kind.value} failed: {_describe(exc)}", backoff.next())
                inf.wakeable = True
            except Exception as exc:  # a bug (e.g. in the sink): log it with its traceback, re-list
                need_list = True
                log.error("%s %s: unexpected error, re-listing", action, kind.value, exc_info=True)
                delay = self._failed(inf, f"{action} {kind.value}: {exc!r}", backoff.next(), log_it=False)
            finally:
                st.connected = False
            await self._sleep(inf, delay)

    async def _sleep(self, inf: _Informer, delay: float) -> None:
        """Back off; a connection-error backoff ends early when another kind got through."""
        inf.wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(inf.wake.wait(), delay)
        inf.wakeable = False

    def _failed(
        self, inf: _Informer, what: str, delay: float, then: str = "retrying", *, log_it: bool = True
    ) -> float:
        st, now = inf.stats, time.monotonic()
        st.errors += 1
        st.last_error, st.last_error_time = what, now
        if inf.failing_since is None:
            inf.failing_since = now
        if log_it:
            log.warning("%s, %s in %.3gs", what, then, delay)
        return delay

    def _recovered(self, inf: _Informer, what: str) -> None:
        """A list or watch got through: log the end of an outage, wake the kinds still backing off."""
        if inf.failing_since is not None:
            log.info(
                "%s %s: API connection restored after %.1fs",
                what,
                inf.spec.kind.value,
                time.monotonic() - inf.failing_since,
            )
            inf.failing_since = None
        # The server is reachable: kinds waiting out a connection-error backoff (up to backoff_max)
        # retry now, so after an outage every kind catches up at once, not up to 30 s apart.
        for other in self._informers.values():
            if other.wakeable:
                other.wake.set()

    def _params(self, spec: WatchSpec) -> dict[str, str]:
        params = {}
        if spec.label_selector:
            params["labelSelector"] = spec.label_selector
        if spec.field_selector:
            params["fieldSelector"] = spec.field_selector
        return params

    async def _list(self, inf: _Informer) -> None:
        """All pages of a consistent list, then one sink.replace(). A 410 on a later page (its
        continue token expired) raises Gone, so the list restarts from the first page."""
        kind, st = inf.spec.kind, inf.stats
        objects: list[Model] = []
        params = self._params(inf.spec)
        params["limit"] = str(self.timing.page_size)
        while True:
            try:
                page = await self.client.get_json(
                    kind.api_path, params, read_timeout=self.timing.read_timeout
                )
            except ApiError as exc:
                if exc.status == 410:  # the continue token outlived etcd's compaction
                    raise Gone(f"continue token expired ({exc})") from exc
                raise
            for item in page.get("items") or ():
                try:
                    objects.append(parse_object(kind, item))
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    log.warning("list %s: skipping unparsable object %s: %r", kind.value, _name(item), exc)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                break
            params["continue"] = token
        rv = str(meta.get("resourceVersion") or "")
        self.sink.replace(kind, objects)
        now = time.monotonic()
        if st.lists:
            st.relists += 1
            log.info("re-listed %s: %d objects at resourceVersion %s", kind.value, len(objects), rv)
        st.lists += 1
        st.objects, st.resource_version, st.last_sync = len(objects), rv, now
        self._recovered(inf, "list")
        if not st.synced:
            st.synced = True
            if all(i.stats.synced for i in self._informers.values()):
                self._synced.set()

    async def _watch(self, inf: _Informer) -> bool:
        """One watch stream from the last resourceVersion, applied until it ends.

        Returns True when the server ended it cleanly after a healthy watch (re-watch at once),
        False when it ended suspiciously fast and empty (back off first). Raises on failures.
        """
        kind, st, t = inf.spec.kind, inf.stats, self.timing
        params = self._params(inf.spec)
        params.update(
            {
                "watch": "1",
                "allowWatchBookmarks": "true",
                "resourceVersion": st.resource_version,
                "timeoutSeconds": str(max(1, int(t.watch_timeout * random.uniform(1.0, 2.0)))),
            }
        )
        if st.watches:
            st.watch_restarts += 1
        st.watches += 1
        received = 0
        try:
            async with self.client.stream(kind.api_path, params, read_timeout=t.read_timeout) as stream:
                opened = time.monotonic()
                st.connected = True
                self._recovered(inf, "watch")
                while (line := await stream.readline()) is not None:
                    if line.strip():
                        self._apply(kind, st, line)
                        received += 1
        except ApiError as exc:
            if exc.status == 410:  # some servers answer an expired resourceVersion with HTTP 410
                raise Gone(f"watch from resourceVersion {st.resource_version} expired ({exc})") from exc
            raise
        return received > 0 or time.monotonic() - opened >= t.healthy_watch

    def _apply(self, kind: Kind, st: InformerStats, line: bytes) -> None:
        """Parse one watch event completely, then apply it; raises Gone or Garbage."""
        try:
            event = json.loads(line)
            etype, obj = event["type"], event["object"]
            if not isinstance(obj, dict) or not isinstance(etype, str):
                raise TypeError("event without an object")
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            model = parse_object(kind, obj) if etype in ("ADDED", "MODIFIED") else None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise Garbage(f"malformed watch event ({_describe(exc)}): {line[:120]!r}") from exc
        st.last_event = time.monotonic()
        if etype == "BOOKMARK":
            st.bookmarks += 1
        elif etype == "ERROR":
            code, message = obj.get("code"), obj.get("message") or obj.get("reason") or ""
            if code == 410:
                raise Gone(f"watch expired (410 {obj.get('reason') or 'Gone'}: {message})")
            raise ApiError(int(code or 500), str(obj.get("reason") or "Error"), str(message))
        elif model is not None:
            self.sink.upsert(kind, model)
            st.events += 1
        elif etype == "DELETED":
            self.sink.delete(kind, object_key(obj))
            st.events += 1
        else:
            raise Garbage(f"unknown watch event type {etype!r}")
        if rv:
            st.resource_version = rv


def _name(obj: Any) -> str:
    ns, name = object_key(obj) if isinstance(obj, dict) else ("", "?")
    return f"{ns}/{name}" if ns else name


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError):  # kdns.http1.client's read timeout
        return "read timeout (no data from the API server)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
