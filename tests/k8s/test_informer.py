"""InformerSet against the test API server: sync, live events, and every fault of issue #3.

Each fault test checks the sink's final content equals the API server's state (not just "no crash"),
and the recorded requests show the client did what it should (resume RV, re-list or not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kdns.k8s.client import ApiClient, TokenFileAuth
from kdns.k8s.informer import InformerSet, InformerTiming, WatchSpec
from kdns.k8s.models import EndpointSlice, Kind
from tests.k8s.helpers import RecordingSink, api_state, eventually, matches_api
from tests.support import objects as o
from tests.support.apiserver import ApiServer

SVC, EPS = Kind.SERVICE.api_path, Kind.ENDPOINTSLICE.api_path
ALL = (Kind.SERVICE, Kind.ENDPOINTSLICE, Kind.NAMESPACE)

#: Quick backoff so fault tests finish fast; a long read timeout except where a test shrinks it.
FAST = InformerTiming(watch_timeout=300, read_timeout=30, backoff_initial=0.05, backoff_max=0.5)
HTTP = (o.port("http", 80),)


def seed(api: ApiServer) -> None:
    api.add(o.namespace("default"))
    api.add(o.namespace("prod"))
    api.add(o.service("web", ips=("10.96.0.10",), ports=HTTP))
    api.add(o.headless("db", "prod", ports=HTTP))
    api.add(
        o.endpoint_slice(
            "web-a", "web", endpoints=[o.endpoint("10.0.0.1"), o.endpoint("10.0.0.2")], ports=HTTP
        )
    )
    api.add(
        o.endpoint_slice(
            "db-a", "db", "prod", endpoints=[o.endpoint("10.0.1.1", hostname="db-0")], ports=HTTP
        )
    )


@pytest.fixture
async def client(apiserver: ApiServer) -> AsyncIterator[ApiClient]:
    c = ApiClient.from_options(endpoint=apiserver.url)
    yield c
    await c.close()


Factory = Callable[..., InformerSet]


@pytest.fixture
async def informers(client: ApiClient) -> AsyncIterator[Factory]:
    """`informers(sink, *kinds_or_specs, timing=FAST, api_client=None)` → InformerSet, stopped at the end."""
    made: list[InformerSet] = []

    def make(
        sink: RecordingSink,
        *specs: Kind | WatchSpec,
        timing: InformerTiming = FAST,
        api_client: ApiClient | None = None,
    ) -> InformerSet:
        ws = [s if isinstance(s, WatchSpec) else WatchSpec(s) for s in (specs or ALL)]
        inf = InformerSet(api_client or client, sink, ws, timing=timing)
        made.append(inf)
        return inf

    yield make
    for inf in made:
        await inf.stop()


async def synced(inf: InformerSet) -> InformerSet:
    await inf.start()
    assert await inf.wait_synced(20), {k.value: s.last_error for k, s in inf.stats.items()}
    return inf


async def converge(sink: RecordingSink, api: ApiServer, *kinds: Kind, what: str = "sink == API") -> None:
    await eventually(lambda: matches_api(sink, api, *(kinds or ALL)), what=what)


async def watching(api: ApiServer, inf: InformerSet, kinds: tuple[Kind, ...] = ALL) -> None:
    """Every informer has an open watch (so changes from now on arrive as events)."""
    await eventually(
        lambda: all(inf.stats[k].connected for k in kinds) and api.watcher_count() >= len(kinds),
        what="watches open",
    )


async def test_initial_sync_lists_then_watches(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = informers(sink)
    assert not inf.synced()
    await synced(inf)
    try:
        assert matches_api(sink, apiserver, *ALL)
        assert sorted(sink.calls) == sorted([("replace", k, 2) for k in ALL])  # one replace per kind
        await watching(apiserver, inf)
        [lst] = apiserver.requests(SVC, watch=False)
        assert lst.query == {"limit": "500"}
        assert lst.headers["User-Agent"].startswith("kdns/") and lst.headers["Accept"] == "application/json"
        [w] = apiserver.requests(SVC, watch=True)
        assert w.query["resourceVersion"] == inf.stats[Kind.SERVICE].resource_version
        assert w.query["allowWatchBookmarks"] == "true"
        assert 300 <= int(w.query["timeoutSeconds"]) < 600
        assert inf.stats[Kind.SERVICE].lists == 1 and inf.stats[Kind.SERVICE].synced
    finally:
        await inf.stop()
    assert not any(s.connected for s in inf.stats.values())


async def test_live_add_modify_delete(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink))
    try:
        await watching(apiserver, inf)
        apiserver.add(o.service("api", ips=("10.96.0.30",)))
        apiserver.update(
            o.endpoint_slice("web-a", "web", endpoints=[o.endpoint("10.0.0.9", ready=False)], ports=HTTP)
        )
        apiserver.delete("Service", "db", "prod")
        apiserver.delete("Namespace", "prod", None)
        await converge(sink, apiserver)
        assert (Kind.SERVICE, ("prod", "db")) in [(c[1], c[2]) for c in sink.calls if c[0] == "delete"]
        slice_ = sink.state[Kind.ENDPOINTSLICE][("default", "web-a")]
        assert isinstance(slice_, EndpointSlice) and not slice_.endpoints[0].ready
        assert sink.count("replace") == 3  # events only; no re-list
        assert inf.stats[Kind.SERVICE].events == 2 and inf.stats[Kind.SERVICE].last_event is not None
        assert inf.stats[Kind.SERVICE].resource_version == str(apiserver.resource_version - 1)
    finally:
        await inf.stop()


async def test_selectors_are_sent_and_objects_leaving_them_are_deleted(
    apiserver: ApiServer, informers: Factory
) -> None:
    apiserver.add(o.service("a", labels={"app": "web"}))
    apiserver.add(o.service("b", labels={"app": "db"}))
    apiserver.add(o.pod("p1", "10.1.0.1"))
    apiserver.add(o.pod("p2", "10.1.0.2", phase="Succeeded"))
    sink = RecordingSink()
    pods = WatchSpec(Kind.POD, field_selector="status.phase!=Succeeded,status.phase!=Failed")
    inf = await synced(informers(sink, WatchSpec(Kind.SERVICE, label_selector="app=web"), pods))
    try:
        assert set(sink.state[Kind.SERVICE]) == {("default", "a")}
        assert set(sink.state[Kind.POD]) == {("default", "p1")}
        await watching(apiserver, inf, (Kind.SERVICE, Kind.POD))
        apiserver.update(o.service("a", labels={"app": "other"}))
        apiserver.update(o.pod("p1", "10.1.0.1", phase="Failed"))
        await eventually(lambda: not sink.state[Kind.SERVICE] and not sink.state[Kind.POD], what="deletes")
        [w] = apiserver.requests(SVC, watch=True)
        assert w.query["labelSelector"] == "app=web"
        assert apiserver.requests("/api/v1/pods")[0].query["fieldSelector"] == pods.field_selector
    finally:
        await inf.stop()


async def test_bookmarks_advance_the_resource_version_used_to_resume(
    tmp_path: Path, informers: Factory
) -> None:
    with ApiServer(workdir=tmp_path, bookmark_interval=None) as api:
        api.add(o.service("web"))
        client = ApiClient.from_options(endpoint=api.url)
        sink = RecordingSink()
        inf = await synced(informers(sink, Kind.SERVICE, api_client=client))
        try:
            await watching(api, inf, (Kind.SERVICE,))
            api.add(o.pod("unrelated", "10.1.0.1"))  # moves the global RV; no Service event
            api.send_bookmarks()
            rv = str(api.resource_version)
            await eventually(lambda: inf.stats[Kind.SERVICE].resource_version == rv, what="bookmark RV")
            assert inf.stats[Kind.SERVICE].bookmarks == 1 and inf.stats[Kind.SERVICE].events == 0
            api.cut_watches()
            await eventually(lambda: len(api.requests(SVC, watch=True)) == 2, what="re-watch")
            assert api.requests(SVC, watch=True)[1].query["resourceVersion"] == rv
            assert inf.stats[Kind.SERVICE].relists == 0 and sink.count("replace") == 1
        finally:
            await inf.stop()
            await client.close()


async def test_clean_watch_end_rewatches_from_last_rv_without_relist(
    apiserver: ApiServer, informers: Factory
) -> None:
    apiserver.add(o.service("web"))
    sink = RecordingSink()
    timing = InformerTiming(watch_timeout=1, read_timeout=30, backoff_initial=0.05, backoff_max=0.5)
    inf = await synced(informers(sink, Kind.SERVICE, timing=timing))
    try:
        await eventually(lambda: inf.stats[Kind.SERVICE].watch_restarts >= 2, what="watch timeouts")
        apiserver.add(o.service("api"))
        await converge(sink, apiserver, Kind.SERVICE)
        watches = apiserver.requests(SVC, watch=True)
        assert all(1 <= int(w.query["timeoutSeconds"]) < 2 for w in watches)
        assert inf.stats[Kind.SERVICE].relists == 0 and inf.stats[Kind.SERVICE].errors == 0
    finally:
        await inf.stop()


async def test_410_on_resume_relists_and_reconciles(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink))
    try:
        await watching(apiserver, inf)
        apiserver.down()
        # While disconnected: a delete, a change, an add; then history is compacted.
        apiserver.delete("Service", "db", "prod")
        apiserver.update(o.service("web", ips=("10.96.0.77",), ports=HTTP))
        apiserver.add(o.service("new", "prod"))
        apiserver.delete(o.endpoint_slice("web-a", "web"))
        apiserver.compact()
        apiserver.up()
        await converge(sink, apiserver, what="re-listed state")
        assert inf.stats[Kind.SERVICE].relists == 1 and inf.stats[Kind.ENDPOINTSLICE].relists == 1
        assert "410" in inf.stats[Kind.SERVICE].last_error
        # The change arrived through one replace(): "web" was never deleted on the way.
        assert ("delete", Kind.SERVICE, ("default", "web")) not in sink.calls
        assert sink.count("replace", Kind.SERVICE) == 2
    finally:
        await inf.stop()


async def test_http_410_on_watch_relists(apiserver: ApiServer, informers: Factory) -> None:
    apiserver.add(o.service("web"))
    sink = RecordingSink()
    inf = await synced(informers(sink, Kind.SERVICE))
    try:
        await watching(apiserver, inf, (Kind.SERVICE,))
        apiserver.fail_next(1, 410, watch=True)
        apiserver.add(o.service("api"))
        apiserver.cut_watches()
        await eventually(lambda: inf.stats[Kind.SERVICE].relists == 1, what="re-list")
        await converge(sink, apiserver, Kind.SERVICE)
    finally:
        await inf.stop()


async def test_api_down_at_start_then_up(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    apiserver.down()
    sink = RecordingSink()
    inf = informers(sink)
    await inf.start()
    try:
        assert not await inf.wait_synced(0.5)
        await eventually(lambda: all(s.errors >= 2 for s in inf.stats.values()), what="failed attempts")
        assert not sink.calls and "Connect" in inf.stats[Kind.SERVICE].last_error
        apiserver.up()
        assert await inf.wait_synced(20)
        assert matches_api(sink, apiserver, *ALL)
        await watching(apiserver, inf)
    finally:
        await inf.stop()


async def test_watch_cut_mid_event_never_applies_half_an_object(
    apiserver: ApiServer, informers: Factory
) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink))
    try:
        await watching(apiserver, inf)
        upserts = sink.count("upsert")
        apiserver.cut_next_event()
        apiserver.update(o.service("web", ips=("10.96.0.55",), ports=HTTP))
        await converge(sink, apiserver)
        st = inf.stats[Kind.SERVICE]
        assert st.relists == 0 and "HttpError" in st.last_error  # resumed, not re-listed
        assert sink.count("upsert") == upserts + 1  # the event applied exactly once, whole
        resume = apiserver.requests(SVC, watch=True)[-1]
        assert int(resume.query["resourceVersion"]) == apiserver.resource_version - 1
    finally:
        await inf.stop()


async def test_restart_with_new_epoch(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink))
    try:
        await watching(apiserver, inf)
        apiserver.down()
        apiserver.delete("Service", "web")
        apiserver.add(o.service("api", ips=("10.96.0.40",)))
        apiserver.restart()
        await converge(sink, apiserver)
        await eventually(
            lambda: all(int(s.resource_version) > 1_000_000 for s in inf.stats.values()), what="new epoch RVs"
        )
        assert all(s.relists == 1 for s in inf.stats.values())
    finally:
        await inf.stop()


async def test_hung_watch_is_noticed_by_the_read_timeout(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    timing = InformerTiming(watch_timeout=300, read_timeout=0.5, backoff_initial=0.05, backoff_max=0.5)
    apiserver.hang_next(1, watch=False)  # the first list hangs too
    inf = await synced(informers(sink, Kind.SERVICE, timing=timing))
    try:
        await watching(apiserver, inf, (Kind.SERVICE,))
        apiserver.hang_next(1, watch=True)
        apiserver.cut_watches()  # the reconnect hits the hung watch
        st = inf.stats[Kind.SERVICE]
        # errors: the hung list, the cut, then the hung watch noticed by the read timeout.
        await eventually(
            lambda: st.errors >= 3 and "read timeout" in st.last_error, what="hung watch noticed"
        )
        apiserver.add(o.service("late"))
        await converge(sink, apiserver, Kind.SERVICE)
        assert inf.stats[Kind.SERVICE].relists == 0
    finally:
        await inf.stop()


async def test_a_kind_that_got_through_wakes_kinds_backing_off(
    apiserver: ApiServer, informers: Factory
) -> None:
    seed(apiserver)
    sink = RecordingSink()
    # Backoff so long the test would time out if services had to wait it out. A 1 s watch counts as
    # healthy (the client sees it open a little less than the server's timeoutSeconds=1, so the
    # default healthy_watch=1 would make it "ended early" now and then, and back off 600 s).
    timing = InformerTiming(
        watch_timeout=1, read_timeout=2, backoff_initial=600, backoff_max=600, healthy_watch=0.5
    )
    inf = await synced(informers(sink, Kind.SERVICE, Kind.NAMESPACE, timing=timing))
    await watching(apiserver, inf, (Kind.SERVICE, Kind.NAMESPACE))
    # The services watch is re-opened after its 1 s timeout and hangs: a read timeout, then a
    # 300..600 s connection-error backoff. Namespaces keep re-watching every second.
    apiserver.hang_next(1, watch=True, match=lambda r: r.path == SVC)
    st = inf.stats[Kind.SERVICE]
    await eventually(lambda: "read timeout" in st.last_error, what="services hung")
    apiserver.add(o.service("late"))
    await converge(sink, apiserver, Kind.SERVICE, what="services woken by the namespaces watch")
    assert st.errors == 1


async def test_slow_responses_still_sync(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    apiserver.set_latency(0.3)
    sink = RecordingSink()
    inf = await synced(informers(sink))
    try:
        apiserver.add(o.service("api"))
        await converge(sink, apiserver)
    finally:
        await inf.stop()


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_retry_after_is_honoured(apiserver: ApiServer, informers: Factory, status: int) -> None:
    seed(apiserver)
    apiserver.fail_next(1, status, retry_after=1, watch=False)
    sink = RecordingSink()
    inf = await synced(informers(sink, Kind.SERVICE))
    try:
        first, second = apiserver.requests(SVC, watch=False)[:2]
        # Backoff alone would retry after <= 0.05 s; the server asked for 1 s.
        assert second.time - first.time >= 0.9
        assert str(status) in inf.stats[Kind.SERVICE].last_error
        assert matches_api(sink, apiserver, Kind.SERVICE)
    finally:
        await inf.stop()


async def test_5xx_on_watch_resumes_without_relist(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink, Kind.SERVICE))
    try:
        await watching(apiserver, inf, (Kind.SERVICE,))
        apiserver.fail_next(3, 500, watch=True)
        apiserver.cut_watches()
        apiserver.add(o.service("api"))
        await converge(sink, apiserver, Kind.SERVICE)
        assert inf.stats[Kind.SERVICE].relists == 0 and inf.stats[Kind.SERVICE].errors >= 4
    finally:
        await inf.stop()


async def test_garbage_json_drops_the_watch_and_relists(apiserver: ApiServer, informers: Factory) -> None:
    seed(apiserver)
    sink = RecordingSink()
    inf = await synced(informers(sink, Kind.SERVICE))
    try:
        await watching(apiserver, inf, (Kind.SERVICE,))
        assert apiserver.send_garbage() == 1
        apiserver.add(o.service("api"))
        await eventually(lambda: inf.stats[Kind.SERVICE].relists == 1, what="re-list after garbage")
        assert "malformed watch event" in inf.stats[Kind.SERVICE].last_error
        await converge(sink, apiserver, Kind.SERVICE)
        for bad in (
            b'{"type": "ADDED"}\n',
            b'{"type": "ADDED", "object": "x"}\n',
            b"[1, 2]\n",
            b'{"type": "WHAT", "object": {}}\n',
        ):
            await watching(apiserver, inf, (Kind.SERVICE,))
            relists = inf.stats[Kind.SERVICE].relists
            apiserver.send_garbage(bad)
            await eventually(
                lambda r=relists: inf.stats[Kind.SERVICE].relists == r + 1, what=f"relist {bad!r}"
            )
        await converge(sink, apiserver, Kind.SERVICE)
    finally:
        await inf.stop()


async def test_401_with_rotated_token_recovers(tmp_path: Path, informers: Factory) -> None:
    with ApiServer(workdir=tmp_path, tokens=["token-1"]) as api:
        seed(api)
        token = tmp_path / "token"
        token.write_text("token-1")
        client = ApiClient(api.url, auth=TokenFileAuth(token))
        sink = RecordingSink()
        inf = await synced(informers(sink, Kind.SERVICE, api_client=client))
        try:
            await watching(api, inf, (Kind.SERVICE,))
            api.rotate_token("token-2")  # the old token is rejected from now on
            api.cut_watches()
            await eventually(lambda: "401" in inf.stats[Kind.SERVICE].last_error, what="401 seen")
            token.write_text("token-2")  # the kubelet writes the new token
            api.add(o.service("api"))
            await converge(sink, api, Kind.SERVICE)
            last = api.requests(SVC)[-1]
            assert last.headers["Authorization"] == "Bearer token-2"
            assert inf.stats[Kind.SERVICE].relists == 0
        finally:
            await inf.stop()
            await client.close()


async def test_pagination_with_three_pages(apiserver: ApiServer, informers: Factory) -> None:
    for i in range(5):
        apiserver.add(o.service(f"s{i}"))
    sink = RecordingSink()
    timing = InformerTiming(page_size=2, backoff_initial=0.05, backoff_max=0.5)
    inf = await synced(informers(sink, Kind.SERVICE, timing=timing))
    try:
        lists = apiserver.requests(SVC, watch=False)
        assert [("continue" in r.query, r.query["limit"]) for r in lists] == [
            (False, "2"),
            (True, "2"),
            (True, "2"),
        ]
        assert sink.calls == [("replace", Kind.SERVICE, 5)]  # one replace with all pages
        assert matches_api(sink, apiserver, Kind.SERVICE)
    finally:
        await inf.stop()


async def test_expired_continue_restarts_the_list(apiserver: ApiServer, informers: Factory) -> None:
    for i in range(5):
        apiserver.add(o.service(f"s{i}"))
    apiserver.fail_next(1, 410, match=lambda r: "continue" in r.query)
    sink = RecordingSink()
    timing = InformerTiming(page_size=2, backoff_initial=0.05, backoff_max=0.5)
    inf = await synced(informers(sink, Kind.SERVICE, timing=timing))
    try:
        lists = apiserver.requests(SVC, watch=False)
        assert ["continue" in r.query for r in lists] == [False, True, False, True, True]
        assert sink.calls == [("replace", Kind.SERVICE, 5)]  # the partial list was never applied
    finally:
        await inf.stop()


async def test_object_with_10k_endpoints(apiserver: ApiServer, informers: Factory) -> None:
    def big(n: int, ready: bool) -> dict[str, object]:
        eps = [
            o.endpoint(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", ready=ready, hostname=f"h{i}")
            for i in range(n)
        ]
        return o.endpoint_slice("big", "big", endpoints=eps, ports=HTTP)

    apiserver.add(big(10_000, True))
    sink = RecordingSink()
    inf = await synced(informers(sink, Kind.ENDPOINTSLICE))
    try:
        slice_ = sink.state[Kind.ENDPOINTSLICE][("default", "big")]
        assert isinstance(slice_, EndpointSlice) and len(slice_.endpoints) == 10_000
        await watching(apiserver, inf, (Kind.ENDPOINTSLICE,))
        apiserver.update(big(10_000, False))  # one ~1 MB watch event line

        def updated() -> bool:
            slice_ = sink.state[Kind.ENDPOINTSLICE][("default", "big")]
            return isinstance(slice_, EndpointSlice) and not slice_.endpoints[9_999].ready

        await eventually(updated, what="10k update")
        assert sink.state[Kind.ENDPOINTSLICE] == api_state(apiserver, Kind.ENDPOINTSLICE)
        assert inf.stats[Kind.ENDPOINTSLICE].errors == 0
    finally:
        await inf.stop()


async def test_sink_bug_is_logged_and_recovered_by_relist(
    apiserver: ApiServer, informers: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    apiserver.add(o.service("web"))

    class Flaky(RecordingSink):
        fail = True

        def upsert(self, kind: Kind, obj: object) -> None:  # type: ignore[override]
            if self.fail:
                self.fail = False
                raise RuntimeError("index bug")
            super().upsert(kind, obj)  # type: ignore[arg-type]

    sink = Flaky()
    inf = await synced(informers(sink, Kind.SERVICE))
    try:
        await watching(apiserver, inf, (Kind.SERVICE,))
        apiserver.add(o.service("api"))
        await eventually(lambda: inf.stats[Kind.SERVICE].relists == 1, what="re-list after a sink error")
        await converge(sink, apiserver, Kind.SERVICE)
        assert "unexpected error" in caplog.text and "index bug" in caplog.text
    finally:
        await inf.stop()


async def test_logs_are_coredns_style_warnings(
    apiserver: ApiServer, informers: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kdns")
    apiserver.down()
    sink = RecordingSink()
    inf = informers(sink, Kind.SERVICE)
    await inf.start()
    try:
        await eventually(lambda: inf.stats[Kind.SERVICE].errors >= 1, what="a failure")
        [rec, *_] = [r for r in caplog.records if r.name == "kdns.plugin/kubernetes"]
        assert rec.levelname == "WARNING" and rec.exc_info is None
        assert rec.getMessage().startswith("list services failed: ") and ", retrying in " in rec.getMessage()
        apiserver.up()
        assert await inf.wait_synced(20)
        assert any("restored" in r.getMessage() for r in caplog.records)
    finally:
        await inf.stop()


def test_backoff_is_jittered_exponential_and_capped() -> None:
    from kdns.k8s.informer import Backoff

    b = Backoff(0.2, 30.0)
    delays = [b.next() for _ in range(12)]
    for n, d in enumerate(delays):
        cap = min(30.0, 0.2 * 2**n)
        assert cap / 2 <= d <= cap
    b.reset()
    assert b.next() <= 0.2


def test_one_spec_per_kind(client: ApiClient) -> None:
    with pytest.raises(ValueError):
        InformerSet(client, RecordingSink(), [WatchSpec(Kind.SERVICE), WatchSpec(Kind.SERVICE, "a=b")])


async def test_no_busy_loop_while_the_api_is_down(apiserver: ApiServer, informers: Factory) -> None:
    apiserver.down()
    sink = RecordingSink()
    inf = informers(sink, Kind.SERVICE, timing=InformerTiming(backoff_initial=0.05, backoff_max=0.2))
    await inf.start()
    try:
        start = time.monotonic()
        await eventually(lambda: time.monotonic() - start > 1.0, what="a second")
        # 1 s at <= 0.2 s per attempt (after 0.05, 0.1): a handful of attempts, not thousands.
        assert 2 <= inf.stats[Kind.SERVICE].errors <= 25
    finally:
        await inf.stop()
