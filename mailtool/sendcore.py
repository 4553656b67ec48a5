"""What ``mailtool send`` and ``mailtool-sendmail`` share: request -> message(s) -> delivery
-> report. No Click and no rich here: the sendmail entry point imports this module and must
start fast; heavy modules (``email``, dnspython) are imported only when a request needs them.
"""

from __future__ import annotations

import os

from mailtool.compose import Envelope, MessageSource, header_recipients, unique
from mailtool.errors import UsageError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.wire import guard_argument
from mailtool.record import replace

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import EllipsisType
    from typing import IO, Any


class SendRequest:
    """Everything a send needs, from either entry point. A plain class: as a dataclass,
    its generated methods cost every ``mailtool-sendmail`` start several milliseconds."""

    def __init__(
        self,
        *,
        recipients: list[str] | None = None,
        from_: str | None = None,
        to: list[str] | None = None,
        cc: list[str] | None = None,
        bcc: list[str] | None = None,
        subject: str | None = None,
        body_text: str | None = None,
        body_file: str | None = None,
        html_file: str | None = None,
        attach: list[str] | None = None,
        headers: list[str] | None = None,
        from_headers: bool = False,
        envelope_from: str | None = None,
        full_name: str | None = None,
        smarthost: str | None = None,
        dns_server: str | None = None,
        notify: list[str] | None = None,
        ret: str | None = None,
        envid: str | None = None,
        use_chunking: bool = True,
        dry_run: bool = False,
        batch: str | None = None,
        conn: Any = None,
        verbose: int = 0,
        quiet: bool = False,
        json: bool = False,
        timeout: float = 60.0,
        account: Any = None,
        transcript: Any = None,
        prog: str = "mailtool",
        queue_on_tempfail: bool = False,
        bounce_to: str | None = None,
    ) -> None:
        self.recipients: list[str] = recipients if recipients is not None else []
        self.from_ = from_
        self.to: list[str] = to if to is not None else []
        self.cc: list[str] = cc if cc is not None else []
        self.bcc: list[str] = bcc if bcc is not None else []
        self.subject = subject
        self.body_text = body_text
        self.body_file = body_file
        self.html_file = html_file
        self.attach: list[str] = attach if attach is not None else []
        self.headers: list[str] = headers if headers is not None else []
        self.from_headers = from_headers  # -t
        self.envelope_from = envelope_from  # -f
        self.full_name = full_name  # -F
        self.smarthost = smarthost
        self.dns_server = dns_server
        self.notify = notify
        self.ret = ret
        self.envid = envid
        self.use_chunking = use_chunking
        self.dry_run = dry_run
        self.batch = batch  # "-" (mbox on stdin) or a Maildir path
        self.conn = conn  # endpoint.ConnectionOptions
        self.verbose = verbose
        self.quiet = quiet
        self.json = json
        self.timeout = timeout
        self.account = account  # config.Account
        self.transcript = transcript
        self.prog = prog
        # Keep what fails temporarily in the outbox and exit 0 (mailtool-sendmail's default).
        self.queue_on_tempfail = queue_on_tempfail
        # Send a plain-text failure report here for permanent failures.
        self.bounce_to = bounce_to

    @property
    def composing(self) -> bool:
        return any(x is not None for x in (self.body_text, self.body_file, self.html_file)) or \
            bool(self.attach)


def delivery_options(req: SendRequest) -> Any:
    """``DeliveryOptions`` from the request: smarthost (flags, then account) or MX."""
    from mailtool.delivery import DeliveryOptions, smarthost_from_endpoint
    from mailtool.endpoint import ConnectionOptions, resolve_endpoint
    from mailtool.protocol.smtp.client import Timeouts
    from mailtool.protocol.tls import TLSMode, TLSSettings

    conn = req.conn or ConnectionOptions()
    section = req.account.service("smtp") if req.account is not None else None
    opts = DeliveryOptions(
        timeouts=Timeouts.scaled(req.timeout), transcript=req.transcript,
        log_body=req.verbose >= 2, use_chunking=req.use_chunking, notify=req.notify,
        ret=req.ret, envid=req.envid, dns_server=req.dns_server,
        dns_timeout=min(req.timeout, 30.0),
    )
    relay = req.smarthost or conn.host
    name = req.account.name if req.account else None
    fallbacks = [] if relay else smarthost_list(section)
    if relay or (section is not None and section.host) or fallbacks:
        if req.smarthost:
            conn = replace(conn, host=req.smarthost)
        hosts = ([None] if relay or (section is not None and section.host) else []) + fallbacks
        relays = [smarthost_from_endpoint(resolve_endpoint(
            "smtp", conn if host is None else replace(conn, host=host), section, account=name))
            for host in hosts]
        opts.smarthost, opts.fallbacks = relays[0], relays[1:]
        return opts
    opts.mx_port = conn.port or 25
    if conn.tls == "none":
        opts.mx_tls_mode = TLSMode.NONE
    elif conn.tls in ("starttls", "implicit"):
        opts.mx_tls_mode = TLSMode(conn.tls)
        opts.mx_tls = TLSSettings(ca_file=conn.ca_file, insecure=conn.insecure)
    else:
        opts.mx_tls = TLSSettings(ca_file=conn.ca_file, insecure=True)
    return opts


def smarthost_list(section: Any) -> list[str]:
    """The ``smarthosts`` of an account's smtp section: more relays, tried in order after
    ``host`` (each ``HOST[:PORT]``; TLS, user and password are the section's).

    Raises:
        ConfigError: not a list of strings.
    """
    from mailtool.errors import ConfigError

    if section is None:
        return []
    hosts = section.extra.get("smarthosts")
    if hosts is None:
        return []
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigError('smtp.smarthosts must be a list like ["a.example.org:587", '
                          '"b.example.org:587"]', step="configuration")
    return list(hosts)


def default_sender(req: SendRequest) -> str | None:
    """-f, --from, the account's ``from``, ``$MAILTOOL_FROM`` (None: look at the message)."""
    if req.envelope_from is not None:
        return req.envelope_from
    candidates = [req.from_]
    if req.account is not None:
        candidates.append(req.account.get("from"))
    candidates.append(os.environ.get("MAILTOOL_FROM"))
    for value in candidates:
        if value:
            from mailtool.compose import parse_addresses

            pairs = parse_addresses([value])
            if pairs:
                return pairs[0][1]
    return None


def local_sender() -> str:
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "nobody"
    return f"{user}@{os.uname().nodename}"


def _compose(req: SendRequest, stdin: IO[bytes]) -> tuple[MessageSource, Envelope, str]:
    from mailtool.compose import Attachment, ComposeSpec, build_message, decode_text, read_file

    sender = req.from_ or (req.account.get("from") if req.account is not None else None) \
        or os.environ.get("MAILTOOL_FROM")
    if not sender:
        raise UsageError("--from is needed to compose a message (or set from in the account)")
    body = req.body_text
    if req.body_file is not None:
        body = decode_text(read_file(req.body_file, stdin), f"--body-file {req.body_file}")
    html = None
    if req.html_file is not None:
        html = decode_text(read_file(req.html_file, stdin), f"--html {req.html_file}")
    spec = ComposeSpec(
        sender=sender, to=req.to + req.recipients, cc=req.cc, bcc=req.bcc, subject=req.subject,
        body=body, html=html, headers=req.headers,
        attachments=[Attachment(path if path != "-" else "stdin.bin", read_file(path, stdin))
                     for path in req.attach],
    )
    source, envelope, message_id = build_message(spec)
    if req.envelope_from is not None:
        envelope.sender = req.envelope_from
    return source, envelope, message_id


def _raw_envelope(req: SendRequest, source: MessageSource,
                  mbox_sender: str | None = None,
                  default: str | EllipsisType | None = ...) -> Envelope:
    """Envelope of a message read as given: -t, Bcc removal, the sender.

    ``default`` is ``default_sender(req)`` when the caller knows it already (a batch asks
    once, not once per message).
    """
    from_header: list[str] = []
    recipients = list(req.recipients)
    if req.from_headers or (not recipients and req.batch is not None):
        recipients += header_recipients(source)
    if req.to or req.cc or req.bcc:
        recipients += req.to + req.cc + req.bcc
    # Bcc never goes out, whatever the mode (RFC 5322 section 3.6.3; Bcc leaks otherwise).
    source.strip_bcc()
    sender = (default_sender(req) if default is ... else default) or mbox_sender
    if sender is None:
        from_header = source.header_values("from")
        if from_header:
            from mailtool.compose import parse_addresses

            pairs = parse_addresses(from_header)
            sender = pairs[0][1] if pairs else None
    if sender is None:
        sender = local_sender()
    if len(recipients) > 1:
        recipients = unique(recipients)
    return Envelope(sender, recipients)


def _check_envelope(envelope: Envelope) -> None:
    if not envelope.recipients:
        raise UsageError("no recipients: give them as arguments, with --to, or use -t")
    guard_argument(envelope.sender, "sender address")
    for rcpt in envelope.recipients:
        guard_argument(rcpt, "recipient address")


def run_send(req: SendRequest, stdin: IO[bytes], stdout: IO[str], stderr: IO[str]) -> int:
    """Do the whole send; return the exit status. Raises ``MailtoolError`` for failures that
    are not per recipient (usage, configuration, unreadable input)."""
    if req.batch is not None:
        from mailtool.sendbatch import run_batch

        return run_batch(req, stdin, stdout, stderr)
    message_id = None
    if req.composing:
        source, envelope, message_id = _compose(req, stdin)
    else:
        if req.subject is not None or req.headers:
            raise UsageError("--subject and --header need a body (--body, --body-file, ...); "
                             "a message read on stdin is sent as given")
        source = MessageSource.read(stdin)
        envelope = _raw_envelope(req, source)
        _rewrite(req, envelope, source)
    if req.account is not None and req.account.get("aliases"):
        from mailtool.outbox.rewrite import expand_aliases

        envelope.recipients = expand_aliases(envelope.recipients, req.account)
    _check_envelope(envelope)
    if message_id is None:
        ids = source.header_values("message-id")
        message_id = ids[0] if ids else None
    options = delivery_options(req)
    if req.queue_on_tempfail and not req.dry_run:
        from mailtool.outbox.sending import send_queued

        try:
            return send_queued(req, envelope, source, message_id, options, stdout, stderr)
        finally:
            source.close()
    from mailtool.delivery import Deliverer

    with Deliverer(options) as deliverer:
        routes = deliverer.plan(envelope.recipients)
        if req.dry_run:
            _print_dry_run(req, envelope, source, routes, stdout)
            return ExitCode.OK
        result = deliverer.deliver(envelope, source, routes)
        result.message_id = message_id
        _report(req, result, stdout, stderr)
        if req.bounce_to and any(o.status == "rejected" for o in result.outcomes):
            from mailtool.outbox.sending import bounce_now

            bounce_now(req, deliverer, envelope, source, result, stderr)
    source.close()
    return int(result.exit_code)


def _rewrite(req: SendRequest, envelope: Envelope, source: MessageSource) -> None:
    """Account rewriting of a message read as given (rewrite_from), and sendmail's -F."""
    if req.account is not None and req.account.get("rewrite_from"):
        from mailtool.outbox.rewrite import rewrite_from_header, rewrite_sender

        envelope.sender = rewrite_sender(envelope.sender, req.account)
        rewrite_from_header(source, req.account, req.full_name)
    if req.full_name:
        from mailtool.outbox.rewrite import add_missing_from

        add_missing_from(source, envelope.sender, req.full_name)


def _print_dry_run(req: SendRequest, envelope: Envelope, source: MessageSource,
                   routes: list[Any], stdout: IO[str]) -> None:
    headers = source.header_block.decode("utf-8", "replace")
    if req.json:
        import json

        stdout.write(json.dumps({
            "dry_run": True, "sender": envelope.sender, "recipients": envelope.recipients,
            "size": source.size, "routes": [r.to_json() for r in routes],
            "headers": headers.replace("\r\n", "\n").rstrip("\n"),
        }, ensure_ascii=False) + "\n")
        return
    out = [f"envelope from: <{envelope.sender}>"]
    out += [f"envelope to:   <{r}>" for r in envelope.recipients]
    for route in routes:
        who = ", ".join(route.recipients)
        if route.failure is not None:
            out.append(f"route {route.domain or '-'}: {route.failure.status}: "
                       f"{route.failure.text} ({who})")
            continue
        name = "smarthost" if route.kind == "smarthost" else f"MX {route.domain}"
        hosts = "; ".join(f"{t.host} port {t.port} ({t.tls_mode.value})"
                          + (f" [{', '.join(t.addresses)}]" if t.addresses else "")
                          for t in route.targets)
        out.append(f"route {name}: {hosts} <- {who}")
    out.append(f"size: {source.size} octets")
    out.append("headers:")
    out += ["  " + line for line in headers.replace("\r\n", "\n").rstrip("\n").split("\n")]
    stdout.write("\n".join(out) + "\n")


def _report(req: SendRequest, result: Any, stdout: IO[str], stderr: IO[str]) -> None:
    from mailtool.delivery import format_outcomes

    if req.json:
        import json

        stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        stdout.flush()
    if not result.ok or req.verbose:
        for line in format_outcomes(result):
            stderr.write(f"{req.prog}: {line}\n")


def __getattr__(name: str) -> object:
    """The batch readers moved to ``mailtool.sendbatch`` (imported only by a batch send)."""
    if name in ("iter_mbox", "iter_maildir"):
        from mailtool import sendbatch

        return getattr(sendbatch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
