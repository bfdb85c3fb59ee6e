"""The DNS view of the cluster: objects in, per-Service views and a reverse map out.

The index is the ObjectSink the informers (or manifest files) feed. Every change recomputes only
the Services it touches (records.build_view) and their PTR entries; nothing is rebuilt whole. All
calls run on the event loop thread, and each public call leaves the index consistent, so a query
never sees half of an update (a re-list is applied in one `replace` call).

Slice hand-over. The EndpointSlice controller replaces slices as two API writes (delete, then
create; or remove an endpoint from one slice, then add it to another), and the watch delivers them
as two events. Applied naively, a name whose pod stays ready vanishes in between: NXDOMAIN for a
StatefulSet pod's name, or an empty A answer for a Service left with only its other family. So when
a watch event *removes* ready endpoints outright (not a ready→false flip: the controller flips pods
to not-ready before they go, so a flip is a real change and applies at once), the removed endpoints
that carry a hostname, or whose address family the Service would otherwise lose altogether, are kept
as a ghost slice until their addresses show up again in a current slice (the hand-over completed:
the new slice decides, ready or not) or HANDOVER_HOLD seconds pass. Anything else applies in one
step, and a re-list (one complete state) never holds anything. The cost: a force-deleted StatefulSet
pod, or a Service's last pod of a family, stays in DNS for up to HANDOVER_HOLD.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sortedcontainers import SortedList

from kdns.k8s.models import EndpointSlice, Kind, Model, Namespace, Pod, Service
from kdns.k8s.records import Addresses, ServiceView, build_view, endpoint_names, packed_ip

Key = tuple[str, str]
# How many addresses below a reverse name `reverse_names_below` hands over at most: enough to find
# one whose namespace is served, bounded however many addresses share the prefix.
_REVERSE_SCAN = 64
# Long enough for the controller's second write to arrive (milliseconds apart in practice, seconds
# on a loaded API server), short next to the 30 s TTL kind gives cluster names.
HANDOVER_HOLD = 2.0
Scheduler = Callable[[float, Callable[[], None]], object]


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """The kubernetes plugin options that shape records (not lookups)."""

    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    use_endpoints: bool = True  # False with `noendpoints`


class ClusterIndex:
    """Implements kdns.k8s.sink.ObjectSink; read by the kubernetes plugin."""

    def __init__(
        self,
        options: ViewOptions | None = None,
        required: Iterable[Kind] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or ViewOptions()
        self.required = frozenset(required)
        self._clock = clock
        self.services: dict[Key, Service] = {}
        self.slices: dict[Key, EndpointSlice] = {}
        self.slices_of: dict[Key, dict[str, EndpointSlice]] = {}  # service key → slice name → slice
        self.views: dict[Key, ServiceView] = {}
        self.namespaces: set[str] = set()
        self.pods: dict[Key, Pod] = {}
        self.pod_ips: dict[tuple[str, bytes], set[str]] = {}  # (ns, ip) → pod names
        # Reverse map, as Service keys only (targets are built from the view when asked):
        self.cluster_ip_ptr: dict[bytes, Key] = {}  # ClusterIP → its Service
        # Ready endpoint address → its Service, or Services (a tuple of keys) when several share it;
        # one key, not a 1-tuple, in the common case: ~6 MB less at 100k endpoints.
        self.endpoint_ptr: dict[bytes, Key | tuple[Key, ...]] = {}
        self.synced_kinds: set[Kind] = set()
        self.serial = int(self._clock())
        # Versions: objects replaced exactly when the answers that read a piece of data change, so a
        # reply computed from that data stays reusable until then (kdns.request.Reuse.deps: "this dict
        # still holds this object"). An EndpointSlice update of a ClusterIP Service changes its
        # endpoint names only, never its A/AAAA/SRV answers; a new Service or Namespace changes the
        # negative answers that named it; any change moves `everything` (answers reading much).
        self.namespace_versions: dict[str, object] = {}
        self.service_versions: dict[Key, object] = {}  # exists, addresses, CNAME, SRV of a Service
        self.endpoint_versions: dict[Key, object] = {}  # its endpoint names and their addresses
        self.everything: dict[str, object] = {"": object()}
        # Every address with a PTR, sorted per family: names between a reverse zone's apex and a
        # PTR record exist (empty non-terminals, RFC 8020), and finding one is a bisection.
        self.reverse_v4: SortedList = SortedList()
        self.reverse_v6: SortedList = SortedList()
        self._dirty: set[Key] = set()
        self.listeners: list[Callable[[set[Key]], None]] = []  # told which services changed
        # Slice hand-over (see module docstring): slices whose removal is on hold, per Service.
        self.call_later: Scheduler | None = None  # set by the plugin once an event loop runs
        self._ghosts: dict[Key, dict[int, EndpointSlice]] = {}  # Service → ghost id → removed endpoints
        self._ghost_ids = itertools.count()
        self._in_relist = False
        self._removed: dict[Key, list[EndpointSlice]] = {}  # this call's removed ready endpoints

    # --- ObjectSink -----------------------------------------------------------------------------

    def replace(self, kind: Kind, objects: Iterable[Model]) -> None:
        current = self._keys_of(kind)
        seen: set[Key] = set()
        if kind is Kind.ENDPOINTSLICE:  # a complete list has no hand-over gap: no ghosts, old or new
            self._dirty.update(self._ghosts)
            self._ghosts.clear()
        self._in_relist = True
        try:
            for obj in objects:
                self._upsert(obj)
                seen.add(obj.key)
            for key in current - seen:
                self._delete(kind, key)
        finally:
            self._in_relist = False
        self.synced_kinds.add(kind)
        self._flush()

    def upsert(self, kind: Kind, obj: Model) -> None:
        self._upsert(obj)
        self._flush()

    def delete(self, kind: Kind, key: Key) -> None:
        self._delete(kind, key)
        self._flush()

    # --- reads ----------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self.required <= self.synced_kinds

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.namespaces

    def view(self, namespace: str, name: str) -> ServiceView | None:
        return self.views.get((namespace, name))

    def ptr_targets(self, ip: bytes) -> list[tuple[str, str]]:
        """(namespace, relative target) of the PTRs for `ip`: its ClusterIP's Service if any (first
        only, as CoreDNS), else one per Service whose ready endpoint has that address."""
        owner = self.cluster_ip_ptr.get(ip)
        if owner is not None:
            return [(owner[0], self.views[owner].relname)]
        out: dict[tuple[str, str], None] = {}
        for key in self.services_with_endpoint(ip):
            relname = self.views[key].relname
            for label, addrs in self.endpoints_of(key).items():  # a scan: PTR queries are rare
                if any(packed_ip(a) == ip for a in (*addrs.v4, *addrs.v6)):
                    out[(key[0], f"{label}.{relname}")] = None
        return list(out)

    def endpoints_of(self, key: Key) -> dict[str, Addresses]:
        """label → addresses of a Service's ready endpoints: kept in headless views, derived from
        the slices for ClusterIP Services (see ServiceView.endpoints)."""
        view = self.views.get(key)
        if view is None or not view.cluster_ips:
            return view.endpoints if view is not None else {}
        if not self.options.use_endpoints:
            return {}
        return endpoint_names(self._slices_for(key), self.options.endpoint_pod_names)

    def pod_exists(self, namespace: str, ip: bytes) -> bool:
        return bool(self.pod_ips.get((namespace, ip)))

    def services_with_endpoint(self, ip: bytes) -> list[Key]:
        return list(_keys(self.endpoint_ptr.get(ip)))

    # --- internals ------------------------------------------------------------------------------

    def _keys_of(self, kind: Kind) -> set[Key]:
        if kind is Kind.SERVICE:
            return set(self.services)
        if kind is Kind.ENDPOINTSLICE:
            return set(self.slices)
        if kind is Kind.NAMESPACE:
            return {("", n) for n in self.namespaces}
        return set(self.pods)

    def _upsert(self, obj: Model) -> None:
        if isinstance(obj, Service):
            self.services[obj.key] = obj
            self._dirty.add((obj.namespace, obj.name))
        elif isinstance(obj, EndpointSlice):
            old = self.slices.get(obj.key)
            if old is not None and old.service_name != obj.service_name:
                self._unlink_slice(old)
            elif old is not None:
                self._hold(old, obj)
            self.slices[obj.key] = obj
            if obj.service_name:
                svc_key = (obj.namespace, obj.service_name)
                self.slices_of.setdefault(svc_key, {})[obj.name] = obj
                self._dirty.add(svc_key)
        elif isinstance(obj, Namespace):
            if obj.name not in self.namespaces:
                self.namespaces.add(obj.name)
                self.namespace_versions[obj.name] = object()
                self._changed()
        elif isinstance(obj, Pod):
            self._remove_pod(obj.key)
            if not obj.terminating and obj.ip:  # docs/dns-contract.md §16: deleting pods are dropped
                self.pods[obj.key] = obj
                ip = packed_ip(obj.ip)
                if ip is not None:
                    self.pod_ips.setdefault((obj.namespace, ip), set()).add(obj.name)
            self._touch()

    def _delete(self, kind: Kind, key: Key) -> None:
        if kind is Kind.SERVICE:
            if self.services.pop(key, None) is not None:
                self._dirty.add(key)
        elif kind is Kind.ENDPOINTSLICE:
            old = self.slices.pop(key, None)
            if old is not None:
                self._hold(old, None)
                self._unlink_slice(old)
        elif kind is Kind.NAMESPACE:
            if key[1] in self.namespaces:
                self.namespaces.discard(key[1])
                self.namespace_versions.pop(key[1], None)
                self._changed()
        elif self._remove_pod(key):
            self._touch()

    def _unlink_slice(self, sl: EndpointSlice) -> None:
        svc_key = (sl.namespace, sl.service_name)
        group = self.slices_of.get(svc_key)
        if group is not None:
            group.pop(sl.name, None)
            if not group:
                del self.slices_of[svc_key]
        if sl.service_name:
            self._dirty.add(svc_key)

    def _remove_pod(self, key: Key) -> bool:
        pod = self.pods.pop(key, None)
        if pod is None:
            return False
        ip = packed_ip(pod.ip)
        names = self.pod_ips.get((pod.namespace, ip)) if ip is not None else None
        if names is not None and ip is not None:
            names.discard(pod.name)
            if not names:
                del self.pod_ips[(pod.namespace, ip)]
        return True

    def _flush(self) -> None:
        """Recompute the views of every Service touched by the last call, and their PTRs."""
        removed, self._removed = self._removed, {}
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        changed: set[Key] = set()
        for key in dirty:
            old = self.views.get(key)
            self._release_handed_over(key)
            new = self._compute(key)
            if key in removed and self._keep_ghosts(key, removed[key], new):
                new = self._compute(key)
            if new == old:
                continue
            changed.add(key)
            self._set_ptrs(key, old, new)
            self._version(self.service_versions, key, _service_part(old), _service_part(new))
            self._version(self.endpoint_versions, key, _endpoint_part(old), _endpoint_part(new))
            if new is None:
                self.views.pop(key, None)
            else:
                self.views[key] = new
        if changed:
            self._touch()
            for listener in self.listeners:
                listener(changed)

    def _slices_for(self, key: Key) -> list[EndpointSlice]:
        return [*(self.slices_of.get(key) or {}).values(), *(self._ghosts.get(key) or {}).values()]

    def _hold(self, old: EndpointSlice, new: EndpointSlice | None) -> None:
        """Note the ready endpoints `new` drops from `old`; _flush decides which to keep as ghosts."""
        if self.call_later is None or self._in_relist or not old.service_name:
            return
        present = {ip for ep in new.endpoints for ip in ep.addresses} if new is not None else set()
        gone = tuple(ep for ep in old.endpoints if ep.ready and not present.intersection(ep.addresses))
        if gone:
            key = (old.namespace, old.service_name)
            self._removed.setdefault(key, []).append(dataclasses.replace(old, endpoints=gone))

    def _keep_ghosts(self, key: Key, removed: list[EndpointSlice], view: ServiceView | None) -> bool:
        """Hold the removed endpoints a client would miss: hostnames, or a family the Service loses."""
        if view is None or self.call_later is None:
            return False
        families = {6 if ":" in ip else 4 for ip in view.endpoint_ips}
        kept = False
        for sl in removed:
            lost_family = (6 if sl.address_type == "IPv6" else 4) not in families
            eps = tuple(ep for ep in sl.endpoints if ep.hostname or lost_family)
            if eps:
                ghost_id = next(self._ghost_ids)
                self._ghosts.setdefault(key, {})[ghost_id] = dataclasses.replace(sl, endpoints=eps)
                self.call_later(HANDOVER_HOLD, functools.partial(self._expire, key, ghost_id))
                kept = True
        return kept

    def _release_handed_over(self, key: Key) -> None:
        """Drop ghosts whose every address is in a current slice again: the new slice now decides."""
        ghosts = self._ghosts.get(key)
        if not ghosts:
            return
        current = {
            ip
            for sl in (self.slices_of.get(key) or {}).values()
            for ep in sl.endpoints
            for ip in ep.addresses
        }
        for ghost_id, ghost in list(ghosts.items()):
            if key not in self.services or all(current.issuperset(ep.addresses) for ep in ghost.endpoints):
                del ghosts[ghost_id]
        if not ghosts:
            del self._ghosts[key]

    def _expire(self, key: Key, ghost_id: int) -> None:
        ghosts = self._ghosts.get(key)
        if ghosts is not None and ghosts.pop(ghost_id, None) is not None:
            if not ghosts:
                del self._ghosts[key]
            self._dirty.add(key)
            self._flush()

    def _compute(self, key: Key) -> ServiceView | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        slices = self._slices_for(key)
        o = self.options
        return build_view(
            svc,
            slices,
            endpoint_pod_names=o.endpoint_pod_names,
            ignore_empty_service=o.ignore_empty_service,
            use_endpoints=o.use_endpoints,
        )

    def _set_ptrs(self, key: Key, old: ServiceView | None, new: ServiceView | None) -> None:
        """Replace one Service's entries in the reverse map: its ClusterIPs and endpoint addresses.
        Every entry it touches gets a new value object, which is what invalidates replayed PTRs."""
        touched: set[bytes] = set()
        if old is not None:
            for ip in _packed_all(old.cluster_ips):
                if self.cluster_ip_ptr.get(ip) == key:
                    del self.cluster_ip_ptr[ip]
                    touched.add(ip)
            for ip in _packed_all(old.endpoint_ips):
                self._set_endpoint_ptr(ip, tuple(k for k in _keys(self.endpoint_ptr.get(ip)) if k != key))
                touched.add(ip)
        if new is not None:
            for ip in _packed_all(new.cluster_ips):
                self.cluster_ip_ptr.setdefault(ip, key)
                touched.add(ip)
            for ip in _packed_all(new.endpoint_ips):
                keys = _keys(self.endpoint_ptr.get(ip))
                if key not in keys:
                    self._set_endpoint_ptr(ip, (*keys, key))
                touched.add(ip)
        for ip in touched:
            listed = self.reverse_v4 if len(ip) == 4 else self.reverse_v6
            has_ptr = ip in self.cluster_ip_ptr or ip in self.endpoint_ptr
            if has_ptr and ip not in listed:
                listed.add(ip)
            elif not has_ptr and ip in listed:
                listed.remove(ip)

    def _set_endpoint_ptr(self, ip: bytes, keys: tuple[Key, ...]) -> None:
        if not keys:
            self.endpoint_ptr.pop(ip, None)
        else:
            self.endpoint_ptr[ip] = keys[0] if len(keys) == 1 else keys

    def reverse_names_below(self, prefix: bytes, nibbles: int) -> list[bytes]:
        """Addresses with a PTR whose first `nibbles` half-octets are those of `prefix` (a packed
        address, 4 or 16 octets, zero beyond the prefix), in order; a bisection, then a scan of the
        matches only as far as the caller reads."""
        listed = self.reverse_v4 if len(prefix) == 4 else self.reverse_v6
        whole, half = divmod(nibbles, 2)
        head = prefix[:whole]
        found: list[bytes] = []
        for ip in listed.irange(minimum=prefix):
            if ip[:whole] != head or (half and ip[whole] >> 4 != prefix[whole] >> 4):
                break
            found.append(ip)
            if len(found) >= _REVERSE_SCAN:
                break
        return found

    @staticmethod
    def _version(versions: dict[Key, object], key: Key, old: object, new: object) -> None:
        """A new version object for `key` when its part of the view changed; none once it is gone."""
        if new is None:
            versions.pop(key, None)
        elif new != old:
            versions[key] = object()

    def _changed(self) -> None:
        """Anything changed: answers that read much of the index are stale."""
        self.everything[""] = object()

    def _touch(self) -> None:
        """A DNS-relevant change (docs/dns-contract.md §15: the SOA serial is the time of the last one)."""
        self._changed()
        self.serial = int(self._clock())


def _keys(value: Key | tuple[Key, ...] | None) -> tuple[Key, ...]:
    """endpoint_ptr's value as keys: a Key is a tuple of strings, several keys a tuple of tuples."""
    if value is None:
        return ()
    return (value,) if isinstance(value[0], str) else value


def _packed_all(ips: Iterable[str]) -> set[bytes]:
    return {p for p in map(packed_ip, ips) if p is not None}


def _service_part(view: ServiceView | None) -> object:
    """What the answers at a Service's own name (and its SRV names) read of its view."""
    if view is None:
        return None
    return (
        view.exists,
        view.addresses,
        view.cname,
        view.srv_by_port,
        view.srv_all,
        view.cluster_ips,
        view.endpoints,
    )  # fmt: skip  (a headless Service's SRV glue: its endpoints' addresses)


def _endpoint_part(view: ServiceView | None) -> object:
    """What the answers at a Service's endpoint names read of its view."""
    if view is None:
        return None
    return (view.endpoints, view.endpoint_names_digest)
