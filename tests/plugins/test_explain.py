"""`kdns explain` and the `explain` directive: the same explanations from a running kdns (over HTTP)
and offline (`-conf` with `manifests`), as text and as JSON, for a ClusterIP Service, a headless one
with unready endpoints, an ExternalName, a missing namespace and a short name asked from a
namespace; the directive's HTTP errors and Corefile errors."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kdns.corefile import CorefileError
from kdns.plugins.explain import Explain, setup
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.http import get
from tests.support.ports import free_port
from tests.support.process import KdnsProcess, run_kdns
from tests.support.units import context, directive
from tests.support.upstream import running_upstreams

HTTP = o.port("http", 80)
CLUSTER = [
    o.namespace("default"),
    o.namespace("shop"),
    o.service("web", ips=["10.96.0.20"], ports=[HTTP], selector={"app": "web"}),
    o.endpoint_slice("web-a", "web", ports=[HTTP], endpoints=[o.endpoint("10.244.0.1", pod="web-1")]),
    o.headless("db", ports=[HTTP], selector={"app": "db"}),
    o.endpoint_slice("db-a", "db", ports=[HTTP], endpoints=[
        o.endpoint("10.244.1.1", hostname="db-0", pod="db-0"),
        o.endpoint("10.244.1.2", ready=False, serving=False, hostname="db-1", pod="db-1"),
    ]),
    o.external("docs", "www.example.org"),
]  # fmt: skip
COREFILE = """.:{port} {{
    bind 127.0.0.1
    explain 127.0.0.1:{explain}
    hosts {{
        192.0.2.10 www.example.org
        fallthrough
    }}
    kubernetes cluster.local in-addr.arpa {{
        manifests {manifests}
    }}
}}
"""
Explainer = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(params=["server", "offline"])
def kdns_explain(
    request: pytest.FixtureRequest, tmp_path: Path, kdns: Callable[..., KdnsProcess]
) -> Explainer:
    """`kdns_explain(*args)` runs `kdns explain *args` against a running kdns's `explain` directive,
    or offline from the same Corefile."""
    manifests = tmp_path / "cluster.json"
    manifests.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": CLUSTER}))
    explain_port = free_port()
    text = COREFILE.format(port="{port}", explain=explain_port, manifests=manifests)
    if request.param == "server":
        kdns(text)
        return lambda *args: run_kdns(["explain", *args, "--server", f"127.0.0.1:{explain_port}"])
    corefile = tmp_path / "Corefile.offline"
    corefile.write_text(text.replace("{port}", str(free_port())))
    return lambda *args: run_kdns(["explain", *args, "-conf", str(corefile)])


def explained(run: Explainer, *args: str) -> tuple[str, dict[str, Any], int]:
    """The text, the JSON, and the exit status of one question."""
    text = run(*args)
    as_json = run(*args, "--json")
    assert text.returncode == as_json.returncode, text.stderr + as_json.stderr
    assert "Traceback" not in text.stderr + as_json.stderr
    return text.stdout, json.loads(as_json.stdout), text.returncode


def test_clusterip_service(kdns_explain: Explainer) -> None:
    text, data, status = explained(kdns_explain, "web.default.svc.cluster.local")
    assert status == 0
    assert "  web.default.svc.cluster.local.  NOERROR   plugin/kubernetes  <- answers" in text
    assert "  web.default.svc.cluster.local. 5 IN A 10.96.0.20" in text
    assert "Service default/web: ClusterIP 10.96.0.20; selector; ports http 80/tcp" in text
    assert ("    10.244.0.1  name 10-244-0-1 pod web-1  [ready=yes serving=yes terminating=no]  "
            "ready: behind the ClusterIP (kube-proxy sends the Service's traffic here)") in text
    assert data["answered_by"] == data["explained"] == "web.default.svc.cluster.local."
    assert data["tried"][0]["answer"] == ["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]
    assert data["tried"][0]["plugin"] == "kubernetes" and data["tried"][0]["server_block"] == ["."]
    service = data["cluster"]["service"]
    assert (service["type"], service["cluster_ips"], service["headless"]) == (
        "ClusterIP", ["10.96.0.20"], False)
    [endpoint] = data["cluster"]["endpoint_slices"][0]["endpoints"]
    assert (endpoint["pod"], endpoint["ready"], endpoint["in_answer"]) == ("web-1", True, False)


def test_headless_service_with_an_unready_endpoint(kdns_explain: Explainer) -> None:
    text, data, status = explained(kdns_explain, "db.default.svc.cluster.local")
    assert status == 0
    assert data["tried"][0]["answer"] == ["db.default.svc.cluster.local. 5 IN A 10.244.1.1"]
    assert "Service default/db: ClusterIP headless; selector; ports http 80/tcp" in text
    assert "name db-0 pod db-0  [ready=yes serving=yes terminating=no]  ready: in the answer" in text
    assert ("10.244.1.2  name db-1 pod db-1  [ready=no serving=no terminating=no]  "
            "not ready: cluster DNS lists ready endpoints only") in text
    endpoints = data["cluster"]["endpoint_slices"][0]["endpoints"]
    assert [(e["name"], e["ready"], e["in_answer"]) for e in endpoints] == [
        ("db-0", True, True), ("db-1", False, False)]
    # The unready Pod's own name: NXDOMAIN, and why.
    text, data, status = explained(kdns_explain, "db-1.db.default.svc.cluster.local")
    assert status == 1 and data["tried"][0]["rcode"] == "NXDOMAIN"
    assert "no ready endpoint named 'db-1' (ready: db-0)" in text


def test_external_name(kdns_explain: Explainer) -> None:
    text, data, status = explained(kdns_explain, "docs.default.svc.cluster.local")
    assert status == 0
    assert data["tried"][0]["answer"] == [
        "docs.default.svc.cluster.local. 5 IN CNAME www.example.org.",
        "www.example.org. 3600 IN A 192.0.2.10",
    ]
    assert "Service default/docs: ExternalName -> www.example.org" in text
    assert data["cluster"]["service"]["external_name"] == "www.example.org"
    assert data["cluster"]["notes"] == [
        "ExternalName Service: its name is a CNAME to www.example.org; the records after the CNAME are "
        "whatever the server answers for www.example.org"
    ]


def test_missing_namespace(kdns_explain: Explainer) -> None:
    text, data, status = explained(kdns_explain, "web.nope.svc.cluster.local")
    assert status == 1
    assert "  web.nope.svc.cluster.local.  NXDOMAIN  plugin/kubernetes" in text
    assert "Namespace nope: does not exist" in text
    assert "namespace 'nope' does not exist: no name in it exists" in text
    assert data["answered_by"] is None and data["tried"][0]["rcode"] == "NXDOMAIN"
    assert data["cluster"]["namespace"] == {"name": "nope", "exists": False, "served": True}


def test_short_name_from_a_namespace(kdns_explain: Explainer) -> None:
    text, data, status = explained(kdns_explain, "web", "-n", "default")
    assert status == 0
    assert data["search"] == ["default.svc.cluster.local.", "svc.cluster.local.", "cluster.local."]
    assert [t["name"] for t in data["tried"]] == ["web.default.svc.cluster.local."]  # the first one answers
    assert "as a Pod in namespace default asks (search default.svc.cluster.local." in text
    # From another namespace every search name misses, then the name itself goes to no plugin.
    text, data, status = explained(kdns_explain, "web", "-n", "shop")
    assert status == 1
    assert [(t["name"], t["rcode"]) for t in data["tried"]] == [
        ("web.shop.svc.cluster.local.", "NXDOMAIN"),
        ("web.svc.cluster.local.", "NXDOMAIN"),
        ("web.cluster.local.", "NXDOMAIN"),
        ("web.", "SERVFAIL"),
    ]
    # The server's SERVFAIL says why in its Extended DNS Error, and the explanation passes it on.
    assert data["tried"][-1]["reason"] == "no plugin answered: the last one passed the query on"
    assert data["tried"][-1]["extended_errors"] == [
        {"code": 0, "name": "Other Error", "text": "no plugin answered: the last one passed the query on"}]
    assert data["explained"] == "web.shop.svc.cluster.local."  # the Service name is what needs explaining
    assert "no Service 'web' in namespace 'shop'; there is one in namespace default" in text


def test_bad_questions_are_usage_errors(kdns_explain: Explainer) -> None:
    for args, message in (
        (("web", "BOGUS"), "unknown query type 'BOGUS'"),
        (("web", "-n", "Not_A_Label"), "bad namespace 'Not_A_Label'"),
        (("a..b",), "bad name 'a..b'"),
    ):
        r = kdns_explain(*args)
        assert r.returncode == 2 and message in r.stderr, r.stderr


KIND_COREFILE = """.:53 {
    errors
    health 127.0.0.1:%(held)d
    ready 127.0.0.1:%(held)d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus 127.0.0.1:%(held)d
    forward . %(upstream)s {
        max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


def test_offline_from_the_api_with_kinds_corefile(tmp_path: Path) -> None:
    """`-conf` lists the cluster from the API itself and forwards as the server would; the plugins
    beside the query path stay off (their port is held here: had one started, it would fail)."""
    with ApiServer() as api, running_upstreams() as upstreams, socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        for obj in CLUSTER:
            api.add(obj)
        up = upstreams()
        up.add("www.example.org.", "A", "192.0.2.80")
        corefile = tmp_path / "Corefile"
        corefile.write_text(KIND_COREFILE % {"api": api.url, "upstream": up.address,
                                             "held": held.getsockname()[1]})  # fmt: skip
        r = run_kdns(["explain", "docs.default.svc.cluster.local", "-conf", str(corefile), "--json"])
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["tried"][0]["answer"] == [
            "docs.default.svc.cluster.local. 30 IN CNAME www.example.org.",
            "www.example.org. 30 IN A 192.0.2.80",
        ]
        assert data["cluster"]["service"]["external_name"] == "www.example.org"
        r = run_kdns(["explain", "www.example.org", "-conf", str(corefile), "--json"])
        tried = json.loads(r.stdout)["tried"]
        assert [(t["plugin"], t["server_block"]) for t in tried] == [("forward", ["."])]
        assert {q.qname for q in up.seen()} == {"www.example.org."}


# --- the directive ------------------------------------------------------------------------------------


def test_http_interface(tmp_path: Path, kdns: Callable[..., KdnsProcess]) -> None:
    manifests = tmp_path / "cluster.json"
    manifests.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": CLUSTER}))
    port = free_port()
    kdns(COREFILE.format(port="{port}", explain=port, manifests=manifests))
    url = f"http://127.0.0.1:{port}/explain"
    status, body = get(f"{url}?name=db&namespace=default&type=aaaa")
    data = json.loads(body)
    assert status == 200 and data["type"] == "AAAA" and data["answered_by"] is None
    assert data["tried"][0]["rcode"] == "NOERROR" and not data["tried"][0]["answer"]  # NODATA: no IPv6
    for query, error in (
        ("", "missing parameter 'name'"),
        ("?name=web&type=NOPE", "unknown query type 'NOPE'"),
        ("?name=web&zone=x", "unknown parameter 'zone' (name, type, namespace)"),
    ):
        status, body = get(url + query)
        assert (status, json.loads(body)) == (400, {"error": error})
    post = urllib.request.Request(url + "?name=web", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(post, timeout=5)
    assert e.value.code == 405
    r = run_kdns(["explain", "web", "--server", f"127.0.0.1:{free_port()}"])
    assert r.returncode == 2 and "cannot reach" in r.stderr and "-conf FILE" in r.stderr


def test_directive_address_and_errors() -> None:
    plugin = setup(directive("explain"), context("explain"))
    assert isinstance(plugin, Explain) and plugin.address == ("127.0.0.1", 8053)  # loopback by default
    wide = setup(directive("explain :8053"), context("explain :8053"))
    assert isinstance(wide, Explain) and wide.address == (None, 8053)
    for line, message in (
        ("explain a:1 b:2", "wrong argument count: want 0 to 1, got 2"),
        ("explain 127.0.0.1", "missing port in address"),
        ("explain {\n  open\n}", "unknown property 'open'"),
    ):
        with pytest.raises(CorefileError, match=message):
            setup(directive(line), context(line))


def test_explain_is_a_subcommand_and_other_words_stay_errors() -> None:
    r = run_kdns(["explain"])
    assert r.returncode == 2 and "the following arguments are required: name" in r.stderr
    r = run_kdns(["-conf", "/nonexistent", "explain"])
    assert r.returncode != 0 and "extra command line arguments" in r.stderr
    r = run_kdns(["-plugins"])
    assert "  prometheus\n  explain\n  errors\n" in r.stdout
