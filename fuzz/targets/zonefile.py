"""Fuzz target: an RFC 1035 master file through the file plugin's reader and zone
(kdns.plugins.file.zonefile, kdns.plugins.file.zone), as `file` loads it.

Input: the zone file's bytes (read as latin-1, as the reader reads files, so every octet is kept).
The origin is example.org.; the text is read as if it were a file in zones/, so `$INCLUDE
example.org.lab.inc` finds the real one.

What must hold: the text loads, or a ZoneFileError says `FILE:LINE: …` (line 0 only for what is
about the whole zone: no SOA, a file that cannot be read). A zone that loads must answer: every
owner and type it holds is looked up (an A query at a CNAME), and each reply's records pack into
wire form (a record that loads but cannot be sent would be a SERVFAIL at query time). Anything else
is a `Finding`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from kdns.plugins.file.zone import Zone, name_key
from kdns.plugins.file.zonefile import ZoneFileError, ZoneFileReader

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "example.org."
FILE = str(ROOT / "zones" / "fuzz.zone")  # $INCLUDE is relative to the including file: zones/


class Finding(AssertionError):
    """An input that broke the rule in the module docstring."""


def prepare() -> None:
    logging.disable(logging.CRITICAL)


def one_input(data: bytes) -> None:
    reader = ZoneFileReader()
    try:
        records = reader.read_text(data.decode("latin-1"), ORIGIN, FILE)
        zone = Zone(ORIGIN, records, (FILE, *reader.files))
    except ZoneFileError as e:
        if e.line < 0 or (e.line == 0 and e.file == FILE and "SOA" not in e.message):
            raise Finding(f"an error without its line: {e}") from e
        if not str(e).startswith(f"{e.file}:{e.line}: " if e.line else f"{e.file}: "):
            raise Finding(f"an error not rendered FILE:LINE: {e}") from e
        return
    asked: set[tuple[tuple[bytes, ...], int]] = set()
    reply = DNSRecord()  # every answer in one message: one pack, and a retry per record on failure
    for record in records:
        # Each owner and type once; at a CNAME, an A query, so the chain is followed.
        qtype = QTYPE.A if record.rtype == QTYPE.CNAME else record.rtype
        if (name_key(record.owner), qtype) not in asked:
            asked.add((name_key(record.owner), qtype))
            result = zone.lookup(record.owner, qtype)
            reply.add_answer(*result.answer, *result.authority, *result.additional)
    try:
        reply.pack()
    except Exception:
        for rr in reply.rr:
            try:
                DNSRecord(rr=[rr]).pack()
            except Exception as e:
                raise Finding(f"{rr.rname} {QTYPE.get(rr.rtype)}: loads, but cannot be sent: {e}") from e
        raise
