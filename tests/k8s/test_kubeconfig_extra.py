"""Without the optional `kubernetes` package, a `kubeconfig` option is a clear Corefile error.

The package is the `kubeconfig` extra (pyproject.toml); the image leaves it out. Its absence is
simulated by a None entry in sys.modules, which makes `import kubernetes` raise ImportError just as
a missing package does. tests/rehearsal checks the same error from the image itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from kdns.k8s.client import ApiClient, ApiConfigError
from tests.support.process import ROOT

HINT = "pip install 'kdns[kubeconfig]'"


def test_kubeconfig_without_the_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    with pytest.raises(ApiConfigError, match=f"kubeconfig {kubeconfig}: .*{re.escape(HINT)}"):
        ApiClient.from_options(kubeconfig=str(kubeconfig))


def test_endpoint_and_in_cluster_configs_do_not_need_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)
    assert ApiClient.from_options(endpoint="http://127.0.0.1:6443").base_url == "http://127.0.0.1:6443"
    (tmp_path / "ca.crt").write_bytes(trustme.CA().cert_pem.bytes())
    (tmp_path / "token").write_text("t")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KDNS_SERVICEACCOUNT_DIR", str(tmp_path))
    assert ApiClient.from_options().base_url == "https://10.96.0.1:443"


def test_corefile_with_kubeconfig_fails_at_its_line_without_the_package(tmp_path: Path) -> None:
    """The real kdns process, started with `kubernetes` unimportable: FILE:LINE, the extra, exit 1."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:1053 {{\n kubernetes cluster.local {{\n  kubeconfig {kubeconfig}\n }}\n}}\n")
    without_kubernetes = (
        "import runpy, sys; sys.modules['kubernetes'] = None; runpy.run_module('kdns', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", without_kubernetes, "-conf", str(corefile)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert r.returncode == 1, r.stderr
    assert f"{corefile}:2 - Error during parsing: 'kubernetes': kubeconfig {kubeconfig}" in r.stderr, r.stderr
    assert HINT in r.stderr and "Traceback" not in r.stderr, r.stderr
