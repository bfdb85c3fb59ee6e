"""Test support: a real kdns process, a DNS client, and a Kubernetes API server for tests."""
