"""The Corefiles real clusters ship (issue #13), in one place for every test that runs them.

Each text is the distribution's own, with its template placeholders left as they are
(`%{CLUSTER_DOMAIN}%`, `__PILLAR__…__`) or, for templates with defaults (kubespray), rendered with
those defaults. Tests fill placeholders and move ports, addresses and paths to test-owned ones with
`localize`, which insists that every substitution applies, so a changed text fails loudly.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Distribution:
    name: str
    corefile: str
    source: str  # where the text comes from


def localize(text: str, substitutions: Sequence[tuple[str, str]]) -> str:
    """Apply (old, new) replacements in order; each `old` must occur."""
    for old, new in substitutions:
        assert old in text, f"{old!r} not in the Corefile: the distribution's text changed shape"
        text = text.replace(old, new)
    return text


# k3s-io/k3s manifests/coredns.yaml: NodeHosts is a key of the same ConfigMap (the nodes' names);
# the coredns-custom ConfigMap (optional) is mounted at /etc/coredns/custom.
K3S = Distribution("k3s", """\
.:53 {
    errors
    health
    ready
    kubernetes %{CLUSTER_DOMAIN}% in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
""", "k3s-io/k3s manifests/coredns.yaml")

# minikube: kubeadm's Corefile with `log` and a hosts block for host.minikube.internal injected
# (the gateway address of the minikube network, 192.168.49.1 with the docker driver).
MINIKUBE = Distribution("minikube", """\
.:53 {
    log
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    hosts {
       192.168.49.1 host.minikube.internal
       fallthrough
    }
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
""", "minikube's coredns ConfigMap after `minikube start` (docker driver)")

# Amazon EKS's coredns add-on (its odd indentation kept).
EKS = Distribution("eks", """\
.:53 {
    errors
    health {
        lameduck 5s
      }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
""", "the EKS coredns add-on's ConfigMap")

# AKS: the managed Corefile imports the user's coredns-custom ConfigMap (mounted at custom/).
AKS = Distribution("aks", """\
.:53 {
    errors
    ready
    health {
      lameduck 5s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
      ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import custom/*.override
}
import custom/*.server
""", "AKS's coredns ConfigMap (kube-system), with the coredns-custom imports")

# kubespray roles/kubernetes-apps/ansible/templates/coredns-config.yml.j2 rendered with its defaults
# and enable_coredns_k8s_external: true (coredns_k8s_external_zone: k8s_external.local).
KUBESPRAY = Distribution("kubespray", """\
.:53 {
    errors {
    }
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf {
      prefer_udp
      max_concurrent 1000
    }
    k8s_external k8s_external.local
    cache 30
    loop
    reload
    loadbalance
}
""", "kubespray coredns-config.yml.j2, defaults + enable_coredns_k8s_external")

# kubernetes/kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml: node-cache fills
# __PILLAR__CLUSTER__DNS__ (kube-dns-upstream's ClusterIP) and __PILLAR__UPSTREAM__SERVERS__
# (/etc/resolv.conf); the others are set when the manifest is installed.
NODELOCALDNS = Distribution("nodelocaldns", """\
__PILLAR__DNS__DOMAIN__:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    reload
    loop
    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    prometheus :9253
    health __PILLAR__LOCAL__DNS__:8080
    }
in-addr.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    prometheus :9253
    }
ip6.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__
    forward . __PILLAR__CLUSTER__DNS__ {
            force_tcp
    }
    prometheus :9253
    }
.:53 {
    errors
    cache 30
    reload
    loop
    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__
    forward . __PILLAR__UPSTREAM__SERVERS__
    prometheus :9253
    }
""", "kubernetes/kubernetes cluster/addons/dns/nodelocaldns/nodelocaldns.yaml")

# openshift/cluster-dns-operator: the operator's Corefile with two forwarded zones over DNS over TLS
# (pkg/operator/controller/testdata/forwardplugin_tls).
OPENSHIFT = Distribution("openshift", """\
# foo
foo.com:5353 {
    prometheus 127.0.0.1:9153
    forward . tls://1.1.1.1 tls://2.2.2.2:5353 {
        tls_servername dns.foo.com
        tls
        policy round_robin
    }
    errors
    log . {
        class error
    }
    bufsize 512
    cache 900 {
        denial 9984 30
    }
}
# bar
bar.com:5353 {
    prometheus 127.0.0.1:9153
    forward . tls://1.1.1.1 tls://2.2.2.2:5353 {
        tls_servername dns.bar.com
        tls /etc/pki/dns.bar.com-ca-cacerts-2/ca-bundle.crt
        policy round_robin
    }
    errors
    log . {
        class error
    }
    bufsize 512
    cache 900 {
        denial 9984 30
    }
}
.:5353 {
    bufsize 512
    errors
    log . {
        class error
    }
    health {
        lameduck 20s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    prometheus 127.0.0.1:9153
    forward . /etc/resolv.conf {
        policy sequential
    }
    cache 900 {
        denial 9984 30
    }
    reload
}
hostname.bind:5353 {
    chaos
}
""", "openshift/cluster-dns-operator testdata/forwardplugin_tls")

ALL = (K3S, MINIKUBE, EKS, AKS, KUBESPRAY, NODELOCALDNS, OPENSHIFT)
