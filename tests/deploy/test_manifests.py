"""deploy/coredns.yaml: valid for the API (offline, strict) and the kubeadm objects kind runs, image aside.

The facts checked are kubeadm's (cmd/kubeadm/app/phases/addons/dns/manifests.go in kubernetes/kubernetes):
a drop-in changes the image and nothing else, so names, labels, args, ports, probes, securityContext and
RBAC must stay as they are.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import kdns
from tests.support.kind import KIND_COREFILE

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "coredns.yaml"
VALIDATE = Path(sys.executable).with_name("kubernetes-validate")


def _validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VALIDATE), "--strict", "-k", version, str(path)], capture_output=True, text=True, timeout=120
    )


def _objects() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(MANIFEST.read_text())}


# 1.34 introduced the named probe ports of this template; 1.37 is kind HEAD's node image.
@pytest.mark.parametrize("version", ["1.34", "1.37"])
def test_manifests_validate_strictly_offline(version: str) -> None:
    result = _validate(MANIFEST, version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 6, result.stdout


def test_validator_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The check above can fail: a misspelt securityContext field is an error under --strict."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.read_text().replace("readOnlyRootFilesystem:", "readOnlyRootFS:"))
    result = _validate(broken, "1.37")
    assert result.returncode != 0
    assert "readOnlyRootFS" in result.stdout + result.stderr


def test_objects_are_kubeadms_with_the_kdns_image() -> None:
    objs = _objects()
    assert sorted(objs) == [
        "ClusterRole/system:coredns",
        "ClusterRoleBinding/system:coredns",
        "ConfigMap/coredns",
        "Deployment/coredns",
        "Service/kube-dns",
        "ServiceAccount/coredns",
    ]
    rules = objs["ClusterRole/system:coredns"]["rules"]
    assert {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]} == {
        ("", "endpoints"),
        ("", "services"),
        ("", "pods"),
        ("", "namespaces"),
        ("discovery.k8s.io", "endpointslices"),
    }
    assert all(rule["verbs"] == ["list", "watch"] for rule in rules)
    binding = objs["ClusterRoleBinding/system:coredns"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]

    deploy = objs["Deployment/coredns"]
    assert deploy["metadata"]["namespace"] == "kube-system"
    assert deploy["spec"]["selector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "coredns" and pod["dnsPolicy"] == "Default"
    (c,) = pod["containers"]
    assert c["name"] == "coredns"
    assert c["image"] == f"kdns:{kdns.__version__}"
    assert "command" not in c and c["args"] == ["-conf", "/etc/coredns/Corefile"]
    assert {(p["name"], p["containerPort"], p["protocol"]) for p in c["ports"]} == {
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
        ("liveness-probe", 8080, "TCP"),
        ("readiness-probe", 8181, "TCP"),
    }
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
    }
    assert c["volumeMounts"] == [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}]
    assert pod["volumes"] == [
        {
            "name": "config-volume",
            "configMap": {"name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]},
        }
    ]

    svc = objs["Service/kube-dns"]["spec"]
    assert svc["clusterIP"] == "10.96.0.10" and svc["selector"] == {"k8s-app": "kube-dns"}
    assert {(p["name"], p["port"], p["protocol"]) for p in svc["ports"]} == {
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    }


def test_configmap_holds_kinds_default_corefile() -> None:
    """kind's Corefile to the byte (its parse is tests/corefile/test_parser.py's); the rehearsal
    runs this very text."""
    assert _objects()["ConfigMap/coredns"]["data"]["Corefile"] == KIND_COREFILE
