"""`kubernetes [ZONES...] { … }` — cluster DNS from the Kubernetes API (or manifest files)."""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.k8s.index import ClusterIndex, ViewOptions
from kdns.k8s.models import Kind
from kdns.k8s.podips import PodAddresses, PodAddressSink
from kdns.k8s.sink import ObjectSink, ObjectSource
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.kubernetes.options import KubernetesOptions, parse_options
from kdns.plugins.kubernetes.plugin import Kubernetes, watched_kinds

__all__ = ["Kubernetes", "setup"]

# docs/dns-contract.md §16: Pods are listed without finished phases, so completed Jobs' IPs never verify.
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown"


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    opts = parse_options(d, ctx)
    kinds = watched_kinds(opts)
    index = ClusterIndex(
        ViewOptions(opts.endpoint_pod_names, opts.ignore_empty_service, not opts.noendpoints), required=kinds
    )
    # With `pods verified`, Pod IP → namespace is kept beside the index for autopath (CoreDNS's
    # AutoPath needs verified pods too).
    pods = PodAddresses() if Kind.POD in kinds else None
    sink: ObjectSink = index if pods is None else PodAddressSink(index, pods)
    plugin = Kubernetes(opts, _source(d, opts, sink, kinds), index, ctx.controller)
    plugin.pod_addresses = pods
    return plugin


def _source(d: Directive, opts: KubernetesOptions, index: ObjectSink, kinds: list[Kind]) -> ObjectSource:
    """Manifest files when `manifests` is given, else list/watch against the API.

    Imports are local on purpose: the API client pulls in the `kubernetes` package (~0.5 s of
    start-up), which a manifests-only or kubernetes-less configuration should not pay for.
    """
    if opts.manifests:
        from kdns.k8s.manifests import ManifestError, ManifestSource

        try:
            return ManifestSource(opts.manifests, index, kinds)
        except ManifestError as e:
            raise d.error(str(e)) from e
    from kdns.k8s.client import ApiClient, ApiConfigError
    from kdns.k8s.informer import InformerSet, WatchSpec

    try:
        client = ApiClient.from_options(
            endpoint=opts.endpoint, tls=opts.tls, kubeconfig=opts.kubeconfig, context=opts.kubeconfig_context
        )
    except ApiConfigError as e:
        raise d.error(str(e)) from e
    specs = []
    for kind in kinds:
        if kind is Kind.NAMESPACE:
            specs.append(WatchSpec(kind, label_selector=opts.namespace_labels))
        elif kind is Kind.POD:
            specs.append(WatchSpec(kind, label_selector=opts.labels, field_selector=POD_FIELD_SELECTOR))
        else:
            specs.append(WatchSpec(kind, label_selector=opts.labels))
    return InformerSet(client, index, specs)
