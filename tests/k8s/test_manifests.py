"""ManifestSource: objects from YAML/JSON files, implied namespaces, polling, broken files."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kdns.k8s.manifests import ManifestError, ManifestSource, read_objects
from kdns.k8s.models import Kind, Namespace, Service
from tests.k8s.helpers import RecordingSink, eventually
from tests.support import objects as o

ALL = (Kind.SERVICE, Kind.ENDPOINTSLICE, Kind.NAMESPACE, Kind.POD)

WEB = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-a
  namespace: default
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2], conditions: {ready: false}}]
ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
---
"""


def touch_later(path: Path, text: str) -> None:
    """Rewrite a file so its stat surely differs (size or a bumped mtime)."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= old:
        os.utime(path, ns=(st.st_atime_ns, old + 1_000_000))


Make = Callable[..., ManifestSource]


@pytest.fixture
async def source() -> AsyncIterator[Make]:
    made: list[ManifestSource] = []

    def make(paths: list[Path], sink: RecordingSink, kinds: tuple[Kind, ...] = ALL) -> ManifestSource:
        src = ManifestSource([str(p) for p in paths], sink, kinds, poll_interval=0.05)
        made.append(src)
        return src

    yield make
    for s in made:
        await s.stop()


async def test_files_lists_and_directories_with_implied_namespaces(tmp_path: Path, source: Make) -> None:
    (tmp_path / "web.yaml").write_text(WEB)
    d = tmp_path / "more"
    d.mkdir()
    items = [o.headless("db", "prod"), o.pod("db-0", "10.1.0.5", "prod")]
    (d / "list.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    (d / "extra.yml").write_text(
        json.dumps({"apiVersion": "v1", "kind": "ServiceList", "items": [o.service("cache", "infra")]})
    )
    (d / "notes.txt").write_text("not a manifest")
    sink = RecordingSink()
    src = source([tmp_path / "web.yaml", d], sink)
    await src.start()
    assert src.synced() and await src.wait_synced(0)
    assert set(sink.state[Kind.SERVICE]) == {("default", "web"), ("prod", "db"), ("infra", "cache")}
    web = sink.state[Kind.SERVICE][("default", "web")]
    assert isinstance(web, Service) and web.cluster_ips == ("10.96.0.10",)
    slice_ = sink.state[Kind.ENDPOINTSLICE][("default", "web-a")]
    assert [e.ready for e in slice_.endpoints] == [True, False]  # type: ignore[union-attr]
    assert set(sink.state[Kind.POD]) == {("prod", "db-0")}
    # Namespaces nobody declared exist because objects live in them.
    assert sink.state[Kind.NAMESPACE] == {("", n): Namespace(n) for n in ("default", "prod", "infra")}
    assert sink.count("replace") == 4


async def test_kinds_filter_and_declared_namespaces(tmp_path: Path, source: Make) -> None:
    f = tmp_path / "objs.yaml"
    f.write_text(
        WEB
        + "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n---\n"
        + json.dumps(o.pod("p", "10.1.0.1"))
    )
    sink = RecordingSink()
    await source([f], sink, (Kind.SERVICE, Kind.NAMESPACE)).start()
    assert set(sink.state) == {Kind.SERVICE, Kind.NAMESPACE}  # no pods, no slices watched
    assert set(sink.state[Kind.NAMESPACE]) == {("", "default"), ("", "empty")}


async def test_changes_are_picked_up_and_only_changed_kinds_replaced(tmp_path: Path, source: Make) -> None:
    f = tmp_path / "web.yaml"
    f.write_text(WEB)
    sink = RecordingSink()
    await source([f], sink).start()
    before = sink.count("replace")
    slice_ = o.endpoint_slice("web-a", "web", endpoints=[o.endpoint("10.0.0.3")], ports=[o.port("http", 80)])
    touch_later(f, WEB.split("---")[0] + "---\n" + json.dumps(slice_))
    await eventually(
        lambda: (
            ("default", "web-a") in sink.state[Kind.ENDPOINTSLICE]
            and sink.state[Kind.ENDPOINTSLICE][("default", "web-a")].endpoints[0].addresses == ("10.0.0.3",)
        ),  # type: ignore[union-attr]
        what="reload",
    )
    assert sink.count("replace") == before + 1
    assert sink.calls[-1] == ("replace", Kind.ENDPOINTSLICE, 1)


async def test_broken_file_keeps_last_good_data(
    tmp_path: Path, source: Make, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "web.yaml"
    f.write_text(WEB)
    sink = RecordingSink()
    src = source([f], sink)
    await src.start()
    before = dict(sink.state[Kind.SERVICE])
    with caplog.at_level(logging.ERROR, logger="kdns"):
        touch_later(f, "kind: Service\nmetadata: {name: [broken\n")
        await eventually(lambda: str(f) in caplog.text, what="error logged")
    assert "keeping the last good data" in caplog.text
    assert sink.state[Kind.SERVICE] == before
    touch_later(f, json.dumps(o.service("fixed")))
    await eventually(
        lambda: set(sink.state[Kind.SERVICE]) == {("default", "fixed")}, what="fixed file applied"
    )
    assert sink.state[Kind.ENDPOINTSLICE] == {}


async def test_object_errors_name_the_file_and_object(
    tmp_path: Path, source: Make, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: eighty}]}\n")
    sink = RecordingSink()
    with caplog.at_level(logging.ERROR, logger="kdns"):
        await source([f], sink).start()
    assert f"{f}: Service web" in caplog.text
    assert sink.state[Kind.SERVICE] == {}


async def test_file_removed_from_directory_removes_its_objects(tmp_path: Path, source: Make) -> None:
    (tmp_path / "a.yaml").write_text(json.dumps(o.service("a")))
    (tmp_path / "b.yaml").write_text(json.dumps(o.service("b")))
    sink = RecordingSink()
    await source([tmp_path], sink).start()
    assert set(sink.state[Kind.SERVICE]) == {("default", "a"), ("default", "b")}
    (tmp_path / "b.yaml").unlink()
    await eventually(lambda: set(sink.state[Kind.SERVICE]) == {("default", "a")}, what="b removed")


def test_missing_path_is_an_error_at_creation(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no-such\.yaml: no such file or directory"):
        ManifestSource([str(tmp_path / "no-such.yaml")], RecordingSink(), ALL)


def test_read_objects_rejects_non_objects(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(ManifestError, match=r"x.yaml: document 1 is not a Kubernetes object"):
        read_objects([f])
    f.write_text("kind: Service\nmetadata: {}\n")
    with pytest.raises(ManifestError, match=r"has no metadata\.name"):
        read_objects([f])
    f.write_text("a: [")
    with pytest.raises(ManifestError, match=r"x\.yaml"):
        read_objects([f])


def test_a_path_the_system_refuses_is_a_manifest_error(tmp_path: Path) -> None:
    """Regression (fuzz/targets/corefile.py): a name over NAME_MAX made is_dir() raise OSError, which
    escaped the kubernetes plugin's setup instead of becoming a Corefile error."""
    with pytest.raises(ManifestError, match="File name too long"):
        ManifestSource([str(tmp_path / ("x" * 300 + ".yaml"))], RecordingSink(), list(Kind))
