"""kind's default Corefile, exactly as kubeadm renders it into the coredns ConfigMap
(kubeadm's cmd/kubeadm/app/phases/addons/dns/manifests.go): the text the drop-in promise is about."""

KIND_COREFILE = """\
.:53 {
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
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
"""
