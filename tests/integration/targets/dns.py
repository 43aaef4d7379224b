"""Just enough DNS to answer A/AAAA questions from a table, served over DoH."""

from __future__ import annotations

import ipaddress
import struct

from .http import Handler, Request, Response

TYPE_A, TYPE_AAAA = 1, 28


def answer(query: bytes, records: dict[str, str]) -> bytes:
    """The response to one DNS query: the table's address when its family matches the
    question, else an empty NOERROR answer (NXDOMAIN for unknown names)."""
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    name, qtype, end = question(query)
    asked = query[12:end]
    address = records.get(name.lower())
    answers = b""
    if address is not None:
        ip = ipaddress.ip_address(address)
        if (qtype, ip.version) in ((TYPE_A, 4), (TYPE_AAAA, 6)):
            # A pointer to the question's name, type, class IN, TTL 60, the address.
            answers = struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(ip.packed)) + ip.packed
    rcode = 0 if address is not None else 3
    header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, qdcount, 1 if answers else 0, 0, 0)
    return header + asked + answers


def doh_route(records: dict[str, str], seen: list[str]) -> Handler:
    """A ``RecordingServer`` handler serving RFC 8484 POST ``/dns-query``; names asked go to
    ``seen``."""

    def handler(request: Request) -> Response | None:
        if request.path != "/dns-query":
            return None
        response = answer(request.body, records)
        seen.append(question(request.body)[0])
        return Response(200, response, [("Content-Type", "application/dns-message")])

    return handler


def question(query: bytes) -> tuple[str, int, int]:
    """The first question's name and type, and where it ends."""
    offset, labels = 12, []
    while length := query[offset]:
        labels.append(query[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    (qtype,) = struct.unpack("!H", query[offset + 1 : offset + 3])
    return ".".join(labels), qtype, offset + 5
