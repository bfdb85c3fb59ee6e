"""Without the C extension (a source checkout with no compiler, PyPy) kdns serves the same answers
from the pure-Python replay, and says so once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.dnsclient import answer_texts, ask, rcode
from tests.support.objects import WEB_MANIFEST
from tests.support.process import KdnsProcess

# Imported by Python at start-up (site): makes `import kdns.server._hotpath` fail as if never built.
HIDE_EXTENSION = "import sys\nsys.modules['kdns.server._hotpath'] = None\n"


def test_answers_without_the_c_extension(kdns: Callable[..., KdnsProcess], tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(WEB_MANIFEST)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_EXTENSION)
    corefile = (
        ".:{port} {\n bind 127.0.0.1\n loadbalance\n"
        f" kubernetes cluster.local {{\n  manifests {tmp_path / 'cluster.yaml'}\n }}\n"
        " whoami\n}\n"
    )
    k = kdns(corefile, env={"PYTHONPATH": str(site)})
    for tcp in (False, True):
        for _ in range(3):  # the first ask prepares a template, the next ones replay it
            assert answer_texts(ask(k.port, "web.default.svc.cluster.local", tcp=tcp)) == ["10.96.0.20"]
            assert rcode(ask(k.port, "nope.default.svc.cluster.local", tcp=tcp)) == "NXDOMAIN"
            assert rcode(ask(k.port, "other.example.", tcp=tcp)) == "NOERROR"
    warnings = [line for line in k.logs().splitlines() if "_hotpath is not built" in line]
    assert len(warnings) == 1, k.logs()
