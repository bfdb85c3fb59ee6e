"""Corefile parsing: kind's default file, syntax corners, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdns.corefile import CorefileError, parse_corefile, parse_file
from kdns.corefile.model import ServerAddress
from tests.support.kind import KIND_COREFILE


def test_kind_default_corefile() -> None:
    cf = parse_corefile(KIND_COREFILE)
    (block,) = cf.blocks
    assert block.addresses == (ServerAddress(".", 53),)
    assert [d.name for d in block.directives] == [
        "errors",
        "health",
        "ready",
        "kubernetes",
        "prometheus",
        "forward",
        "cache",
        "loop",
        "reload",
        "loadbalance",
    ]
    k8s = block.find("kubernetes")[0]
    assert k8s.args == ("cluster.local", "in-addr.arpa", "ip6.arpa")
    assert [(c.name, c.args) for c in k8s.children] == [
        ("pods", ("insecure",)),
        ("fallthrough", ("in-addr.arpa", "ip6.arpa")),
        ("ttl", ("30",)),
    ]
    assert k8s.line == 7
    assert block.find("health")[0].children[0].args == ("5s",)
    assert len(cf.sha512) == 128


def test_several_blocks_keys_ports_and_schemes() -> None:
    cf = parse_corefile(
        "cluster.local:1053 dns://example.org, 10.0.0.0/8:1053 {\n whoami\n}\n.:5300 {\n log\n}\n"
    )
    assert cf.blocks[0].addresses == (
        ServerAddress("cluster.local.", 1053),
        ServerAddress("example.org.", None),
        ServerAddress("10.in-addr.arpa.", 1053),
    )
    assert cf.blocks[1].addresses == (ServerAddress(".", 5300),)


def test_v6_cidr_zone_and_zone_case() -> None:
    cf = parse_corefile("fd00:10:96::/112 Cluster.LOCAL {\n whoami\n}\n")
    assert [a.zone for a in cf.blocks[0].addresses][1] == "cluster.local."
    with pytest.raises(CorefileError, match="nibble"):
        parse_corefile("fd00::/110 {\n whoami\n}\n")


def test_comments_quotes_and_env() -> None:
    cf = parse_corefile(
        '# top\n.:53 { # trailing\n  log "a b" `c d` # x\n  hosts {$HOSTS_FILE} {$MISSING:/etc/default}\n}\n',
        env={"HOSTS_FILE": "/tmp/hosts"},
    )
    log, hosts = cf.blocks[0].directives
    assert log.args == ("a b", "c d")
    assert hosts.args == ("/tmp/hosts", "/etc/default")


def test_env_expanding_to_several_tokens() -> None:
    cf = parse_corefile(".:53 {\n  kubernetes {$ZONES}\n}\n", env={"ZONES": "cluster.local in-addr.arpa"})
    assert cf.blocks[0].directives[0].args == ("cluster.local", "in-addr.arpa")


def test_single_block_without_braces() -> None:
    cf = parse_corefile(".:1053\nwhoami\nlog\n")
    assert [d.name for d in cf.blocks[0].directives] == ["whoami", "log"]


def test_snippets_and_import(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("log\n")
    main = tmp_path / "Corefile"
    main.write_text("(common) {\n  errors\n  cache 30\n}\n.:53 {\n  import common\n  import extra.conf\n}\n")
    cf = parse_file(str(main))
    assert [d.name for d in cf.blocks[0].directives] == ["errors", "cache", "log"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (".:53 {\n  whoami\n", 1, "missing '}'"),
        (".:53 {\n  whoami\n}\n}\n", 4, "unexpected '}'"),
        (".:99999 {\n whoami\n}\n", 1, "invalid port"),
        ("tls://.:853 {\n whoami\n}\n", 1, "unsupported scheme"),
        (".:53 {\n whoami\n}\n.:53 {\n log\n}\n", 4, "duplicate server block key"),
        ('.:53 {\n  log "open\n}\n', 2, "unterminated"),
        (".:53 {\n import nothing-here\n}\n", 2, "no snippet or file"),
        # Found by fuzz/targets/corefile.py: a NUL in a path (import, autopath's resolv.conf…)
        # raised ValueError, a label over 63 octets in a key was taken as a zone.
        (".:53 {\n import zo\0nes/*\n}\n", 2, "NUL character"),
        (".:53 {\n autopath @kubernetes\n whoami\n}\n# \0", 5, "NUL character"),
        ("x" * 64 + ".example:53 {\n whoami\n}\n", 1, "invalid zone .* label longer than 63"),
        ("a..b:53 {\n whoami\n}\n", 1, "invalid zone .* empty label"),
    ],
)
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CorefileError, match=message) as info:
        parse_corefile(text, "/etc/coredns/Corefile")
    assert info.value.line == line
    assert str(info.value).startswith(f"/etc/coredns/Corefile:{line} - Error during parsing")


def test_missing_file_is_a_corefile_error(tmp_path: Path) -> None:
    with pytest.raises(CorefileError, match="cannot read"):
        parse_file(str(tmp_path / "nope"))


def test_keys_are_names_in_escaped_text() -> None:
    """A key with octets outside printable ASCII is one name, written as kdns writes names (so the
    file plugin reads it as its origin; regression: U+FFFD in a key crashed the zone reader)."""
    blocks = parse_corefile("\u00e9.Example:53 weird\\.dot {\n whoami\n}\n").blocks
    assert blocks[0].zones == ("\\195\\169.example.", "weird\\.dot.")


def test_files_that_are_not_text_are_corefile_errors(tmp_path: Path) -> None:
    """Regression (fuzz/targets/corefile.py): `import */*` matched a binary file and
    UnicodeDecodeError escaped; a Corefile that is not UTF-8 did the same at start."""
    (tmp_path / "blob.bin").write_bytes(b"\x00\xa7\xff")
    with pytest.raises(CorefileError, match=r"blob\.bin is not UTF-8 text") as info:
        parse_corefile(".:53 {\n whoami\n import *.bin\n}\n", str(tmp_path / "Corefile"))
    assert info.value.line == 3
    (tmp_path / "Corefile").write_bytes(b".:53 {\n whoami \xa7\n}\n")
    with pytest.raises(CorefileError, match="not UTF-8 text"):
        parse_file(str(tmp_path / "Corefile"))
