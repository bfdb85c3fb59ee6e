"""What the kubernetes plugin's index knows about one name, for `kdns explain`.

The one module with Kubernetes detail for explanations. It reads the index's raw models
(`ClusterIndex.services`, `.slices_of`, `.namespaces`, `.pod_ips`) and the plugin's options, never
the precomputed views, and it does not decide the answer: the reply, from the real query path,
says which endpoints are in it; this module says what each one is and why it is in or out
(docs/dns-contract.md §1–§8 are the rules it describes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import QTYPE, DNSRecord

from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Endpoint, EndpointSlice, Service, ServicePort
from kdns.k8s.records import endpoint_label, packed_ip
from kdns.plugins.kubernetes.names import address_from_pod_label, address_from_reverse
from kdns.plugins.kubernetes.options import REVERSE_SUFFIXES, KubernetesOptions, is_reverse_zone
from kdns.plugins.kubernetes.plugin import Kubernetes
from kdns.protocol import names


@dataclass
class NamespaceInfo:
    name: str
    exists: bool  # in the index: the API has it (and its labels match `namespace_labels`)
    served: bool  # not left out by the plugin's `namespaces` option


@dataclass
class ServiceInfo:
    namespace: str
    name: str
    type: str
    cluster_ips: list[str]
    headless: bool
    selector: bool
    publish_not_ready_addresses: bool
    external_name: str | None
    ports: list[str]  # "http 80/tcp"


@dataclass
class EndpointInfo:
    addresses: list[str]
    name: str  # its label in DNS: `<name>.<svc>.<ns>.svc.<zone>`
    hostname: str | None
    pod: str | None
    ready: bool
    serving: bool
    terminating: bool
    in_answer: bool
    why: str


@dataclass
class SliceInfo:
    name: str
    address_type: str
    ports: list[str]
    endpoints: list[EndpointInfo]


@dataclass
class ClusterDetail:
    """The index's facts about one name under a kubernetes zone, and notes in plain words."""

    zone: str
    form: str  # service | endpoint | port | namespace | pod | reverse | zone | other
    synced: bool
    namespace: NamespaceInfo | None = None
    service: ServiceInfo | None = None
    endpoint_slices: list[SliceInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find(plugins: Iterable[object], qname: str) -> Kubernetes | None:
    """The kubernetes plugin among `plugins` (a server block's) whose zones hold `qname`."""
    for plugin in plugins:
        if isinstance(plugin, Kubernetes) and names.zone_matches(qname, plugin.opts.zones) is not None:
            return plugin
    return None


def describe(plugin: Kubernetes, qname: str, qtype: int, reply: DNSRecord | None) -> ClusterDetail:
    """The detail for `qname` (lower-case, absolute, in one of the plugin's zones) and the reply the
    server gave to `qtype` (None when there was none)."""
    return _Describer(plugin.index, plugin.opts, qtype, reply).describe(qname)


class _Describer:
    def __init__(self, index: ClusterIndex, opts: KubernetesOptions, qtype: int, reply: DNSRecord | None):
        self.index = index
        self.opts = opts
        self.qtype = qtype
        self.addresses: set[bytes] = set()  # A/AAAA data in the answer and additional sections, packed
        self.targets: set[str] = set()  # SRV targets' first labels
        for rr in (*reply.rr, *reply.ar) if reply is not None else ():
            if rr.rtype in (QTYPE.A, QTYPE.AAAA):
                self.addresses.add(bytes(rr.rdata.data))
            elif rr.rtype == QTYPE.SRV:
                self.targets.update(names.split(str(rr.rdata.target).lower())[:1])

    def describe(self, qname: str) -> ClusterDetail:
        zone = names.zone_matches(qname, self.opts.zones)
        assert zone is not None
        detail = ClusterDetail(zone, "other", self.index.synced)
        if not self.index.synced:
            detail.notes.append(
                "the kubernetes plugin has not finished its first sync with the API: a name it cannot "
                "find yet is SERVFAIL, not NXDOMAIN"
            )
        labels = names.relative(qname, zone)
        if is_reverse_zone(zone):
            self._reverse(detail, qname)
        elif not labels:
            detail.form = "zone"
            detail.notes.append(f"the apex of the cluster zone {zone}: SOA and NS records only")
        elif labels[-1] == "svc":
            self._svc(detail, labels)
        elif labels[-1] == "pod":
            self._pod(detail, labels)
        elif labels not in (["dns-version"], ["ns", "dns"], ["dns"]):
            detail.notes.append(
                f"not a cluster name: under {zone} the kubernetes plugin answers <service>.<namespace>.svc, "
                "<endpoint>.<service>.<namespace>.svc, _<port>._<proto>.<service>.<namespace>.svc and "
                "<address>.<namespace>.pod names"
            )
        return detail

    # --- <...>.<ns>.svc.<zone> ------------------------------------------------------------------

    def _svc(self, detail: ClusterDetail, labels: list[str]) -> None:
        if len(labels) == 1:
            detail.form = "namespace"
            detail.notes.append("svc.<zone> holds no records itself (NODATA)")
            return
        namespace = labels[-2]
        if not self._namespace(detail, namespace):
            return
        if len(labels) == 2:
            detail.form = "namespace"
            detail.notes.append("a namespace's name holds no records itself (NODATA)")
            return
        if len(labels) > 5:
            detail.notes.append(
                "too many labels for a Service name (_<port>._<proto>.<service>.<namespace>.svc is the "
                "longest); a Pod's resolver builds such names when it appends its search domains to a "
                "name with fewer than 5 dots"
            )
            return
        svc = self.index.services.get((namespace, labels[-3]))
        if svc is None:
            self._no_service(detail, namespace, labels[-3])
            return
        detail.form = ("service", "endpoint", "port")[len(labels) - 3]
        detail.service = _service_info(svc)
        if svc.is_external_name:
            self._external_name(detail, svc, len(labels))
            return
        asked = labels[0] if len(labels) == 4 else None
        slices = sorted((self.index.slices_of.get(svc.key) or {}).values(), key=lambda sl: sl.name)
        detail.endpoint_slices = [self._slice(svc, sl, asked) for sl in slices]
        self._service_notes(detail, svc, slices, labels)

    def _namespace(self, detail: ClusterDetail, namespace: str) -> bool:
        allowed = self.opts.namespaces
        served = not allowed or namespace in allowed
        info = NamespaceInfo(namespace, namespace in self.index.namespaces, served)
        detail.namespace = info
        if not info.exists:
            where = " (or its labels do not match namespace_labels)" if self.opts.namespace_labels else ""
            detail.notes.append(f"namespace {namespace!r} does not exist{where}: no name in it exists")
        elif not info.served:
            detail.notes.append(
                f"namespace {namespace!r} is not served: the kubernetes plugin's `namespaces` option lists "
                f"only {', '.join(sorted(allowed))}"
            )
        return info.exists and info.served

    def _no_service(self, detail: ClusterDetail, namespace: str, name: str) -> None:
        detail.form = "service"
        elsewhere = sorted(ns for ns, n in self.index.services if n == name and ns != namespace)
        note = f"no Service {name!r} in namespace {namespace!r}"
        if elsewhere:
            note += f"; there is one in namespace{'s' if len(elsewhere) > 1 else ''} {', '.join(elsewhere)}"
        detail.notes.append(note)

    def _external_name(self, detail: ClusterDetail, svc: Service, depth: int) -> None:
        if depth > 3:
            detail.notes.append("names below an ExternalName Service do not exist (NXDOMAIN)")
            return
        target = svc.external_name.rstrip(".")
        if not target or packed_ip(target) is not None:
            detail.notes.append(
                f"ExternalName {target!r} is not a host name: the Service has no name in DNS (NXDOMAIN)"
            )
            return
        detail.notes.append(
            f"ExternalName Service: its name is a CNAME to {target}; the records after the CNAME are "
            f"whatever the server answers for {target}"
        )
        if self.qtype in (QTYPE.A, QTYPE.AAAA) and not self.addresses:
            detail.notes.append(
                f"{target} has no {QTYPE.get(self.qtype)} records here: the answer is the CNAME alone"
            )

    def _service_notes(
        self, detail: ClusterDetail, svc: Service, slices: list[EndpointSlice], labels: list[str]
    ) -> None:
        notes = detail.notes
        ready = [ep for sl in slices if sl.address_type != "FQDN" for ep in sl.endpoints if ep.ready]
        if self.opts.noendpoints:
            notes.append("`noendpoints`: the kubernetes plugin does not watch EndpointSlices")
        elif not slices:
            notes.append(
                "no EndpointSlices: nothing writes them for a Service without a selector (create them "
                f"by hand, labelled kubernetes.io/service-name={svc.name})"
                if not svc.has_selector
                else "no EndpointSlices yet: no Pod matches the selector, or the controller has not "
                "written them"
            )
        if svc.headless and not ready:
            notes.append(
                "a headless Service without ready endpoints has no name in DNS (NXDOMAIN) until one is ready"
            )
        elif not svc.headless and len(labels) == 3:
            if not ready and self.opts.ignore_empty_service:
                notes.append("no ready endpoints and `ignore empty_service`: NXDOMAIN")
            else:
                notes.append("ClusterIP Service: its name answers with the ClusterIP, whatever the endpoints")
        if svc.publish_not_ready:
            notes.append("publishNotReadyAddresses: the controller marks every endpoint ready")
        if len(labels) == 4:
            self._endpoint_name_notes(detail, labels[0])
        elif len(labels) == 5:
            port, proto = labels[0].removeprefix("_"), labels[1].removeprefix("_")
            if not any(p.name.lower() == port and p.protocol == proto for p in svc.ports):
                named = ", ".join(f"_{p.name}._{p.protocol}" for p in svc.ports if p.name) or "none"
                notes.append(f"no port named {port!r} with protocol {proto!r} (named ports: {named})")

    def _endpoint_name_notes(self, detail: ClusterDetail, asked: str) -> None:
        eps = [ep for sl in detail.endpoint_slices for ep in sl.endpoints]
        if any(ep.name == asked and ep.ready for ep in eps):
            return
        known = sorted({ep.name for ep in eps if ep.ready})
        detail.notes.append(
            f"no ready endpoint named {asked!r} (ready: {', '.join(known) or 'none'}). An endpoint's name is "
            "its hostname (a StatefulSet Pod's, when the StatefulSet's serviceName is this headless "
            "Service), else its address with dashes"
            + ("" if self.opts.endpoint_pod_names else " (with endpoint_pod_names: its Pod's name)")
        )

    def _slice(self, svc: Service, sl: EndpointSlice, asked: str | None) -> SliceInfo:
        endpoints = [self._endpoint(svc, sl, ep, asked) for ep in sl.endpoints]
        return SliceInfo(sl.name, sl.address_type, _ports(sl.ports), endpoints)

    def _endpoint(self, svc: Service, sl: EndpointSlice, ep: Endpoint, asked: str | None) -> EndpointInfo:
        first = ep.addresses[0] if ep.addresses else ""
        label = endpoint_label(ep.hostname, ep.target_name, first, self.opts.endpoint_pod_names)
        in_answer = label in self.targets or any(packed_ip(a) in self.addresses for a in ep.addresses)
        info = EndpointInfo(
            list(ep.addresses), label, ep.hostname, ep.target_name, ep.ready, ep.serving, ep.terminating,
            in_answer, "",
        )  # fmt: skip
        info.why = self._why(svc, sl, ep, info, asked)
        return info

    def _why(
        self, svc: Service, sl: EndpointSlice, ep: Endpoint, info: EndpointInfo, asked: str | None
    ) -> str:
        """Why this endpoint is in the answer or not (docs/dns-contract.md §1, §3, §4, §8)."""
        if self.opts.noendpoints:
            return "not used: `noendpoints`"
        if sl.address_type not in ("IPv4", "IPv6"):
            return f"not used: cluster DNS reads IPv4 and IPv6 slices, not {sl.address_type}"
        state = "ready" if ep.ready else "not ready"
        if ep.terminating:
            state += ", terminating"
        if ep.ready and not ep.serving:
            state += " (the Pod itself is not; publishNotReadyAddresses)"
        if asked is not None and info.name != asked:
            return f"{state}; its name is {info.name}"
        if info.in_answer:
            return f"{state}: in the answer"
        if not svc.headless and asked is None:
            # DNS answers the ClusterIP; kube-proxy picks the endpoint (and, since Kubernetes 1.28,
            # falls back to serving terminating endpoints while none is ready).
            if ep.ready:
                return f"{state}: behind the ClusterIP (kube-proxy sends the Service's traffic here)"
            if ep.serving and ep.terminating:
                return f"{state}: kube-proxy uses it only while no endpoint is ready"
            return f"{state}: kube-proxy sends it no traffic"
        if not ep.ready:
            return f"{state}: cluster DNS lists ready endpoints only"
        v6 = ":" in (ep.addresses[0] if ep.addresses else "")
        if self.qtype == QTYPE.A and v6:
            return f"{state}: an IPv6 address, in the AAAA answer"
        if self.qtype == QTYPE.AAAA and not v6:
            return f"{state}: an IPv4 address, in the A answer"
        return f"{state}: not part of a {QTYPE.get(self.qtype)} answer"

    # --- <address>.<ns>.pod.<zone> --------------------------------------------------------------

    def _pod(self, detail: ClusterDetail, labels: list[str]) -> None:
        detail.form = "pod"
        if len(labels) == 1:
            detail.notes.append("pod.<zone> holds no records itself (NODATA)")
            return
        mode = self.opts.pods
        if mode == "disabled":
            detail.notes.append(
                "`pods disabled` (the default): the kubernetes plugin answers no Pod names; "
                "`pods insecure` or `pods verified` turn them on"
            )
            return
        if not self._namespace(detail, labels[-2]) or len(labels) == 2:
            return
        ip = address_from_pod_label(labels[0]) if len(labels) == 3 else None
        if ip is None:
            detail.notes.append(
                "a Pod name is its address with dashes (10-244-1-5, fd00--5) then the namespace: "
                f"{'.'.join(labels[:-2])!r} is not one"
            )
        elif mode == "insecure":
            detail.notes.append(f"`pods insecure`: {ip} is answered without checking that a Pod has it")
        else:
            packed = packed_ip(ip)
            pods = sorted(self.index.pod_ips.get((labels[-2], packed), ())) if packed else []
            detail.notes.append(
                f"`pods verified`: {ip} belongs to Pod {', '.join(pods)}"
                if pods
                else f"`pods verified`: no running Pod in namespace {labels[-2]!r} has address {ip}"
            )

    # --- reverse zones --------------------------------------------------------------------------

    def _reverse(self, detail: ClusterDetail, qname: str) -> None:
        detail.form = "reverse"
        suffix = next(s for s in REVERSE_SUFFIXES if names.is_subdomain(qname, s))
        packed = address_from_reverse(names.relative(qname, suffix), suffix)
        if packed is None:
            detail.notes.append("not the reverse name of a whole address: no PTR here")
            return
        owners = [
            f"the ClusterIP of Service {svc.namespace}/{svc.name}"
            for svc in self.index.services.values()
            if any(packed_ip(ip) == packed for ip in svc.cluster_ips)
        ]  # a scan: explanations are rare
        for (namespace, name), group in self.index.slices_of.items():
            for sl in group.values():
                if any(packed_ip(a) == packed for ep in sl.endpoints if ep.ready for a in ep.addresses):
                    owners.append(f"a ready endpoint of Service {namespace}/{name}")
                    break
        detail.notes.append(
            "the address is " + "; ".join(owners)
            if owners
            else "no Service has this address as its ClusterIP or as a ready endpoint"
        )


def _service_info(svc: Service) -> ServiceInfo:
    return ServiceInfo(
        namespace=svc.namespace,
        name=svc.name,
        type=svc.type,
        cluster_ips=list(svc.cluster_ips),
        headless=svc.headless,
        selector=svc.has_selector,
        publish_not_ready_addresses=svc.publish_not_ready,
        external_name=svc.external_name or None,
        ports=_ports(svc.ports),
    )


def _ports(ports: Iterable[ServicePort]) -> list[str]:
    return [f"{p.name + ' ' if p.name else ''}{p.port}/{p.protocol}" for p in ports]
