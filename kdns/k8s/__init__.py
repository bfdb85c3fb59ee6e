"""Kubernetes side of kdns: slim object models, API access, list/watch informers, manifest files."""
