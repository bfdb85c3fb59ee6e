"""`kdns explain`: a DNS answer and why, as a person reads it (docs/debugging.md).

The answer is the server's own, asked through the real query path (kdns.server.trace); the
kubernetes plugin adds what its index knows about the name (kdns.plugins.kubernetes.explain).
Served over HTTP by the `explain` directive, or built here from a Corefile (offline).
"""
