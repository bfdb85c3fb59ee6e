"""Objects from YAML/JSON manifest files instead of the API (the kdns-only `manifests PATH…` option).

So kdns can serve cluster names with no cluster: for demos, for tests, and to rehearse a Corefile.
Files are what `kubectl apply -f` takes: multi-document YAML, JSON, `kind: List` (or `ServiceList`
…) with `items`, and directories of *.yaml/*.yml/*.json (not recursive, as kubectl without -R).
Only Service, EndpointSlice, Namespace and Pod objects are used; other kinds are ignored.

Namespaces need not be declared: every namespace that a Service, EndpointSlice or Pod lives in is
added as an implied Namespace object, so a demo works with a single Service file. Files are polled
(mtime, size) and re-applied on change; a file that fails to load keeps its last good objects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from kdns.k8s.models import Kind, Model, Namespace, parse_object
from kdns.k8s.sink import ObjectSink
from kdns.log import plugin_logger
from kdns.tasks import cancel_and_wait

log = plugin_logger("kubernetes")

SUFFIXES = (".yaml", ".yml", ".json")
KIND_BY_NAME = {k.kind_name: k for k in Kind}

_Stamp = tuple[int, int]  # (mtime_ns, size)


class ManifestError(Exception):
    """A manifest path or file that cannot be used; the message names it."""


def manifest_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named by `paths`: files as given, directories' *.yaml/*.yml/*.json sorted by name."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:  # is_dir/is_file are False for a missing path, but raise on e.g. a name over NAME_MAX
            if path.is_dir():
                out.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()))
                continue
            if path.is_file():
                out.append(path)
                continue
        except OSError as e:
            raise ManifestError(f"manifests {raw}: {e.strerror}") from e
        raise ManifestError(f"manifests {raw}: no such file or directory")
    return out


def read_file(path: Path) -> list[dict[str, Any]]:
    """The API objects in one file, Lists expanded. Raises ManifestError naming the file."""
    try:
        text = path.read_text()
        docs = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    return list(_objects(path, docs))


def _objects(path: Path, docs: Sequence[Any]) -> Iterator[dict[str, Any]]:
    for i, doc in enumerate(docs, 1):
        if doc is None:  # empty document (a trailing ---)
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise ManifestError(f"{path}: document {i} is not a Kubernetes object (no kind)")
        if doc["kind"].endswith("List") and "items" in doc:
            yield from _objects(path, doc.get("items") or [])
            continue
        if not isinstance((doc.get("metadata") or {}).get("name"), str):
            raise ManifestError(f"{path}: document {i} ({doc['kind']}) has no metadata.name")
        yield doc


def read_objects(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every object in `paths`, in file order (used by the test API server to preload manifests)."""
    return [obj for f in manifest_files(paths) for obj in read_file(f)]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class ManifestSource:
    """Feeds a sink from manifest files; polls them every poll_interval seconds for changes.

    Paths must exist when the source is created (ManifestError otherwise, for a clear config error);
    files that later vanish or break are logged and keep their last good objects.
    """

    def __init__(
        self, paths: Sequence[str], sink: ObjectSink, kinds: Sequence[Kind], poll_interval: float = 1.0
    ) -> None:
        self.paths = list(paths)
        manifest_files(self.paths)  # fail early on a missing path
        self.sink, self.kinds, self.poll_interval = sink, list(kinds), poll_interval
        self._files: dict[Path, tuple[_Stamp | None, list[tuple[Kind, Model]]]] = {}
        self._known: dict[str, list[Path]] = {}  # last files found under each path
        self._missing: set[str] = set()  # paths already reported missing (log once)
        self._applied: dict[Kind, list[Model]] = {}
        self._task: asyncio.Task[None] | None = None
        self._synced = False

    async def start(self) -> None:
        self.reload()
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="manifests")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def synced(self) -> bool:
        return self._synced

    async def wait_synced(self, timeout: float) -> bool:
        return self._synced  # the first load happens inside start()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self.reload()
            except Exception:  # never let the poller die: log and try again next round
                log.error("manifests: reload failed", exc_info=True)

    def reload(self) -> bool:
        """Re-read changed files and apply kinds whose objects changed; True if anything was applied."""
        files: list[Path] = []
        for raw in self.paths:
            try:
                found = manifest_files([raw])
            except ManifestError as exc:
                if raw not in self._missing:
                    log.error("%s; keeping the last good data", exc)
                    self._missing.add(raw)
                found = self._known.get(raw, [])
            else:
                self._missing.discard(raw)
                self._known[raw] = found
            files.extend(found)
        changed = set(files) != set(self._files)
        fresh: dict[Path, tuple[_Stamp | None, list[tuple[Kind, Model]]]] = {}
        for path in files:
            stamp = _stamp(path)
            old = self._files.get(path)
            if old is not None and old[0] == stamp:
                fresh[path] = old
                continue
            try:
                fresh[path] = (stamp, self._parse(path))
                changed = True
            except ManifestError as exc:
                log.error("%s; keeping the last good data", exc)
                fresh[path] = (stamp, old[1] if old else [])
        self._files = fresh
        if not changed and self._synced:
            return False
        return self._apply()

    def _parse(self, path: Path) -> list[tuple[Kind, Model]]:
        """Models of one file's DNS-relevant objects; one bad object fails the whole file."""
        out = []
        for obj in read_file(path):
            kind = KIND_BY_NAME.get(obj["kind"])
            if kind is None:
                continue
            try:
                out.append((kind, parse_object(kind, obj)))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ManifestError(f"{path}: {obj['kind']} {obj['metadata']['name']}: {exc!r}") from exc
        return out

    def _apply(self) -> bool:
        by_kind: dict[Kind, dict[tuple[str, str], Model]] = {k: {} for k in self.kinds}
        namespaces: set[str] = set()
        for path, (_, models) in self._files.items():
            for kind, model in models:
                if not isinstance(model, Namespace):
                    namespaces.add(model.namespace)
                if kind not in by_kind:
                    continue
                if model.key in by_kind[kind]:
                    log.warning(
                        "manifests %s: %s %s defined twice, the later one wins",
                        path,
                        kind.kind_name,
                        "/".join(filter(None, model.key)),
                    )
                by_kind[kind][model.key] = model
        if Kind.NAMESPACE in by_kind:
            for ns in namespaces:
                by_kind[Kind.NAMESPACE].setdefault(("", ns), Namespace(ns))
        applied = False
        for kind, objs in by_kind.items():
            current = sorted(objs.values(), key=lambda m: m.key)
            if self._synced and self._applied.get(kind) == current:
                continue
            self.sink.replace(kind, current)
            self._applied[kind] = current
            applied = True
        if self._synced and applied:
            counts = ", ".join(f"{len(v)} {k.value}" for k, v in self._applied.items())
            log.info("manifests reloaded: %s", counts)
        self._synced = True
        return applied
