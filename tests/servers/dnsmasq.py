"""A private dnsmasq answering for the test zones on a free loopback port (UDP and TCP).

Theory of operation: ``dnsmasq -k`` in the foreground with no config file, no
/etc/hosts, no /etc/resolv.conf and no upstream server, bound to 127.0.0.1 only.
Records come from a list of small record objects (``MX``, ``A``, ``AAAA``,
``TXT``, ``PTR``, ``SRV``, ``NullMX``) translated into dnsmasq options. Every
zone listed in ``local_zones`` (default: ``test``) is answered locally, so a
name not configured there gets NXDOMAIN at once; any other name gets REFUSED
(there is no upstream), and nothing is ever forwarded to the internet.

dnsmasq cannot express everything: a null MX (RFC 7505, ``MX 0 .``) is written
as ``--mx-host=<domain>,.,0``, which dnsmasq serves as an MX record whose
exchange is the root name; the harness tests check that this comes out right.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import ports
from ._process import POLL_INTERVAL, Deadline, Server, ServerError, find_binary, write_text


@dataclass(frozen=True)
class A:
    name: str
    address: str


@dataclass(frozen=True)
class AAAA:
    name: str
    address: str


@dataclass(frozen=True)
class MX:
    domain: str
    host: str
    preference: int


@dataclass(frozen=True)
class NullMX:
    """RFC 7505: the domain accepts no mail (``MX 0 .``)."""

    domain: str


@dataclass(frozen=True)
class TXT:
    name: str
    # One TXT record; several strings are the record's character-strings, in order.
    strings: tuple[str, ...]

    def __init__(self, name: str, *strings: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "strings", strings)


@dataclass(frozen=True)
class PTR:
    name: str  # e.g. 1.0.0.127.in-addr.arpa
    target: str


@dataclass(frozen=True)
class SRV:
    name: str  # e.g. _submission._tcp.mail.test
    target: str
    port: int
    priority: int = 0
    weight: int = 0


Record = A | AAAA | MX | NullMX | TXT | PTR | SRV


@dataclass(frozen=True)
class Records:
    """A record set plus the zones dnsmasq answers authoritatively (NXDOMAIN when unknown)."""

    records: tuple[Record, ...]
    local_zones: tuple[str, ...] = ("test",)
    extra_options: tuple[str, ...] = field(default=())

    def of_type(self, kind: type) -> list[Record]:
        return [r for r in self.records if isinstance(r, kind)]


def default_records() -> Records:
    """The records the test suite relies on; see the module docstring of the tests."""
    return Records((
        # mail.test: two MX hosts, SPF and DMARC, SRV for submission/IMAP autoconfig.
        MX("mail.test", "mx1.mail.test", 10),
        MX("mail.test", "mx2.mail.test", 20),
        A("mail.test", "127.0.0.1"),
        A("mx1.mail.test", "127.0.0.1"),
        AAAA("mx1.mail.test", "::1"),
        A("mx2.mail.test", "127.0.0.2"),
        A("mx.mail.test", "127.0.0.1"),
        A("imap.mail.test", "127.0.0.1"),
        A("smtp.mail.test", "127.0.0.1"),
        TXT("mail.test", "v=spf1 ip4:127.0.0.1 -all"),
        TXT("_dmarc.mail.test", "v=DMARC1; p=reject"),
        SRV("_submission._tcp.mail.test", "smtp.mail.test", 587),
        SRV("_imaps._tcp.mail.test", "imap.mail.test", 993),
        SRV("_imap._tcp.mail.test", "imap.mail.test", 143),
        SRV("_pop3s._tcp.mail.test", "imap.mail.test", 995),
        PTR("1.0.0.127.in-addr.arpa", "mx1.mail.test"),
        # nullmx.test: RFC 7505 null MX, plus an address so only the MX says "no mail".
        NullMX("nullmx.test"),
        A("nullmx.test", "127.0.0.1"),
        # nomx.test: no MX, so mail goes to the A record (RFC 5321 5.1 implicit MX).
        A("nomx.test", "127.0.0.1"),
        # two.test: two MX hosts of equal preference.
        MX("two.test", "mxa.two.test", 10),
        MX("two.test", "mxb.two.test", 10),
        A("mxa.two.test", "127.0.0.1"),
        A("mxb.two.test", "127.0.0.2"),
        # dead.test: the best MX is an address where nothing listens; the next one works.
        MX("dead.test", "mx1.dead.test", 10),
        MX("dead.test", "mx2.dead.test", 20),
        A("mx1.dead.test", "127.0.0.3"),
        A("mx2.dead.test", "127.0.0.1"),
        # other.test: mail works, but no SPF or DMARC records.
        MX("other.test", "mx.other.test", 10),
        A("mx.other.test", "127.0.0.1"),
        # Anything under nx.test (and any other unknown name under .test) is NXDOMAIN.
    ))


DEFAULT_RECORDS = default_records()


def _dnsmasq_quote(text: str) -> str:
    if any(c in text for c in ',"\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def dnsmasq_options(records: Records) -> list[str]:
    """The dnsmasq config lines (without leading dashes) for ``records``."""
    lines: list[str] = []
    addresses: dict[str, list[str]] = {}
    for record in records.records:
        if isinstance(record, (A, AAAA)):
            addresses.setdefault(record.name, []).append(record.address)
    for name, addrs in addresses.items():
        lines.append(f"host-record={name},{','.join(addrs)}")
    for record in records.records:
        if isinstance(record, MX):
            lines.append(f"mx-host={record.domain},{record.host},{record.preference}")
        elif isinstance(record, NullMX):
            lines.append(f"mx-host={record.domain},.,0")
        elif isinstance(record, TXT):
            lines.append(f"txt-record={record.name},"
                         + ",".join(_dnsmasq_quote(s) for s in record.strings))
        elif isinstance(record, PTR):
            lines.append(f"ptr-record={record.name},{record.target}")
        elif isinstance(record, SRV):
            lines.append(f"srv-host={record.name},{record.target},{record.port},"
                         f"{record.priority},{record.weight}")
    for zone in records.local_zones:
        lines.append(f"local=/{zone}/")
    lines.extend(records.extra_options)
    return lines


class DNSMasq(Server):
    """A private dnsmasq; ``DNSMasq(workdir, records)`` with records from this module."""

    name = "dnsmasq"
    port_in_use_markers = ("Address already in use", "failed to create listening socket")

    def __init__(self, workdir: Path, records: Records | Iterable[Record] | None = None, *,
                 local_zones: Sequence[str] = ("test",)) -> None:
        super().__init__(workdir)
        if records is None:
            records = DEFAULT_RECORDS
        elif not isinstance(records, Records):
            records = Records(tuple(records), tuple(local_zones))
        self.records = records
        self.conf_path = self.workdir / "dnsmasq.conf"
        self.port = 0
        self._binary = find_binary("dnsmasq")

    @property
    def nameserver(self) -> tuple[str, int]:
        """``(host, port)`` to point a resolver at."""
        return self.host, self.port

    def _configure(self) -> None:
        self.port = ports.free_port(self.host, udp=True)
        lines = [
            "# Private dnsmasq for the mailtool tests (written by tests/servers/dnsmasq.py).",
            f"port={self.port}",
            f"listen-address={self.host}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-poll",
            "no-negcache",
            "log-queries",
            f"log-facility={self.log_path}",
            "pid-file=",
            # Root keeps write access to the log file in our work dir.
            "user=root",
            *dnsmasq_options(self.records),
        ]
        write_text(self.conf_path, "\n".join(lines) + "\n", 0o644)

    def _argv(self) -> list[str]:
        return [self._binary, "--keep-in-foreground", f"--conf-file={self.conf_path}"]

    def _wait_ready(self, deadline: Deadline) -> None:
        query = _query_bytes("mail.test", 15)
        last = "no answer"
        while True:
            self._check_alive()
            # A connected UDP socket reports "port unreachable" at once, before bind.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.5)
                try:
                    sock.connect((self.host, self.port))
                    sock.send(query)
                    reply = sock.recv(4096)
                except OSError as exc:
                    last = str(exc)
                else:
                    if reply[:2] == query[:2]:
                        return
            if deadline.expired():
                raise ServerError(f"dnsmasq on {self.host}:{self.port} not ready: {last}")
            time.sleep(POLL_INTERVAL)

    def _after_stop(self) -> None:
        ports.release([self.port])


def _query_bytes(name: str, qtype: int, ident: int = 0x4D54) -> bytes:
    """A minimal DNS query (RFC 1035 4.1) for readiness checks without dnspython."""
    header = ident.to_bytes(2, "big") + b"\x01\x00" + b"\x00\x01\x00\x00\x00\x00\x00\x00"
    qname = b"".join(len(label).to_bytes(1, "big") + label.encode("ascii")
                     for label in name.rstrip(".").split(".")) + b"\x00"
    return header + qname + qtype.to_bytes(2, "big") + b"\x00\x01"
