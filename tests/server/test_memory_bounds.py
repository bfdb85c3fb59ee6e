"""What a client chooses must not grow kdns's memory: every one of the 65,536 qtypes, with and
without DO, asked of a cluster name, leaves RSS within a few MB of where it was.

Regression: per-(qtype, DO) structures were created on demand and never freed (fast-path templates
and their metric slots), so one sweep took RSS from 90 to 172 MB, 255 MB with DO — past kind's
170 Mi limit, so any Pod could get kdns OOM-killed.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.dnsclient import answer_texts, ask
from tests.support.objects import WEB_MANIFEST
from tests.support.ports import free_port
from tests.support.process import KdnsProcess

COREFILE = """\
.:{port} {
    bind 127.0.0.1
    errors
    prometheus 127.0.0.1:%(metrics)d
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests %(manifest)s
        ttl 30
    }
    cache 30 {
        disable success cluster.local
        disable denial cluster.local
    }
    loadbalance
}
"""
SLACK_MIB = 6.0  # allocator noise; the defect grew RSS by 80-160 MB


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def query(qid: int, qtype: int, do: bool) -> bytes:
    name = b"\x03web\x07default\x03svc\x07cluster\x05local\x00"
    head = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if do else 0)
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00" if do else b""
    return head + name + struct.pack("!HH", qtype, 1) + opt


def sweep(port: int, do: bool, window: int = 256) -> int:
    """Ask every qtype once; returns how many answers came back (UDP, a window in flight)."""
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        s.connect(("127.0.0.1", port))
        for start in range(0, 65536, window):
            for qtype in range(start, start + window):
                s.send(query(qtype & 0xFFFF, qtype, do))
            for _ in range(window):
                try:
                    s.recv(4096)
                    answered += 1
                except TimeoutError:
                    break
    return answered


@pytest.mark.slow
def test_every_qtype_with_and_without_do_leaves_rss_flat(
    kdns: Callable[..., KdnsProcess], tmp_path: Path
) -> None:
    manifest = tmp_path / "cluster.yaml"
    manifest.write_text(WEB_MANIFEST)
    k = kdns(COREFILE % {"metrics": free_port(), "manifest": manifest})
    assert k.proc is not None
    for do in (False, True):  # warm: the common questions and both EDNS shapes have been seen
        for qtype in ("A", "AAAA", "SRV", "TXT", "PTR", "MX"):
            ask(k.port, "web.default.svc.cluster.local", qtype, edns=0 if do else False, want_dnssec=do)
    before = rss_mib(k.proc.pid)
    answered = sweep(k.port, do=False) + sweep(k.port, do=True)
    after = rss_mib(k.proc.pid)
    assert answered > 2 * 65536 * 0.99
    print(f"RSS {before:.1f} -> {after:.1f} MiB")
    assert after - before < SLACK_MIB, f"RSS grew from {before:.1f} to {after:.1f} MiB"
    assert answer_texts(ask(k.port, "web.default.svc.cluster.local")) == ["10.96.0.20"]
