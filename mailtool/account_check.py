"""``account test``: connect to each configured service of an account and log in.

Uses the protocol clients (and, for IMAP, ``imapconn.connect_endpoint``) exactly as the commands
do, so a passing test means ``send``, ``pop-fetch`` and ``imap-*`` will get in too. Each
service is checked independently: one failure does not stop the others.
"""

from __future__ import annotations

import time
from typing import Any

from mailtool.config import SERVICES, Account
from mailtool.endpoint import (
    ConnectionOptions,
    Endpoint,
    check_plaintext_auth,
    credentials,
    resolve_endpoint,
)
from mailtool.errors import MailtoolError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.transcript import Transcript
from mailtool.record import record


@record
class ServiceResult:
    """The outcome of one service's check."""

    service: str
    host: str
    port: int
    tls: str
    ok: bool
    detail: str = ""
    error: str = ""
    exit_code: int = 0
    elapsed_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "ok": self.ok,
            "detail": self.detail,
            "error": self.error or None,
            "exit_code": self.exit_code,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def _tls_text(client_tls: Any) -> str:
    if client_tls is None:
        return "no TLS"
    version = getattr(client_tls, "version", None) or ""
    return f"TLS {version}".strip()


def _check_smtp(endpoint: Endpoint, timeout: float, transcript: Transcript | None) -> str:
    from mailtool.protocol.smtp.client import SMTPClient, Timeouts

    client = SMTPClient.open(
        endpoint.host, endpoint.port, tls_mode=endpoint.tls_mode, tls=endpoint.tls,
        timeouts=Timeouts.scaled(timeout), transcript=transcript,
    )
    try:
        if endpoint.user:
            client.authenticate(
                credentials(endpoint), mechanism=endpoint.auth,
                before_secret=lambda tls: check_plaintext_auth(endpoint, tls),
            )
            done = f"logged in as {endpoint.user}"
        else:
            done = "connected (no user configured: login not tested)"
        client.quit()
    finally:
        client.close()
    return f"{done}, {_tls_text(client.tls_info)}"


def _check_pop3(endpoint: Endpoint, timeout: float, transcript: Transcript | None) -> str:
    from mailtool.protocol.pop3.client import POP3Client

    creds = credentials(endpoint)
    client = POP3Client.open(
        endpoint.host, endpoint.port, tls_mode=endpoint.tls_mode, tls=endpoint.tls,
        timeout=timeout, transcript=transcript,
    )
    try:
        method = client.login(
            creds, method=endpoint.auth,
            before_secret=lambda tls: check_plaintext_auth(endpoint, tls),
        )
        client.quit()
    finally:
        client.close()
    return f"logged in as {endpoint.user} ({method}), {_tls_text(client.tls_info)}"


def _check_imap(endpoint: Endpoint, timeout: float, transcript: Transcript | None) -> str:
    from mailtool.imapconn import connect_endpoint

    client = connect_endpoint(endpoint, timeout=timeout, transcript=transcript)
    try:
        tls = client.transport.tls_info
        client.logout()
    finally:
        client.close()
    return f"logged in as {endpoint.user}, {_tls_text(tls)}"


_CHECKS = {"smtp": _check_smtp, "pop3": _check_pop3, "imap": _check_imap}


def check_account(
    account: Account,
    *,
    timeout: float = 30.0,
    transcript: Transcript | None = None,
    options: ConnectionOptions | None = None,
) -> list[ServiceResult]:
    """Check every configured service of ``account``; never raises a MailtoolError."""
    results: list[ServiceResult] = []
    for service in SERVICES:
        section = account.service(service)
        if section is None:
            continue
        start = time.monotonic()
        try:
            endpoint = resolve_endpoint(
                service, options or ConnectionOptions(), section, account=account.name
            )
        except MailtoolError as exc:
            results.append(ServiceResult(service, section.host or "?", section.port or 0,
                                         section.tls or "?", False, error=exc.one_line(),
                                         exit_code=int(exc.exit_code)))
            continue
        result = ServiceResult(service, endpoint.host, endpoint.port,
                               endpoint.tls_mode.value, ok=False)
        try:
            result.detail = _CHECKS[service](endpoint, timeout, transcript)
            result.ok = True
        except MailtoolError as exc:
            result.error = exc.one_line()
            result.exit_code = int(exc.exit_code)
        except OSError as exc:  # anything the transport did not wrap
            result.error = f"{exc.__class__.__name__}: {exc}"
            result.exit_code = int(ExitCode.TEMPFAIL)
        result.elapsed_ms = (time.monotonic() - start) * 1000
        results.append(result)
    if not results:
        results.append(ServiceResult("none", "-", 0, "-", False,
                                     error=f"account {account.name!r} has no servers",
                                     exit_code=int(ExitCode.CONFIG)))
    return results
