"""Writing a reply's records in wire form after the client's own question (sans-IO).

For answers prepared without message objects (the kubernetes plugin): records are appended section
by section, names are compressed (RFC 1035 §4.1.4), and `finish` adds the header and the OPT.

Compression never changes a name's spelling: suffixes match byte for byte, and a name may point
into the question only for its last `asked` labels, those it spells as the client asked (a name in
the zone ends with the zone as the client spelled it; the rest is spelled by the data). So the bytes
after the question are the same for every spelling of the question — they can be replayed to any
client — except where a name copies the client's spelling out in full: SRV targets, which are never
compressed (RFC 2782: "name compression is not to be used for this field"); `spelled` says whether
the reply has such a copy. An answer owned by the question's name is a pointer to it (0xC00C).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from kdns.protocol.edns import Edns, opt_wire
from kdns.protocol.query import Query

Name = Sequence[bytes]  # labels, as they are to be spelled
QUESTION = b"\xc0\x0c"  # a pointer to the question's name, at offset 12
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_CLASS_IN = 1
_MAX_POINTER = 0x3FFF
_QR, _AA, _RD_CD = 0x8000, 0x0400, 0x0110


def address_record(rtype: int, ttl: int, rdata: bytes, owner: bytes = QUESTION) -> bytes:
    """An A or AAAA record (or any record without names in its RDATA) owned by `owner` (wire)."""
    return owner + _RR.pack(rtype, _CLASS_IN, ttl, len(rdata)) + rdata


class MessageWriter:
    """One reply to `query` (whose packet is `wire`): sections in order, then `finish`."""

    def __init__(self, query: Query, wire: bytes) -> None:
        self.query = query
        self.buf = bytearray(wire[12 : query.question_end])  # the client's question, as sent
        self.counts = [0, 0, 0]
        self.spelled = False  # does a record copy the client's spelling out (an SRV target)?
        self._question: dict[tuple[bytes, ...], int] | None = None  # its suffixes → their offsets
        self._written: dict[tuple[bytes, ...], int] = {}  # suffixes of names written after it

    # --- names ------------------------------------------------------------------------------------

    def _question_suffixes(self) -> dict[tuple[bytes, ...], int]:
        """The question's suffixes (made on first use: most answers name nothing but the question)."""
        if self._question is None:
            self._question = {}
            at = 12
            labels = self.query.labels
            for i in range(len(labels)):
                self._question[tuple(labels[i:])] = at
                at += len(labels[i]) + 1
        return self._question

    def name(self, labels: Name, compress: bool = True, asked: int = 0) -> bytes:
        """The wire form of `labels` at the end of the message so far, compressed when allowed (into
        the question only for its last `asked` labels). The suffixes it writes out become known for
        later names."""
        labels = tuple(labels)
        question = self._question_suffixes() if asked else {}
        out = bytearray()
        for i in range(len(labels)):
            suffix = labels[i:]
            if compress:
                at = self._written.get(suffix)
                if at is None and len(suffix) <= asked:
                    at = question.get(suffix)
                if at is not None:
                    return bytes(out) + struct.pack("!H", 0xC000 | at)
            offset = 12 + len(self.buf) + len(out)
            if offset <= _MAX_POINTER:
                self._written.setdefault(suffix, offset)
            out += bytes((len(labels[i]),)) + labels[i]
        if not compress and asked:
            self.spelled = True
        return bytes(out) + b"\x00"

    # --- records ----------------------------------------------------------------------------------

    def add(self, section: int, record: bytes) -> None:
        """Append a finished record (e.g. from address_record) to section 0, 1 or 2 (answer,
        authority, additional); sections must be written in that order."""
        self.buf += record
        self.counts[section] += 1

    def record(
        self, section: int, owner: Name | None, rtype: int, ttl: int, rdata: bytes, asked: int = 0
    ) -> None:
        """A record whose RDATA holds no names; `owner` None: the question's name (`asked`: see
        name())."""
        head = QUESTION if owner is None else self.name(owner, asked=asked)
        self.add(section, head + _RR.pack(rtype, _CLASS_IN, ttl, len(rdata)) + rdata)

    def name_record(
        self,
        section: int,
        owner: Name | None,
        rtype: int,
        ttl: int,
        target: Name,
        prefix: bytes = b"",
        compress: bool = True,
        owner_asked: int = 0,
        target_asked: int = 0,
    ) -> None:
        """A record whose RDATA is `prefix` then a name (CNAME, NS, PTR; MX with its preference as
        prefix). Each name is written where it lands, so later names may point at it."""
        head = QUESTION if owner is None else self.name(owner, asked=owner_asked)
        self.buf += head + _RR.pack(rtype, _CLASS_IN, ttl, 0) + prefix  # RDLENGTH patched below
        rdata_at = len(self.buf) - len(prefix)
        self.buf += self.name(target, compress, target_asked)
        struct.pack_into("!H", self.buf, rdata_at - 2, len(self.buf) - rdata_at)
        self.counts[section] += 1

    def srv(
        self,
        section: int,
        owner: Name | None,
        ttl: int,
        fields: tuple[int, int, int],
        target: Name,
        owner_asked: int = 0,
        target_asked: int = 0,
    ) -> None:
        """SRV (RFC 2782): priority, weight, port, and the target uncompressed."""
        prefix = struct.pack("!HHH", *fields)
        self.name_record(section, owner, 33, ttl, target, prefix, False, owner_asked, target_asked)

    def zone_soa(self, section: int, zone_labels: int, ttl: int, times: Sequence[int]) -> None:
        """The SOA of the zone made of the question's last `zone_labels` labels, spelled as asked:
        owner ns.dns.<zone> hostmaster.<zone>, each pointing at the question (docs/dns-contract.md
        §15 gives these names); `times`: serial, refresh, retry, expire, minimum."""
        labels = self.query.labels
        if zone_labels:
            offset = 12 + sum(len(label) + 1 for label in labels[: len(labels) - zone_labels])
            zone = struct.pack("!H", 0xC000 | offset)
        else:
            zone = b"\x00"  # the root zone
        rdata = b"\x02ns\x03dns" + zone + b"\x0ahostmaster" + zone + struct.pack("!IIIII", *times)
        self.buf += zone + _RR.pack(6, _CLASS_IN, ttl, len(rdata)) + rdata
        self.counts[section] += 1

    def finish(self, rcode: int, aa: bool = True, edns: Edns | None = None, options: bytes = b"") -> bytes:
        """The whole reply: ID, opcode, RD and CD copied (RFC 1035 §4.1.1), QR and AA set, RA clear
        (an authoritative answer), then the question, the records, and an OPT iff the client sent
        one (RFC 6891 §6.1.1) carrying `options` (already encoded)."""
        q = self.query
        flags = _QR | (q.flags & (0x7800 | _RD_CD)) | (_AA if aa else 0) | (rcode & 0xF)
        an, ns, ar = self.counts
        opt = b""
        if edns is not None:
            opt = opt_wire(edns, rcode >> 4, options)
            ar += 1
        head = struct.pack("!HHHHHH", q.id, flags, 1, an, ns, ar)
        return head + bytes(self.buf) + opt
