"""The one-way interface from object sources (API informers, manifest files) to the DNS index."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from kdns.k8s.models import Kind, Model


class ObjectSink(Protocol):
    """Receives the cluster's objects. Sources call it from the event loop thread only."""

    def replace(self, kind: Kind, objects: Iterable[Model]) -> None:
        """The complete current set of `kind` (a list or re-list): add, update and remove to match.

        The first call for a kind also marks that kind as synced. Implementations must apply it as
        one step: no name may disappear and come back while it is applied.
        """

    def upsert(self, kind: Kind, obj: Model) -> None:
        """An object was added or modified (watch ADDED/MODIFIED)."""

    def delete(self, kind: Kind, key: tuple[str, str]) -> None:
        """An object is gone (watch DELETED); key is (namespace, name), namespace "" if cluster-scoped."""


class ObjectSource(Protocol):
    """Something that feeds an ObjectSink: API informers (InformerSet) or manifest files (ManifestSource)."""

    async def start(self) -> None:
        """Begin feeding the sink; returns at once (the work runs in tasks)."""

    async def stop(self) -> None:
        """Stop feeding; the sink keeps what it has."""

    def synced(self) -> bool:
        """True once every kind had its first complete set applied with sink.replace()."""

    async def wait_synced(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for synced(); returns synced()."""
