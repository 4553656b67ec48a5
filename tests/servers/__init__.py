"""Private instances of real servers for the tests, the demo and the benchmarks.

Each server runs from its own work dir on free loopback ports and is stopped by
pid: Dovecot (IMAP, POP3, LMTP, SASL), Postfix (SMTP and submission into
Dovecot), dnsmasq (test zones), plus Postfix's smtp-sink for benchmarks. The TLS
certificates come from a throw-away CA (``TestCA``). ``ServerSet`` starts all of
them together; ``python -m tests.servers`` does that from a shell. The pytest
fixtures are in ``tests.servers.fixtures``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from ._process import MissingBinaryError, Server, ServerError, make_servers_dir
from .ca import CertFiles, TestCA
from .dnsmasq import (
    AAAA,
    DEFAULT_RECORDS,
    MX,
    PTR,
    SRV,
    TXT,
    A,
    DNSMasq,
    NullMX,
    Record,
    Records,
    default_records,
)
from .dovecot import Dovecot, User
from .ports import free_port, free_ports
from .postfix import Postfix, SMTPSink

__all__ = [
    "AAAA",
    "DEFAULT_RECORDS",
    "MX",
    "PTR",
    "SRV",
    "TXT",
    "A",
    "CertFiles",
    "DNSMasq",
    "Dovecot",
    "MissingBinaryError",
    "NullMX",
    "Postfix",
    "Record",
    "Records",
    "SMTPSink",
    "Server",
    "ServerError",
    "ServerSet",
    "TestCA",
    "User",
    "default_records",
    "free_port",
    "free_ports",
]


class ServerSet:
    """CA, Dovecot, Postfix and dnsmasq started and stopped together.

    With no ``workdir`` a fresh directory is made (and removed by ``stop`` unless
    ``keep``). Use as a context manager or call ``start``/``stop``.
    """

    def __init__(self, workdir: Path | None = None, *, records: Records | None = None,
                 keep: bool = False) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else make_servers_dir()
        self.keep = keep
        self.ca = TestCA(self.workdir / "tls")
        self.dovecot = Dovecot(self.workdir / "dovecot", self.ca)
        self.postfix = Postfix(self.workdir / "postfix", self.dovecot, self.ca)
        self.dnsmasq = DNSMasq(self.workdir / "dnsmasq", records)
        self.startup_seconds: dict[str, float] = {}

    @property
    def servers(self) -> list[Server]:
        return [self.dovecot, self.postfix, self.dnsmasq]

    def start(self) -> Self:
        try:
            for server in self.servers:
                server.start()
                self.startup_seconds[server.name] = server.start_seconds or 0.0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        if self._own_dir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """Ports, users and files, as plain data (for printing or JSON)."""
        d, p, n = self.dovecot, self.postfix, self.dnsmasq
        return {
            "host": d.host,
            "workdir": str(self.workdir),
            "ca_file": str(self.ca.ca_file),
            "dovecot": {"strict_host": d.strict_host, "imap": d.imap_port, "imaps": d.imaps_port, "pop3": d.pop3_port,
                        "pop3s": d.pop3s_port, "lmtp": d.lmtp_port,
                        "auth_socket": str(d.auth_socket), "log": str(d.log_path)},
            "postfix": {"smtp": p.smtp_port, "submission": p.submission_port,
                        "domains": list(p.domains), "log": str(p.log_path)},
            "dnsmasq": {"port": n.port, "log": str(n.log_path)},
            "users": [{"name": u.name, "password": u.password, "address": u.address}
                      for u in d.users.values()],
            "startup_seconds": self.startup_seconds,
        }

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
