"""Probe one SMTP server step by step with the project's ``SMTPClient``: connect, banner,
EHLO, STARTTLS, TLS facts and certificate, and optionally MAIL FROM / RCPT TO / RSET (never
DATA). Each step becomes a finding; nothing is ever sent or stored on the server.

Step times come from the transcript's timestamps, so the client's own ``open`` (connect,
greeting, EHLO) is used as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailtool.diagnose.findings import Finding, Section, Status, Timer, failure
from mailtool.errors import MailtoolError, TLSError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.replies import decode_server_text
from mailtool.protocol.tls import TLSInfo, TLSMode, TLSSettings
from mailtool.protocol.transcript import Transcript
from mailtool.record import field, record

#: Warn when the certificate expires within this many days.
CERT_WARN_DAYS = 14


@record(frozen=True)
class SMTPProbeOptions:
    port: int = 25
    timeout: float = 30.0
    tls_mode: TLSMode = TLSMode.OPPORTUNISTIC  # port 25: STARTTLS when offered
    ca_file: str | None = None
    insecure: bool = False
    rcpt: Sequence[str] = ()
    sender: str = ""
    local_name: str | None = None
    starttls_missing: Status = Status.WARNING  # FAILURE where TLS is required
    extra_checks: tuple[str, ...] = field(default=())


def _times(transcript: Transcript) -> dict[str, float]:
    """Milliseconds at which connect and the greeting happened, from the transcript."""
    out: dict[str, float] = {}
    for entry in transcript.entries:
        if entry.direction == "*" and entry.data.startswith(b"connecting to") and "start" not in out:
            out["start"] = entry.elapsed_ms
        elif entry.direction == "*" and entry.data.startswith(b"connected to"):
            out["connected"] = entry.elapsed_ms
        elif entry.direction == "S" and "greeting" not in out and "connected" in out:
            out["greeting"] = entry.elapsed_ms
    return out


def transcript_lines(transcript: Transcript) -> list[str]:
    marks = {"C": "->", "S": "<-", "*": "=="}
    lines = []
    for entry in transcript.entries:
        for raw in entry.data.splitlines() or [b""]:
            lines.append(f"{entry.elapsed_ms:8.1f} ms {marks[entry.direction]} "
                         f"{decode_server_text(raw)}")
    return lines


def _tls_finding(info: TLSInfo, host: str, elapsed: float) -> list[Finding]:
    found = [Finding("tls", "TLS", Status.OK, f"{info.version}, {info.cipher}"
                     + (f" ({info.bits} bits)" if info.bits else ""), elapsed_ms=elapsed,
                     data={"version": info.version, "cipher": info.cipher})]
    if info.version in ("TLSv1", "TLSv1.1", "SSLv3"):
        found[0].status = Status.WARNING
        found[0].next_step = "enable TLS 1.2 or 1.3 on the server"
    if info.verified:
        days = info.days_left
        cert = Finding("certificate", "Certificate", Status.OK,
                       f"valid for {host}, issued by {info.issuer or '?'}"
                       + (f", expires in {days} days" if days is not None else ""),
                       data={"subject": info.subject, "issuer": info.issuer,
                             "not_after": info.not_after, "days_left": days,
                             "names": list(info.alt_names)})
        if days is not None and days < CERT_WARN_DAYS:
            cert.status = Status.WARNING
            cert.next_step = "renew the certificate now"
        found.append(cert)
    return found


def probe_smtp(host: str, opts: SMTPProbeOptions, *, addresses: list[str] | None = None,
               section: Section | None = None) -> Section:
    """Run every step against ``host`` and return its section of findings."""
    from mailtool.protocol.smtp.client import SMTPClient, Timeouts

    section = section or Section(f"smtp {host}:{opts.port}")
    transcript = Transcript(keep=True)
    timeouts = Timeouts.scaled(opts.timeout)
    timer = Timer()
    tls_mode = TLSMode.IMPLICIT if opts.tls_mode is TLSMode.IMPLICIT else TLSMode.NONE
    settings = TLSSettings(ca_file=opts.ca_file, insecure=opts.insecure, server_hostname=host)
    try:
        client = SMTPClient.open(host, opts.port, tls_mode=tls_mode, tls=settings,
                                 timeouts=timeouts, transcript=transcript,
                                 addresses=addresses, local_name=opts.local_name)
    except MailtoolError as err:
        times = _times(transcript)
        step = err.step or "connect"
        if step == "connect" or "connected" not in times:
            section.add(failure("connect", f"TCP connect port {opts.port}", err,
                                elapsed_ms=timer.ms,
                                next_step="check that the host is up and port "
                                          f"{opts.port} is open to you (firewall?)"))
        else:
            section.add(Finding("connect", f"TCP connect port {opts.port}", Status.OK,
                                elapsed_ms=times["connected"] - times.get("start", 0.0)))
            title = {"greeting": "Banner", "TLS handshake": "TLS"}.get(step, step)
            section.add(failure(step.lower(), title, err, elapsed_ms=timer.ms))
        section.transcript = transcript_lines(transcript)
        return section
    try:
        _after_open(client, section, transcript, opts, settings, timer, host)
    finally:
        client.quit()
        section.transcript = transcript_lines(transcript)
    return section


def _after_open(client: object, section: Section, transcript: Transcript,
                opts: SMTPProbeOptions, settings: TLSSettings, timer: Timer, host: str) -> None:
    from mailtool.protocol.smtp.client import SMTPClient

    assert isinstance(client, SMTPClient)
    times = _times(transcript)
    connected = times.get("connected", 0.0)
    section.add(Finding("connect", f"TCP connect port {opts.port}", Status.OK,
                        f"{client.transport.host}", elapsed_ms=connected - times.get("start", 0)))
    greeting = client.greeting
    section.add(Finding("banner", "Banner", Status.OK, greeting.text if greeting else "",
                        elapsed_ms=times.get("greeting", connected) - connected,
                        reply=greeting.one_line() if greeting else None))
    caps = client.capabilities
    keywords = sorted(caps.extensions)
    section.add(Finding("ehlo", "EHLO", Status.OK,
                        " ".join(keywords) if caps.esmtp else "HELO only (no ESMTP)",
                        data={"capabilities": {k: caps.extensions[k] for k in keywords}}))
    if opts.tls_mode is TLSMode.IMPLICIT:
        if client.tls_info is not None:
            for f in _tls_finding(client.tls_info, host, 0.0):
                section.add(f)
    elif opts.tls_mode is not TLSMode.NONE:
        if not caps.starttls:
            section.add(Finding("starttls", "STARTTLS", opts.starttls_missing,
                                "not offered: mail to this host travels in cleartext",
                                next_step="enable STARTTLS on the server "
                                          "(a certificate for its MX name)",
                                exit_code=ExitCode.UNAVAILABLE))
        else:
            t = Timer()
            try:
                info = client.starttls(settings, required=True)
            except TLSError as err:
                section.add(Finding("starttls", "STARTTLS", Status.OK, "offered"))
                section.add(failure("certificate" if "certificate" in err.message else "tls",
                                    "Certificate" if "certificate" in err.message else "TLS",
                                    err, elapsed_ms=t.ms,
                                    next_step="install a certificate that is valid, trusted "
                                              f"and names {host}"))
                _insecure_tls_facts(section, host, opts)
                return
            except MailtoolError as err:
                section.add(failure("starttls", "STARTTLS", err, elapsed_ms=t.ms))
                return
            section.add(Finding("starttls", "STARTTLS", Status.OK, "offered and accepted",
                                elapsed_ms=t.ms))
            if info is not None:
                for f in _tls_finding(info, host, t.ms):
                    section.add(f)
            after = client.capabilities  # asked again after the handshake (RFC 3207)
            section.add(Finding("ehlo-tls", "EHLO after TLS", Status.OK,
                                " ".join(sorted(after.extensions)),
                                data={"capabilities": dict(after.extensions)}))
    if opts.rcpt:
        _probe_rcpt(client, section, opts)


def _insecure_tls_facts(section: Section, host: str, opts: SMTPProbeOptions) -> None:
    """After a failed certificate check, learn the TLS version and cipher anyway."""
    from mailtool.protocol.smtp.client import SMTPClient, Timeouts

    if opts.insecure:
        return
    settings = TLSSettings(insecure=True, server_hostname=host)
    try:
        client = SMTPClient.open(host, opts.port, tls_mode=TLSMode.NONE,
                                 timeouts=Timeouts.scaled(opts.timeout), addresses=None,
                                 local_name=opts.local_name)
        try:
            info = client.starttls(settings, required=True)
        finally:
            client.quit()
    except MailtoolError:
        return
    if info is not None:
        section.add(Finding("tls", "TLS", Status.INFO,
                            f"{info.version}, {info.cipher} (certificate not verified)",
                            data={"version": info.version, "cipher": info.cipher}))


def _probe_rcpt(client: object, section: Section, opts: SMTPProbeOptions) -> None:
    from mailtool.protocol.smtp.client import SMTPClient

    assert isinstance(client, SMTPClient)
    t = Timer()
    try:
        result = client.mail_rcpt_probe(opts.sender, list(opts.rcpt))
    except MailtoolError as err:
        section.add(failure("mail", "MAIL FROM", err, elapsed_ms=t.ms))
        return
    from mailtool.diagnose.findings import Finding as F
    from mailtool.protocol.explain import explain_reply
    from mailtool.protocol.replies import exit_code_for

    if not result.mail.is_positive:
        exp = explain_reply(result.mail)
        section.add(F("mail", f"MAIL FROM:<{opts.sender}>", Status.FAILURE,
                      "sender refused", elapsed_ms=t.ms, reply=result.mail.one_line(),
                      explanation=f"{exp.title} ({exp.severity})", next_step=exp.action,
                      exit_code=exit_code_for(result.mail)))
        return
    section.add(F("mail", f"MAIL FROM:<{opts.sender}>", Status.OK, "accepted",
                  reply=result.mail.one_line()))
    for address, reply in result.rcpt:
        if reply.is_positive:
            section.add(F("rcpt", f"RCPT TO:<{address}>", Status.OK, "would be accepted",
                          reply=reply.one_line(), elapsed_ms=t.ms))
            continue
        exp = explain_reply(reply)
        section.add(F("rcpt", f"RCPT TO:<{address}>", Status.FAILURE,
                      "would be refused" if reply.is_permanent else "deferred",
                      elapsed_ms=t.ms, reply=reply.one_line(),
                      explanation=f"{exp.title} ({exp.severity})", next_step=exp.action,
                      exit_code=exit_code_for(reply)))
