"""Tests of the image recipe and the deploy/ manifests (offline: hadolint, kubernetes-validate)."""
