"""Pod IP → namespace, for autopath: which namespace's search path a client Pod uses.

Kept apart from the ClusterIndex on purpose: it is a slim map (a packed address → an interned
namespace string, no Pod objects) built only with `pods verified`, fed by a sink placed in front of
the index (`PodAddressSink`), so the index itself does not change shape for it.

Addresses shared by several Pods (hostNetwork Pods carry their node's IP) keep a count per
namespace; such an address names a namespace only while all its Pods are in one namespace,
otherwise it names none and autopath leaves those clients to search for themselves (CoreDNS picks
the first Pod the index returns, which may be another namespace's).
"""

from __future__ import annotations

from collections.abc import Iterable

from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind, Model, Pod
from kdns.k8s.records import packed_ip


class PodAddresses:
    """Packed Pod IP → namespace (see the module docstring)."""

    def __init__(self) -> None:
        self._one: dict[bytes, str] = {}  # addresses of exactly one Pod
        self._shared: dict[bytes, dict[str, int]] = {}  # addresses of several: namespace → Pods

    def __len__(self) -> int:
        return len(self._one) + len(self._shared)

    def namespace_of(self, ip: bytes) -> str | None:
        """The namespace of the Pods with this address, None when none or several namespaces."""
        ns = self._one.get(ip)
        if ns is not None:
            return ns
        shared = self._shared.get(ip)
        if shared is not None and len(shared) == 1:
            return next(iter(shared))
        return None

    def add(self, pod: Pod) -> None:
        ip = _address(pod)
        if ip is None:
            return
        shared = self._shared.get(ip)
        if shared is not None:
            shared[pod.namespace] = shared.get(pod.namespace, 0) + 1
            return
        other = self._one.pop(ip, None)
        if other is None:
            self._one[ip] = pod.namespace
            return
        counts = {other: 1}
        counts[pod.namespace] = counts.get(pod.namespace, 0) + 1
        self._shared[ip] = counts

    def remove(self, pod: Pod) -> None:
        ip = _address(pod)
        if ip is None:
            return
        shared = self._shared.get(ip)
        if shared is None:
            if self._one.get(ip) == pod.namespace:
                del self._one[ip]
            return
        left = shared.get(pod.namespace, 0) - 1
        if left > 0:
            shared[pod.namespace] = left
        else:
            shared.pop(pod.namespace, None)
        if sum(shared.values()) == 1:  # one Pod left: back to the plain map
            del self._shared[ip]
            self._one[ip] = next(iter(shared))
        elif not shared:
            del self._shared[ip]

    def replace(self, pods: Iterable[Pod]) -> None:
        self._one.clear()
        self._shared.clear()
        for pod in pods:
            self.add(pod)


def _address(pod: Pod) -> bytes | None:
    """The address a Pod is known by, as the index counts it: none while terminating (CoreDNS drops
    such Pods) or before it has one."""
    if pod.terminating or not pod.ip:
        return None
    return packed_ip(pod.ip)


class PodAddressSink:
    """An ObjectSink in front of the ClusterIndex that also keeps PodAddresses up to date.

    A watch event for a Pod carries the new object only (a delete: its key), so the Pod it replaces
    is read from the index before the index applies the event.
    """

    def __init__(self, index: ClusterIndex, pods: PodAddresses) -> None:
        self.index = index
        self.pods = pods

    def replace(self, kind: Kind, objects: Iterable[Model]) -> None:
        if kind is Kind.POD:
            objects = list(objects)
            self.pods.replace(o for o in objects if isinstance(o, Pod))
        self.index.replace(kind, objects)

    def upsert(self, kind: Kind, obj: Model) -> None:
        if isinstance(obj, Pod):
            self._forget(obj.key)
            self.pods.add(obj)
        self.index.upsert(kind, obj)

    def delete(self, kind: Kind, key: tuple[str, str]) -> None:
        if kind is Kind.POD:
            self._forget(key)
        self.index.delete(kind, key)

    def _forget(self, key: tuple[str, str]) -> None:
        old = self.index.pods.get(key)
        if old is not None:
            self.pods.remove(old)
