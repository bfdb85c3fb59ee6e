"""The test API server behaves like kube-apiserver for list/watch: real HTTP, checked with aiohttp."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import objects as o
from tests.support.apiserver import ApiServer, parse_label_selector
from tests.support.ports import free_port
from tests.support.process import ROOT

SVC = "/api/v1/services"
EPS = "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, api: ApiServer, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(api.url + path, params=params) as resp:
        return resp.status, await resp.json()


async def watch(
    http: aiohttp.ClientSession, api: ApiServer, path: str, count: int | None = None, **params: str
) -> list[dict[str, Any]]:
    """Events of one watch, until `count` events or the server ends the stream."""
    events = []
    async with http.get(
        api.url + path, params={"watch": "1", **params}, timeout=aiohttp.ClientTimeout(total=30)
    ) as resp:
        assert resp.status == 200
        async for line in resp.content:
            events.append(json.loads(line))
            if count is not None and len(events) >= count:
                break
    return events


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


async def test_list_is_shaped_like_the_real_api(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    apiserver.add(o.namespace("default"))
    apiserver.add(o.service("web", ips=("10.96.0.20",)))
    apiserver.add(o.endpoint_slice("web-abc", "web", endpoints=[o.endpoint("10.0.0.1")]))
    status, body = await get(http, apiserver, SVC)
    assert status == 200
    assert body["kind"] == "ServiceList" and body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"] == str(apiserver.resource_version)
    assert "continue" not in body["metadata"]
    [item] = body["items"]
    assert "kind" not in item and "apiVersion" not in item  # typed list items carry neither
    assert item["spec"]["clusterIPs"] == ["10.96.0.20"] and item["metadata"]["uid"]
    status, body = await get(http, apiserver, EPS)
    assert (body["kind"], body["apiVersion"]) == ("EndpointSliceList", "discovery.k8s.io/v1")
    assert body["items"][0]["metadata"]["labels"]["kubernetes.io/service-name"] == "web"


async def test_namespaced_paths_and_unknown_resources(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a", "ns1"))
    apiserver.add(o.service("b", "ns2"))
    apiserver.add(o.endpoint_slice("a-1", "a", "ns1"))
    assert names((await get(http, apiserver, "/api/v1/namespaces/ns1/services"))[1]["items"]) == ["a"]
    assert (
        names(
            (await get(http, apiserver, "/apis/discovery.k8s.io/v1/namespaces/ns2/endpointslices"))[1][
                "items"
            ]
        )
        == []
    )
    status, body = await get(http, apiserver, "/api/v1/endpointslices")  # wrong group
    assert status == 404 and body["kind"] == "Status" and body["code"] == 404
    status, _ = await get(http, apiserver, "/api/v1/namespaces/ns1/namespaces")  # cluster-scoped
    assert status == 404


async def test_pagination_serves_a_consistent_snapshot(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    for i in range(5):
        apiserver.add(o.service(f"s{i}"))
    _, page1 = await get(http, apiserver, SVC, limit="2")
    assert names(page1["items"]) == ["s0", "s1"] and page1["metadata"]["remainingItemCount"] == 3
    rv = page1["metadata"]["resourceVersion"]
    apiserver.add(o.service("s2a"))  # after the snapshot: not part of this list
    apiserver.delete("Service", "s4")
    _, page2 = await get(http, apiserver, SVC, limit="2", **{"continue": page1["metadata"]["continue"]})
    _, page3 = await get(http, apiserver, SVC, limit="2", **{"continue": page2["metadata"]["continue"]})
    assert names(page2["items"]) == ["s2", "s3"] and names(page3["items"]) == ["s4"]
    assert "continue" not in page3["metadata"]
    assert page2["metadata"]["resourceVersion"] == page3["metadata"]["resourceVersion"] == rv


async def test_expired_continue_token_is_410(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    for i in range(3):
        apiserver.add(o.service(f"s{i}"))
    _, page1 = await get(http, apiserver, SVC, limit="1")
    apiserver.compact()
    status, body = await get(http, apiserver, SVC, limit="1", **{"continue": page1["metadata"]["continue"]})
    assert status == 410 and body["reason"] == "Expired" and body["code"] == 410
    status, _ = await get(http, apiserver, SVC, **{"continue": "not-a-token"})
    assert status == 400


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a"]),
        ("app==web", ["a"]),
        ("app!=web", ["b", "c"]),  # != matches objects without the key too
        ("app in (web, db)", ["a", "b"]),
        ("app notin (web)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("app in (web,db),tier=front", ["a"]),
        ("", ["a", "b", "c"]),
    ],
)
async def test_label_selectors(
    apiserver: ApiServer, http: aiohttp.ClientSession, selector: str, expected: list[str]
) -> None:
    apiserver.add(o.service("a", labels={"app": "web", "tier": "front"}))
    apiserver.add(o.service("b", labels={"app": "db", "tier": "back"}))
    apiserver.add(o.service("c"))
    status, body = await get(http, apiserver, SVC, labelSelector=selector)
    assert status == 200 and names(body["items"]) == expected


def test_label_selector_parser_rejects_garbage() -> None:
    for bad in ("app=(x", "=x", "app in x", "a b"):
        with pytest.raises(ValueError):
            parse_label_selector(bad)


async def test_field_selectors(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    apiserver.add(o.pod("p1", "10.1.0.1", phase="Running"))
    apiserver.add(o.pod("p2", "10.1.0.2", phase="Succeeded"))
    apiserver.add(o.pod("p3", "10.1.0.3", "other", phase="Failed"))
    sel = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"  # CoreDNS's pod selector
    assert names((await get(http, apiserver, "/api/v1/pods", fieldSelector=sel))[1]["items"]) == ["p1"]
    assert names(
        (await get(http, apiserver, "/api/v1/pods", fieldSelector="metadata.namespace=other"))[1]["items"]
    ) == ["p3"]
    assert names(
        (await get(http, apiserver, "/api/v1/pods", fieldSelector="metadata.name==p2"))[1]["items"]
    ) == ["p2"]
    status, body = await get(http, apiserver, SVC, fieldSelector="spec.bogus=1")
    assert status == 400 and "field label not supported" in body["message"]
    status, _ = await get(http, apiserver, SVC, labelSelector="a in b")
    assert status == 400


async def test_watch_replays_from_resource_version_then_streams_live(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("old"))
    rv = apiserver.resource_version
    apiserver.add(o.service("web"))
    apiserver.update(o.service("web", ips=("10.96.0.99",)))
    apiserver.delete("Service", "old")
    events = await watch(http, apiserver, SVC, count=3, resourceVersion=str(rv))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "web"),
        ("MODIFIED", "web"),
        ("DELETED", "old"),
    ]
    assert events[0]["object"]["kind"] == "Service" and events[0]["object"]["apiVersion"] == "v1"
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[-1] == apiserver.resource_version


async def test_watch_from_zero_starts_with_the_current_state(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a"))
    apiserver.add(o.service("b"))
    events = await watch(http, apiserver, SVC, count=2, resourceVersion="0")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b")]


async def test_watch_ends_cleanly_at_timeout_seconds(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    events = await watch(
        http, apiserver, SVC, resourceVersion=str(apiserver.resource_version), timeoutSeconds="1"
    )
    assert events == []  # the stream ended (no exception: a clean chunked end)


async def test_too_old_resource_version_gets_an_error_event_410(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a"))
    rv = apiserver.resource_version
    apiserver.add(o.service("b"))
    apiserver.compact()
    events = await watch(http, apiserver, SVC, resourceVersion=str(rv))
    [event] = events
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired" and "too old resource version" in event["object"]["message"]


async def test_history_window_expires_old_resource_versions(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with ApiServer(history=3, workdir=tmp_path) as api:
        start = api.resource_version
        for i in range(5):
            api.add(o.service(f"s{i}"))
        [event] = await watch(http, api, SVC, resourceVersion=str(start))
        assert event["object"]["code"] == 410
        recent = await watch(http, api, SVC, count=2, resourceVersion=str(api.resource_version - 2))
        assert names([e["object"] for e in recent]) == ["s3", "s4"]


async def test_bookmarks_only_when_allowed(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with ApiServer(bookmark_interval=0.2, workdir=tmp_path) as api:
        api.add(o.service("a"))
        rv = str(api.resource_version)
        events = await watch(http, api, SVC, count=2, resourceVersion=rv, allowWatchBookmarks="true")
        assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
        assert events[0]["object"]["metadata"]["resourceVersion"] == rv
        assert events[0]["object"]["kind"] == "Service"
        assert await watch(http, api, SVC, resourceVersion=rv, timeoutSeconds="1") == []


async def test_object_leaving_the_selector_is_deleted_for_the_watcher(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a", labels={"app": "web"}))
    rv = apiserver.resource_version
    apiserver.update(o.service("a", labels={"app": "other"}))
    apiserver.update(o.service("a", labels={"app": "web"}))
    events = await watch(http, apiserver, SVC, count=2, resourceVersion=str(rv), labelSelector="app=web")
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    assert events[0]["object"]["metadata"]["labels"] == {"app": "web"}  # the previous state
    assert events[0]["object"]["metadata"]["resourceVersion"] == str(rv + 1)  # with the change's RV


async def test_bearer_token_required_and_rotated(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with ApiServer(tokens=["t1"], workdir=tmp_path) as api:

        async def status_with(token: str) -> int:
            async with http.get(api.url + SVC, headers={"Authorization": f"Bearer {token}"}) as resp:
                return resp.status

        assert await status_with("t1") == 200
        assert await status_with("nope") == 401
        api.rotate_token("t2")
        assert (await status_with("t1"), await status_with("t2")) == (401, 200)
        async with http.get(api.url + SVC) as resp:
            assert resp.status == 401 and (await resp.json())["reason"] == "Unauthorized"


async def test_injected_failures_carry_retry_after(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    apiserver.fail_next(2, 429, retry_after=3)
    for _ in range(2):
        async with http.get(apiserver.url + SVC) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
            assert (await resp.json())["reason"] == "TooManyRequests"
    assert (await get(http, apiserver, SVC))[0] == 200
    apiserver.fail_next(1, 503, watch=True)
    assert (await get(http, apiserver, SVC))[0] == 200  # lists are not affected
    async with http.get(apiserver.url + SVC, params={"watch": "1"}) as resp:
        assert resp.status == 503


async def test_hung_response_sends_headers_then_nothing(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.hang_next(1)
    timeout = aiohttp.ClientTimeout(sock_read=0.5)
    async with http.get(apiserver.url + SVC, timeout=timeout) as resp:
        assert resp.status == 200
        with pytest.raises(TimeoutError):
            await resp.read()
    apiserver.release_hung()
    assert (await get(http, apiserver, SVC))[0] == 200


async def test_cut_next_event_leaves_half_a_line(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    async with http.get(apiserver.url + SVC, params={"watch": "1", "resourceVersion": "1"}) as resp:
        await _wait_watchers(apiserver, 1)
        apiserver.cut_next_event()
        apiserver.add(o.service("a"))
        data = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                data += chunk
    assert data and b"\n" not in data and data.startswith(b'{"type": "ADDED"')
    with pytest.raises(ValueError):
        json.loads(data)


async def test_garbage_line_on_the_stream(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    async with http.get(apiserver.url + SVC, params={"watch": "1", "resourceVersion": "1"}) as resp:
        await _wait_watchers(apiserver, 1)
        assert apiserver.send_garbage() == 1
        line = await resp.content.readline()
    with pytest.raises(ValueError):
        json.loads(line)


async def test_down_refuses_connections_and_up_reuses_the_port(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a"))
    url = apiserver.url
    apiserver.down()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, apiserver, SVC)
    apiserver.add(o.service("b"))  # the state lives on while down
    apiserver.up()
    assert apiserver.url == url
    assert names((await get(http, apiserver, SVC))[1]["items"]) == ["a", "b"]


async def test_restart_jumps_the_epoch_and_expires_old_versions(
    apiserver: ApiServer, http: aiohttp.ClientSession
) -> None:
    apiserver.add(o.service("a"))
    rv = apiserver.resource_version
    apiserver.restart()
    assert apiserver.resource_version >= rv + 1_000_000
    [event] = await watch(http, apiserver, SVC, resourceVersion=str(rv))
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_tls_with_ca_and_client_certificates(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with ApiServer(tls=True, tokens=["secret"], workdir=tmp_path) as api:
        assert api.url.startswith("https://") and api.ca_path is not None
        ctx = ssl.create_default_context(cafile=str(api.ca_path))
        async with http.get(api.url + SVC, ssl=ctx) as resp:
            assert resp.status == 401  # TLS fine, no credentials
        cert, key, _ = api.client_cert_files(tmp_path)
        with_cert = ssl.create_default_context(cafile=str(api.ca_path))
        with_cert.load_cert_chain(cert, key)
        async with http.get(api.url + SVC, ssl=with_cert) as resp:
            assert resp.status == 200  # a client certificate from the CA authenticates
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(api.url + SVC)  # not trusted without the CA


async def test_requests_are_recorded(apiserver: ApiServer, http: aiohttp.ClientSession) -> None:
    await get(http, apiserver, SVC, labelSelector="app=x", limit="5")
    [req] = apiserver.requests(SVC)
    assert req.query == {"labelSelector": "app=x", "limit": "5"} and not req.is_watch
    assert req.method == "GET" and "Host" in req.headers


def test_standalone_server_with_manifests(tmp_path: Path) -> None:
    manifest = tmp_path / "objs.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
        "spec: {clusterIP: 10.96.0.5, ports: [{port: 80}]}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: ignored}\n"
    )
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.apiserver", "--port", str(port), "--manifest", str(manifest)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert f"listening on http://127.0.0.1:{port}" in proc.stdout.readline()
        import urllib.request

        body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{SVC}", timeout=10))
        assert names(body["items"]) == ["web"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


async def _wait_watchers(api: ApiServer, n: int) -> None:
    from tests.k8s.helpers import eventually

    await eventually(lambda: api.watcher_count() >= n, what=f"{n} watchers")
