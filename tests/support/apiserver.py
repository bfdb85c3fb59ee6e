"""A Kubernetes API server for tests, speaking the real list/watch wire format, with fault knobs.

What it does as the real kube-apiserver (with its watch cache) does:
- collections /api/v1/{services,pods,namespaces}, /apis/discovery.k8s.io/v1/endpointslices, and the
  namespaced forms /api/v1/namespaces/NS/{services,pods}, /apis/…/namespaces/NS/endpointslices;
- one global resourceVersion counter; lists shaped `{"kind": "ServiceList", "apiVersion", "metadata":
  {"resourceVersion", "continue", "remainingItemCount"}, "items"}` (items without kind/apiVersion),
  paginated with `limit`/`continue` over a consistent snapshot; an expired continue → 410 Expired;
- `labelSelector` (=, ==, !=, in, notin, key, !key) and `fieldSelector` (metadata.name,
  metadata.namespace, status.phase; =, ==, !=), 400 BadRequest on bad ones;
- watch=1: newline-delimited JSON events ADDED/MODIFIED/DELETED/BOOKMARK/ERROR, replayed from
  `resourceVersion` out of a history window (an RV older than the window → an ERROR event holding a
  Status with code 410 "Expired", as the watch cache answers); RV "0" or absent → synthetic ADDED for
  the current state first; `timeoutSeconds` ends the stream cleanly; BOOKMARKs every
  `bookmark_interval` seconds when `allowWatchBookmarks=true`; an object that stops matching the
  watch's selectors arrives as DELETED (its previous state with the new RV), as the cacher does.

Faults: down()/up() on the same port, restart() with a new resourceVersion epoch, cut_watches(),
cut_next_event() (half a JSON line, then the connection closes), compact(), send_garbage(),
set_latency(), hang_next() (headers, then nothing), fail_next() (429/5xx with Retry-After),
bearer tokens with rotate_token(), TLS (trustme CA; client certificates authenticate too).
Every request is recorded (path, query, headers) for assertions.

Tests drive it from synchronous code: the server runs on its own event loop in a thread and every
public method is thread-safe (it runs on that loop and waits for the result).

Standalone: `python -m tests.support.apiserver --port N [--tls DIR] [--token T] [--manifest FILE…]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from tests.support.ports import free_port

JSONDict = dict[str, Any]
T = TypeVar("T")

HISTORY = 1000  # events kept for watch resumption (the real watch cache keeps 100..~1000s per resource)
DEFAULT_WATCH_TIMEOUT = 1800  # the real server picks 30..60 min when timeoutSeconds is absent


# -- resources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    name: str  # plural, as in the URL
    kind: str
    api_version: str
    namespaced: bool
    fields: tuple[str, ...]  # field selector labels the real server supports (the subset we use)

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


RESOURCES = {
    r.name: r
    for r in (
        Resource("services", "Service", "v1", True, ("metadata.name", "metadata.namespace")),
        Resource(
            "endpointslices",
            "EndpointSlice",
            "discovery.k8s.io/v1",
            True,
            ("metadata.name", "metadata.namespace"),
        ),
        Resource("namespaces", "Namespace", "v1", False, ("metadata.name", "status.phase")),
        Resource("pods", "Pod", "v1", True, ("metadata.name", "metadata.namespace", "status.phase")),
    )
}
BY_KIND = {r.kind: r for r in RESOURCES.values()}


# -- API errors --------------------------------------------------------------------------------------


def status(code: int, reason: str, message: str) -> JSONDict:
    """A metav1.Status failure, the body of every API error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# -- selectors ---------------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s+\(([^()]*)\)$")
_CMP_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)$")
_KEY_RE = re.compile(rf"^(!?)\s*({_KEY})$")

Matcher = Callable[[Mapping[str, str]], bool]


def _split_top(selector: str) -> list[str]:
    """Split on commas outside parentheses ("a in (x,y),b" → two terms)."""
    terms, depth, cur = [], 0, ""
    for ch in selector:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(selector: str) -> Matcher:
    """labels.Parse semantics: != and notin also match objects without the key. ValueError if bad."""
    reqs: list[Matcher] = []
    for term in _split_top(selector):
        if m := _SET_RE.match(term):
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                reqs.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _CMP_RE.match(term):
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                reqs.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                reqs.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _KEY_RE.match(term):
            key, negate = m[2], bool(m[1])
            reqs.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise ValueError(f"unable to parse requirement: {term!r}")
    return lambda labels: all(r(labels) for r in reqs)


def parse_field_selector(selector: str, res: Resource) -> Callable[[JSONDict], bool]:
    """fields.Parse for the fields `res` supports; ValueError names an unsupported field."""
    reqs: list[Callable[[JSONDict], bool]] = []
    for term in _split_top(selector):
        m = re.match(r"^([a-zA-Z.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not m:
            raise ValueError(f"invalid field selector: {term!r}")
        fld, op, value = m[1], m[2], m[3].strip()
        if fld not in res.fields:
            raise ValueError(f"field label not supported: {fld}")
        path = fld.split(".")
        reqs.append(lambda obj, p=path, v=value, neg=(op == "!="): (_dig(obj, p) == v) != neg)
    return lambda obj: all(r(obj) for r in reqs)


def _dig(obj: JSONDict, path: Sequence[str]) -> str:
    cur: Any = obj
    for part in path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


# -- server state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    time: float  # time.monotonic() on arrival

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch") in ("1", "true")


@dataclass(frozen=True)
class _Change:
    rv: int
    resource: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: JSONDict  # new state; for DELETED the last state with the deletion's RV
    prev: JSONDict | None  # previous state (MODIFIED, DELETED)


@dataclass
class _Filter:
    resource: Resource
    namespace: str | None
    labels: Matcher
    fields: Callable[[JSONDict], bool]

    def matches(self, obj: JSONDict | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)

    def convert(self, ch: _Change) -> tuple[str, JSONDict] | None:
        """The event this watcher sees for a change, as the cacher's convertToWatchEvent."""
        if ch.resource != self.resource.name:
            return None
        cur = None if ch.type == "DELETED" else ch.obj
        old = ch.obj if ch.type == "DELETED" else ch.prev
        cur_ok, old_ok = self.matches(cur), self.matches(old)
        if cur_ok and old_ok:
            return "MODIFIED", ch.obj
        if cur_ok:
            return "ADDED", ch.obj
        if old_ok:
            assert old is not None
            gone = dict(old, metadata={**old["metadata"], "resourceVersion": str(ch.rv)})
            return "DELETED", gone
        return None


@dataclass(eq=False)
class _Watcher:
    filter: _Filter
    request: web.Request
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    cut_next: bool = False

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()
        self.queue.put_nowait(("stop", None))


@dataclass
class _Rule:
    """A pending fault for the next `count` matching requests (watch=None: any request)."""

    count: int
    watch: bool | None
    status: int = 0
    retry_after: float | None = None
    match: Callable[[RecordedRequest], bool] | None = None

    def take(self, req: RecordedRequest) -> bool:
        if (
            self.count > 0
            and (self.watch is None or self.watch == req.is_watch)
            and (self.match is None or self.match(req))
        ):
            self.count -= 1
            return True
        return False


class ApiServer:
    """The test API server. Use as a context manager or call start()/stop(); see the module doc."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        tokens: Iterable[str] = (),
        basic_auth: tuple[str, str] | None = None,
        bookmark_interval: float | None = 60.0,
        history: int = HISTORY,
        workdir: Path | str | None = None,
    ) -> None:
        self.host, self.port = host, port or free_port()
        self.bookmark_interval = bookmark_interval
        self.history_size = history
        self._tmp = tempfile.TemporaryDirectory(prefix="kdns-apiserver-") if workdir is None else None
        self.workdir = Path(workdir if workdir is not None else self._tmp.name)  # type: ignore[union-attr]
        self._tokens: set[str] = set(tokens)
        self._basic = basic_auth
        self._auth_required = bool(self._tokens or basic_auth)
        self._objects: dict[str, dict[tuple[str, str], JSONDict]] = {name: {} for name in RESOURCES}
        self._rv = 1
        self._floor = 1  # a watch may resume from any RV >= floor
        self._history: deque[_Change] = deque()
        self._snapshots: dict[int, tuple[int, list[JSONDict]]] = {}
        self._snap_ids = itertools.count(1)
        self._watchers: set[_Watcher] = set()
        self._hung: set[asyncio.BaseTransport] = set()  # connections of hung responses
        self._release_hung = asyncio.Event()
        self._rules: list[_Rule] = []
        self._latency = 0.0
        self._requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ssl: ssl.SSLContext | None = None
        self.ca_path: Path | None = None
        if tls:
            self._setup_tls()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self._ssl else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> ApiServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="test-apiserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        self._run(self._up())
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._run(self._down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        assert self._loop is not None, "server not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        async def call() -> T:
            return fn(*args, **kw)

        result: T = self._run(call())
        return result

    async def _up(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/version", self._version)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/v1/{resource}", self._collection)
        app.router.add_get("/api/v1/namespaces/{namespace}/{resource}", self._collection)
        app.router.add_get("/apis/{group}/{version}/{resource}", self._collection)
        app.router.add_get("/apis/{group}/{version}/namespaces/{namespace}/{resource}", self._collection)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        self._runner = runner

    async def _down(self) -> None:
        self._abort_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _abort_all(self) -> None:
        for w in list(self._watchers):
            w.abort()
        for transport in list(self._hung):
            transport.abort()
        self._release_hung.set()
        self._release_hung = asyncio.Event()

    # -- TLS and credentials ----------------------------------------------------------------------

    def _setup_tls(self) -> None:
        import trustme

        self._ca = trustme.CA()
        cert = self._ca.issue_cert("127.0.0.1", "::1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._ca.configure_trust(ctx)  # client certificates from this CA authenticate
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self._ssl = ctx
        self.ca_path = self.workdir / "ca.crt"
        self._ca.cert_pem.write_to_path(str(self.ca_path))

    def client_cert_files(self, directory: Path | str | None = None) -> tuple[str, str, str]:
        """(cert, key, ca) files of a client certificate this server accepts (for `tls CERT KEY CA`)."""
        assert self.ca_path is not None, "client certificates need tls=True"
        d = Path(directory or self.workdir)
        leaf = self._ca.issue_cert("kdns-client")
        cert, key = d / "client.crt", d / "client.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        return str(cert), str(key), str(self.ca_path)

    def in_cluster_env(self, directory: Path | str, token: str | None = None) -> dict[str, str]:
        """Write a service-account dir (token, ca.crt, namespace); return the env for in-cluster config."""
        assert self.ca_path is not None, "in-cluster config needs tls=True"
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca.crt").write_bytes(self.ca_path.read_bytes())
        (d / "namespace").write_text("kube-system")
        tok = token or next(iter(sorted(self._tokens)), "")
        (d / "token").write_text(tok)
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KDNS_SERVICEACCOUNT_DIR": str(d),
        }

    def rotate_token(self, new: str, *, keep_old: bool = False) -> None:
        """Accept `new` from now on; the old tokens stop working unless keep_old."""

        def rotate() -> None:
            if not keep_old:
                self._tokens.clear()
            self._tokens.add(new)
            self._auth_required = True

        self._call(rotate)

    def _authenticated(self, request: web.Request) -> bool:
        if not self._auth_required:
            return True
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self._tokens:
            return True
        if self._basic and header.startswith("Basic "):
            with contextlib.suppress(ValueError):
                if base64.b64decode(header[6:]).decode() == f"{self._basic[0]}:{self._basic[1]}":
                    return True
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        return bool(peercert)

    # -- objects ----------------------------------------------------------------------------------

    def add(self, obj: JSONDict) -> JSONDict:
        """Create an object (ADDED); returns the stored copy with its resourceVersion."""
        return self._call(self._change, obj, "add")

    def update(self, obj: JSONDict) -> JSONDict:
        """Replace an existing object (MODIFIED)."""
        return self._call(self._change, obj, "update")

    def apply(self, obj: JSONDict) -> JSONDict:
        """Create or replace."""
        return self._call(self._change, obj, "apply")

    def delete(
        self, obj_or_kind: JSONDict | str, name: str | None = None, namespace: str | None = "default"
    ) -> JSONDict:
        """Delete by object, or by (kind, name, namespace) (DELETED); KeyError if absent."""
        if isinstance(obj_or_kind, str):
            res = BY_KIND[obj_or_kind]
            meta: JSONDict = {"name": name}
            if res.namespaced:
                meta["namespace"] = namespace
            obj_or_kind = {"kind": obj_or_kind, "metadata": meta}
        return self._call(self._change, obj_or_kind, "delete")

    def get(self, kind: str, name: str, namespace: str | None = "default") -> JSONDict | None:
        res = BY_KIND[kind]
        key = (namespace or "" if res.namespaced else "", name)
        return self._call(
            lambda: (
                json.loads(json.dumps(self._objects[res.name][key]))
                if key in self._objects[res.name]
                else None
            )
        )

    def objects(self, kind: str) -> list[JSONDict]:
        """Current objects of a kind (copies), sorted by namespace/name."""
        res = BY_KIND[kind]
        return self._call(
            lambda: json.loads(json.dumps([v for _, v in sorted(self._objects[res.name].items())]))
        )

    @property
    def resource_version(self) -> int:
        return self._call(lambda: self._rv)

    def _change(self, obj: JSONDict, op: str) -> JSONDict:
        kind = obj.get("kind")
        if kind not in BY_KIND:
            raise ValueError(f"unsupported kind {kind!r}")
        res = BY_KIND[kind]
        new = json.loads(json.dumps(obj))  # a private copy: tests may keep mutating theirs
        meta = new.setdefault("metadata", {})
        if res.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        key = (meta.get("namespace", ""), meta["name"])
        store = self._objects[res.name]
        prev = store.get(key)
        if op == "apply":
            op = "update" if prev is not None else "add"
        if op == "add" and prev is not None:
            raise ValueError(f"{kind} {'/'.join(filter(None, key))} already exists")
        if op in ("update", "delete") and prev is None:
            raise KeyError(f"{kind} {'/'.join(filter(None, key))} not found")
        self._rv += 1
        if op == "delete":
            assert prev is not None
            new = dict(prev, metadata={**prev["metadata"], "resourceVersion": str(self._rv)})
            del store[key]
            etype = "DELETED"
        else:
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            meta["resourceVersion"] = str(self._rv)
            meta["uid"] = prev["metadata"]["uid"] if prev else str(uuid.uuid4())
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            store[key] = new
            etype = "ADDED" if prev is None else "MODIFIED"
        self._record(_Change(self._rv, res.name, etype, new, prev))
        return json.loads(json.dumps(new))

    def _record(self, change: _Change) -> None:
        self._history.append(change)
        while len(self._history) > self.history_size:
            self._floor = self._history.popleft().rv
        for w in self._watchers:
            event = w.filter.convert(change)
            if event is not None:
                w.queue.put_nowait(("event", event))

    # -- faults -----------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop listening and drop every connection: clients get connection refused until up()."""
        self._run(self._down())

    def up(self) -> None:
        """Listen again on the same port."""
        self._run(self._up())

    def restart(self, *, epoch_jump: int = 1_000_000) -> None:
        """Restart with a new resourceVersion epoch: all connections dropped, RVs jump, history gone
        (an etcd restore/migration): every client's old resourceVersion is now too old (410)."""
        self.down()
        self._call(self._new_epoch, epoch_jump)
        self.up()

    def _new_epoch(self, jump: int) -> None:
        self._rv += jump
        self._floor = self._rv
        self._history.clear()
        self._snapshots.clear()

    def compact(self) -> None:
        """Forget the event history (etcd compaction): resuming an older watch gets 410, continue
        tokens expire. Open watches keep going."""

        def compact() -> None:
            self._floor = self._rv
            self._history.clear()
            self._snapshots.clear()

        self._call(compact)

    def cut_watches(self) -> int:
        """Abort every open watch connection (TCP reset) now; returns how many were cut."""

        def cut() -> int:
            ws = list(self._watchers)
            for w in ws:
                w.abort()
            return len(ws)

        return self._call(cut)

    def cut_next_event(self) -> None:
        """Every open watch writes only the first half of its next event line, then closes."""

        def arm() -> None:
            for w in self._watchers:
                w.cut_next = True

        self._call(arm)

    def send_garbage(self, line: bytes = b'{"type": "MODIFIED", "object": {"metadata": [}\n') -> int:
        """Write a line that is not a valid event to every open watch; returns how many got it."""

        def send() -> int:
            for w in self._watchers:
                w.queue.put_nowait(("raw", line))
            return len(self._watchers)

        return self._call(send)

    def send_bookmarks(self) -> int:
        """A BOOKMARK now on every watch that allows bookmarks."""

        def send() -> int:
            for w in self._watchers:
                w.queue.put_nowait(("bookmark", self._rv))
            return len(self._watchers)

        return self._call(send)

    def set_latency(self, seconds: float) -> None:
        """Delay every response (list and watch) by `seconds`."""
        self._call(setattr, self, "_latency", seconds)

    def hang_next(
        self,
        count: int = 1,
        *,
        watch: bool | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """The next `count` matching requests get status and headers, then nothing, until
        release_hung(), a cut or down(). watch=True/False: only watches / only lists."""
        self._call(self._rules.append, _Rule(count, watch, status=0, match=match))

    def release_hung(self) -> None:
        """End the hung responses, and the hangs not yet taken: a request that comes after this
        (a slow client's) is answered, not hung until a release that never comes."""

        def release() -> None:
            self._rules = [r for r in self._rules if r.status != 0]
            self._release_hung.set()
            self._release_hung = asyncio.Event()
            for transport in list(self._hung):
                transport.abort()

        self._call(release)

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        watch: bool | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """The next `count` matching requests get `status` (e.g. 429, 500, 503, 410) and Retry-After.
        `match` (run on the server thread) narrows which requests count, e.g. only list continuations."""
        rule = _Rule(count, watch, status=status, retry_after=retry_after, match=match)
        self._call(self._rules.append, rule)

    # -- observation ------------------------------------------------------------------------------

    def requests(self, path: str | None = None, *, watch: bool | None = None) -> list[RecordedRequest]:
        """Requests so far (optionally only one path, only watches or only non-watches)."""
        reqs = self._call(list, self._requests)
        return [
            r for r in reqs if (path is None or r.path == path) and (watch is None or r.is_watch == watch)
        ]

    def watcher_count(self, kind: str | None = None) -> int:
        res = BY_KIND[kind].name if kind else None
        return self._call(lambda: sum(1 for w in self._watchers if res in (None, w.filter.resource.name)))

    def wait_for_watchers(self, kind: str | None = None, count: int = 1, timeout: float = 20.0) -> None:
        """Block until at least `count` watches are open (on `kind`); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while self.watcher_count(kind) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {count} open watch(es) on {kind or 'any kind'} within {timeout}s")
            time.sleep(0.02)

    # -- HTTP -------------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        rec = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), time.monotonic()
        )
        self._requests.append(rec)
        if self._latency:
            await asyncio.sleep(self._latency)
        if not self._authenticated(request):
            return _status_response(status(401, "Unauthorized", "Unauthorized"))
        self._rules = [r for r in self._rules if r.count > 0]
        for rule in self._rules:
            if rule.take(rec):
                if rule.status == 0:
                    return await self._hang(request)
                headers = {"Retry-After": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
                reason = {429: "TooManyRequests", 410: "Expired", 503: "ServiceUnavailable"}.get(
                    rule.status, "InternalError"
                )
                return _status_response(status(rule.status, reason, f"injected {rule.status}"), headers)
        result: web.StreamResponse = await handler(request)
        return result

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        transport = request.transport
        assert transport is not None
        self._hung.add(transport)
        try:
            await self._release_hung.wait()
        finally:
            self._hung.discard(transport)
        return resp

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "30", "gitVersion": "v1.30.0-kdns-test"})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        res = RESOURCES.get(info["resource"])
        group = f"{info['group']}/{info['version']}" if "group" in info else "v1"
        if res is None or res.api_version != group or ("namespace" in info and not res.namespaced):
            return _status_response(
                status(404, "NotFound", "the server could not find the requested resource")
            )
        q = request.query
        try:
            flt = _Filter(
                res,
                info.get("namespace"),
                parse_label_selector(q.get("labelSelector", "")),
                parse_field_selector(q.get("fieldSelector", ""), res),
            )
            if q.get("watch") in ("1", "true"):
                return await self._watch(request, flt)
            return self._list(flt, q)
        except ValueError as exc:
            return _status_response(status(400, "BadRequest", str(exc)))

    def _matching(self, flt: _Filter) -> list[JSONDict]:
        return [obj for _, obj in sorted(self._objects[flt.resource.name].items()) if flt.matches(obj)]

    def _list(self, flt: _Filter, q: Mapping[str, str]) -> web.Response:
        res = flt.resource
        limit = int(q["limit"]) if q.get("limit") else 0
        if limit < 0:
            raise ValueError("limit must be non-negative")
        if q.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(q["continue"]))
                snap_id, start = int(token["snap"]), int(token["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"continue key is not valid: {exc}") from exc
            if snap_id not in self._snapshots:
                return _status_response(
                    status(
                        410,
                        "Expired",
                        (
                            "The provided continue parameter is too old to display a consistent list result. "
                            "You can start a new list without the continue parameter."
                        ),
                    )
                )
            rv, items = self._snapshots[snap_id]
        else:
            rv, items, snap_id, start = self._rv, self._matching(flt), 0, 0
        meta: JSONDict = {"resourceVersion": str(rv)}
        end = start + limit if limit else len(items)
        if end < len(items):
            if not snap_id:
                snap_id = next(self._snap_ids)
                self._snapshots[snap_id] = (rv, items)
            token = {"v": "meta.k8s.io/v1", "rv": rv, "snap": snap_id, "start": end}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        page = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for obj in items[start:end]]
        body = {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": page}
        return web.Response(body=json.dumps(body).encode(), content_type="application/json")

    async def _watch(self, request: web.Request, flt: _Filter) -> web.StreamResponse:
        q = request.query
        timeout = int(q["timeoutSeconds"]) if q.get("timeoutSeconds") else DEFAULT_WATCH_TIMEOUT
        bookmarks = q.get("allowWatchBookmarks") == "true"
        since = q.get("resourceVersion", "")
        watcher = _Watcher(flt, request)
        if since in ("", "0"):
            for obj in self._matching(flt):
                watcher.queue.put_nowait(("event", ("ADDED", obj)))
        elif int(since) < self._floor:
            msg = f"too old resource version: {since} ({self._floor})"
            watcher.queue.put_nowait(("error", status(410, "Expired", msg)))
        else:
            for ch in self._history:
                if ch.rv > int(since) and (event := flt.convert(ch)) is not None:
                    watcher.queue.put_nowait(("event", event))
        self._watchers.add(watcher)
        try:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await self._stream(resp, watcher, flt.resource, timeout, bookmarks)
            return resp
        except (ConnectionError, RuntimeError):  # the client went away, or we cut it
            return web.Response()
        finally:
            self._watchers.discard(watcher)

    async def _stream(
        self, resp: web.StreamResponse, w: _Watcher, res: Resource, timeout: float, bookmarks: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + (self.bookmark_interval or 0)
        while True:
            now = loop.time()
            wait = deadline - now
            if bookmarks and self.bookmark_interval:
                wait = min(wait, next_bookmark - now)
            try:
                what, payload = await asyncio.wait_for(w.queue.get(), max(wait, 0))
            except TimeoutError:
                if loop.time() >= deadline:
                    await resp.write_eof()  # timeoutSeconds: a clean end of the stream
                    return
                what, payload = "bookmark", self._rv
                next_bookmark = loop.time() + (self.bookmark_interval or 0)
            if what == "stop":
                return
            if what == "raw":
                await resp.write(payload)
                continue
            if what == "bookmark":
                if not bookmarks:
                    continue
                event: JSONDict = {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": res.kind,
                        "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(payload)},
                    },
                }
            elif what == "error":
                await resp.write(json.dumps({"type": "ERROR", "object": payload}).encode() + b"\n")
                await resp.write_eof()
                return
            else:
                event = {"type": payload[0], "object": payload[1]}
            line = json.dumps(event).encode() + b"\n"
            if w.cut_next:
                await resp.write(line[: len(line) // 2])
                if w.request.transport is not None:
                    w.request.transport.close()  # flushes the half line, then FIN mid-chunked-stream
                return
            await resp.write(line)


def _status_response(body: JSONDict, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=int(body["code"]),
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=dict(headers or {}),
    )


# -- standalone --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.apiserver", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument(
        "--tls", metavar="DIR", help="serve HTTPS; write ca.crt (and token) into DIR for in-cluster use"
    )
    p.add_argument("--token", help="require this bearer token")
    p.add_argument("--manifest", nargs="*", default=[], metavar="FILE", help="objects to preload (YAML/JSON)")
    p.add_argument("--bookmark-interval", type=float, default=60.0)
    args = p.parse_args(argv)

    from kdns.k8s.manifests import ManifestError, read_objects

    workdir = Path(args.tls) if args.tls else None
    if workdir:
        workdir.mkdir(parents=True, exist_ok=True)
    server = ApiServer(
        host=args.host,
        port=args.port,
        tls=bool(args.tls),
        tokens=[args.token] if args.token else [],
        bookmark_interval=args.bookmark_interval,
        workdir=workdir,
    )
    try:
        objs = read_objects(args.manifest)
    except ManifestError as exc:
        print(f"apiserver: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        for obj in objs:
            if obj["kind"] in BY_KIND:
                server.apply(obj)
        if workdir:
            server.in_cluster_env(workdir, args.token)
        print(f"apiserver listening on {server.url} ({len(objs)} objects)", flush=True)
        stop.wait()
    return 0


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[ApiServer]:
    """`with running(tls=True) as api:` — a started server, stopped afterwards."""
    server = ApiServer(**kw).start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
