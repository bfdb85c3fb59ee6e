"""A rehearsal of the kind swap: the built image run with runc the way kubelet runs CoreDNS's container."""
