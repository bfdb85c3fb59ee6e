"""kdns: cluster DNS for Kubernetes service discovery, a drop-in replacement for CoreDNS."""

__version__ = "0.1.0"
