"""Probe one POP3 or IMAP server with the project's clients: connect, greeting,
capabilities, TLS facts, offered authentication mechanisms and, with credentials, a login
check. Nothing is read, changed or deleted: the session logs out right after the login.
"""

from __future__ import annotations

from mailtool.diagnose.findings import Finding, Section, Status, Timer, failure
from mailtool.diagnose.smtp_probe import _tls_finding, transcript_lines
from mailtool.errors import MailtoolError
from mailtool.protocol import sasl
from mailtool.protocol.tls import TLSMode, TLSSettings
from mailtool.protocol.transcript import Transcript
from mailtool.record import record


@record(frozen=True)
class ServiceOptions:
    port: int
    tls_mode: TLSMode
    timeout: float = 30.0
    ca_file: str | None = None
    insecure: bool = False
    user: str | None = None
    password: str | None = None


def probe_service(protocol: str, host: str, opts: ServiceOptions) -> Section:
    """``protocol`` is ``pop3`` or ``imap``."""
    section = Section(f"{protocol} {host}:{opts.port}")
    transcript = Transcript(keep=True)
    settings = TLSSettings(ca_file=opts.ca_file, insecure=opts.insecure, server_hostname=host)
    timer = Timer()
    try:
        if protocol == "pop3":
            _pop3(host, opts, settings, transcript, section, timer)
        else:
            _imap(host, opts, settings, transcript, section, timer)
    finally:
        section.transcript = transcript_lines(transcript)
    return section


def _connected(section: Section, title: str, detail: str, timer: Timer,
               reply: str | None) -> None:
    section.add(Finding("connect", title, Status.OK, detail, elapsed_ms=timer.ms, reply=reply))


def _open_failed(section: Section, err: MailtoolError, timer: Timer, port: int) -> None:
    check = {"connect": "connect", "greeting": "greeting"}.get(err.step or "", "tls"
                                                                 if "TLS" in (err.step or "")
                                                                 or "STLS" in (err.step or "")
                                                                 or "STARTTLS" in (err.step or "")
                                                                 else "connect")
    section.add(failure(check, {"connect": f"Connect port {port}", "greeting": "Greeting",
                                "tls": "TLS"}[check], err, elapsed_ms=timer.ms))


def _login_finding(section: Section, do_login: object, opts: ServiceOptions) -> None:
    if not opts.user:
        section.add(Finding("login", "Login", Status.INFO,
                            "not tried (give --user and MAILTOOL_PASSWORD to check it)"))
        return
    t = Timer()
    try:
        assert callable(do_login)
        method = do_login()
    except MailtoolError as err:
        section.add(failure("login", f"Login as {opts.user}", err, elapsed_ms=t.ms))
        return
    section.add(Finding("login", f"Login as {opts.user}", Status.OK,
                        f"accepted{f' ({method})' if method else ''}", elapsed_ms=t.ms))


def _pop3(host: str, opts: ServiceOptions, settings: TLSSettings, transcript: Transcript,
          section: Section, timer: Timer) -> None:
    from mailtool.protocol.pop3.client import POP3Client

    try:
        client = POP3Client.open(host, opts.port, tls_mode=opts.tls_mode, tls=settings,
                                 timeout=opts.timeout, transcript=transcript)
    except MailtoolError as err:
        _open_failed(section, err, timer, opts.port)
        return
    try:
        greeting = getattr(client, "greeting", None)
        _connected(section, f"Connect and greeting port {opts.port}", host, timer,
                   greeting.one_line() if greeting is not None else None)
        caps = client.capabilities
        section.add(Finding("capabilities", "CAPA", Status.OK, " ".join(sorted(caps))))
        if client.tls_info is not None:
            for f in _tls_finding(client.tls_info, host, 0.0):
                section.add(f)
        elif opts.tls_mode is TLSMode.NONE:
            section.add(Finding("tls", "TLS", Status.WARNING, "cleartext connection",
                                next_step="use pop3s:// (995) or a server offering STLS"))
        mechs = client.sasl_mechanisms
        section.add(Finding("auth", "Auth mechanisms", Status.OK,
                            " ".join(mechs) if mechs else "USER/PASS only"))
        creds = sasl.Credentials(opts.user or "", opts.password)
        _login_finding(section, lambda: client.login(creds), opts)
    finally:
        try:
            client.quit()
        except MailtoolError:
            client.close()


def _imap(host: str, opts: ServiceOptions, settings: TLSSettings, transcript: Transcript,
          section: Section, timer: Timer) -> None:
    from mailtool.protocol.imap.client import IMAPClient

    try:
        client = IMAPClient.connect(host, opts.port, tls_mode=opts.tls_mode, tls=settings,
                                    timeout=opts.timeout, transcript=transcript)
    except MailtoolError as err:
        _open_failed(section, err, timer, opts.port)
        return
    try:
        greeting = client.greeting
        _connected(section, f"Connect and greeting port {opts.port}", host, timer,
                   greeting.reply().one_line() if greeting is not None else None)
        caps = sorted(client.capabilities)
        section.add(Finding("capabilities", "CAPABILITY", Status.OK, " ".join(caps)))
        if client.tls_active and client.transport.tls_info is not None:
            for f in _tls_finding(client.transport.tls_info, host, 0.0):
                section.add(f)
        elif opts.tls_mode is TLSMode.NONE:
            section.add(Finding("tls", "TLS", Status.WARNING, "cleartext connection",
                                next_step="use imaps:// (993) or a server offering STARTTLS"))
        mechs = [c[5:] for c in caps if c.startswith("AUTH=")]
        login_ok = "LOGINDISABLED" not in caps
        section.add(Finding("auth", "Auth mechanisms", Status.OK,
                            " ".join(mechs + (["(LOGIN command)"] if login_ok else []))
                            or "none"))
        creds = sasl.Credentials(opts.user or "", opts.password)

        def do_login() -> str:
            if mechs:
                client.authenticate(creds)
                return "AUTHENTICATE"
            client.login(creds.user, creds.password or "")
            return "LOGIN"

        _login_finding(section, do_login, opts)
    finally:
        try:
            client.logout()
        except MailtoolError:
            client.close()
