"""Deliver a message to its recipients and say what happened to each one.

Flow: recipients -> routes (all to the smarthost, or grouped by domain to each domain's MX
hosts) -> attempts (host after host) -> one ``RecipientOutcome`` per recipient:
``accepted``, ``deferred`` (temporary: 4xx, timeout, connection lost) or ``rejected``
(permanent). The exit status of a delivery is the worst of its outcomes.

MX walk (RFC 5321 section 5.1): hosts in preference order; a connection failure, a timeout
or a 4xx at greeting, EHLO or MAIL moves on to the next host; a 5xx is final for the
recipients it answered; when every host failed temporarily the recipients are deferred.
A null MX fails the domain's recipients at once; NXDOMAIN gives exit 68.

Fallback smarthosts (``DeliveryOptions.fallbacks``, an account's ``smarthosts`` list) are
walked the same way, and further: recipients a relay deferred (4xx at RCPT or after the
data) are offered to the next relay, because a relay is interchangeable with the next one.

``on_outcomes`` (an argument of ``Deliverer.deliver``) is called after every transaction,
right after the server's final reply and before anything else is said to any server (no
QUIT, no next transaction): the outbox records accepted recipients there, so the window in
which a crash could make it send to them again is as short as one state-file write.

``Deliverer`` keeps one connection per host open across messages (``send --batch``, and
the outbox built on top of this module); ``deliver`` is the one-shot function.
"""

from __future__ import annotations

from mailtool.errors import (
    AuthError,
    DataError,
    MailtoolError,
    TLSError,
    TransportError,
    TransportTimeoutError,
)
from mailtool.exitcodes import ExitCode, worst
from mailtool.protocol.replies import Reply, exit_code_for
from mailtool.protocol.smtp.client import SMTPClient, Timeouts
from mailtool.protocol.smtp.session import mail_parameters, rcpt_parameters
from mailtool.protocol.tls import TLSMode, TLSSettings
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: typing, sasl and transcript stay out of mailtool-sendmail.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    from mailtool.compose import Envelope, MessageSource
    from mailtool.protocol.sasl import Credentials
    from mailtool.protocol.smtp.client import TransactionResult
    from mailtool.protocol.transcript import Transcript

    #: Called with the outcomes of one transaction as soon as they are known.
    OutcomeHook: TypeAlias = Callable[[list["RecipientOutcome"]], None]
    ResultHook: TypeAlias = Callable[["DeliveryResult"], None]

ACCEPTED = "accepted"
DEFERRED = "deferred"
REJECTED = "rejected"


@record
class RecipientOutcome:
    """What happened to one recipient."""

    recipient: str
    status: str  # accepted | deferred | rejected
    step: str = ""
    code: int | None = None
    enhanced: str | None = None
    text: str = ""
    host: str | None = None
    exit_code: int = 0

    @classmethod
    def from_reply(cls, recipient: str, reply: Reply, step: str, host: str | None
                   ) -> RecipientOutcome:
        if reply.is_positive:
            status = ACCEPTED
        elif reply.is_transient:
            status = DEFERRED
        else:
            status = REJECTED
        lines = reply.lines
        text = lines[0] if len(lines) == 1 else " / ".join(x for x in lines if x)
        return cls(recipient, status, step, reply.code, reply.enhanced, text, host,
                   0 if status == ACCEPTED else int(exit_code_for(reply)))

    @classmethod
    def from_error(cls, recipient: str, err: MailtoolError, host: str | None) -> RecipientOutcome:
        reply = err.reply if isinstance(err.reply, Reply) else None
        code = int(err.exit_code)
        status = DEFERRED if code == ExitCode.TEMPFAIL else REJECTED
        text = err.message if reply is None else " / ".join(x for x in reply.lines if x)
        return cls(recipient, status, err.step or "", reply.code if reply else None,
                   reply.enhanced if reply else None, text, host, code)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "status": self.status,
            "step": self.step,
            "code": self.code,
            "enhanced": self.enhanced,
            "text": self.text,
            "host": self.host,
            "exit_code": self.exit_code,
        }

    def one_line(self) -> str:
        reply = " ".join(str(x) for x in (self.code, self.enhanced) if x)
        where = f" at {self.host}" if self.host else ""
        text = f"{reply} {self.text}".strip()
        return f"{self.recipient}: {self.status}{where} ({self.step}): {text}"


@record
class DeliveryResult:
    """Every recipient's outcome for one message."""

    sender: str
    outcomes: list[RecipientOutcome] = field(default_factory=list)
    size: int = 0
    message_id: str | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return worst(*(o.exit_code for o in self.outcomes))

    @property
    def ok(self) -> bool:
        return all(o.status == ACCEPTED for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "message_id": self.message_id,
            "size": self.size,
            "exit_code": int(self.exit_code),
            "recipients": [o.to_json() for o in self.outcomes],
            "routes": self.routes,
        }


#: ``_transaction`` / ``_deliver_route``: the final reply comes later (``on_result``).
_LATER: list[RecipientOutcome] = []


@record(frozen=True)
class Smarthost:
    """A relay to submit everything through."""

    host: str
    port: int
    tls_mode: TLSMode
    tls: TLSSettings = field(default_factory=TLSSettings)
    user: str | None = None
    mechanism: str | None = None
    #: Returns the credentials when AUTH is needed (looked up only then).
    credentials: Callable[[], Credentials] | None = None
    #: Raises to refuse sending a secret without TLS (``endpoint.check_plaintext_auth``).
    before_secret: Callable[[bool], None] | None = None


class DeliveryOptions:
    """How to deliver: a relay (and fallbacks), or each domain's MX; timeouts, DSN, log.
    A plain class: as a dataclass, its generated methods cost every start milliseconds."""

    def __init__(
        self,
        *,
        smarthost: Smarthost | None = None,
        mx_port: int = 25,
        mx_tls_mode: TLSMode = TLSMode.OPPORTUNISTIC,
        mx_tls: TLSSettings | None = None,
        dns_server: str | None = None,
        dns_timeout: float = 10.0,
        timeouts: Timeouts | None = None,
        transcript: Transcript | None = None,
        log_body: bool = False,
        local_name: str | None = None,
        use_chunking: bool = True,
        fallbacks: list[Smarthost] | None = None,
        notify: list[str] | None = None,
        ret: str | None = None,
        envid: str | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.smarthost = smarthost
        self.mx_port = mx_port
        self.mx_tls_mode = mx_tls_mode
        # RFC 7435 opportunistic encryption: an MX certificate is not checked unless asked.
        self.mx_tls = mx_tls if mx_tls is not None else TLSSettings(insecure=True)
        self.dns_server = dns_server
        self.dns_timeout = dns_timeout
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.transcript = transcript
        self.log_body = log_body
        self.local_name = local_name
        self.use_chunking = use_chunking
        # More relays to try, in order, after ``smarthost`` (an account's ``smarthosts``).
        self.fallbacks: list[Smarthost] = fallbacks if fallbacks is not None else []
        self.notify = notify
        self.ret = ret
        self.envid = envid
        # Work to do while a server is answering (``Transport.on_wait``): send --batch
        # prepares its next message then, instead of idling for the round trip.
        self.on_wait = on_wait


@record(frozen=True)
class Target:
    """One host to try for a route."""

    host: str
    port: int
    tls_mode: TLSMode
    tls: TLSSettings
    addresses: tuple[str, ...] | None = None  # None: resolve ``host`` at connect
    smarthost: Smarthost | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.host, self.port, self.addresses, self.tls_mode)


@record
class Route:
    """Recipients that go the same way, and the hosts to try in order."""

    kind: str  # smarthost | mx
    domain: str | None
    recipients: list[str]
    targets: list[Target] = field(default_factory=list)
    failure: RecipientOutcome | None = None  # the route is dead before any connection

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "domain": self.domain,
            "recipients": self.recipients,
            "hosts": [{"host": t.host, "port": t.port, "addresses": list(t.addresses or ()),
                       "tls": t.tls_mode.value} for t in self.targets],
            "failure": self.failure.to_json() if self.failure else None,
        }


def domain_of(address: str) -> str | None:
    if "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().lower()
    if domain.startswith("[") and domain.endswith("]"):
        return domain
    return domain or None


class Deliverer:
    """Delivers messages, keeping one open connection per host for the next message."""

    def __init__(self, options: DeliveryOptions) -> None:
        self.options = options
        self._clients: dict[tuple[Any, ...], SMTPClient] = {}
        self._resolver: Any = None
        self._mx_cache: dict[str, Any] = {}
        self._last_mail_reply: RecipientOutcome | None = None
        self._relay_targets: list[Target] | None = None
        self._relay_hosts: list[dict[str, Any]] = []  # their JSON, shared by every result

    # --- routes -----------------------------------------------------------------------

    def plan(self, recipients: list[str]) -> list[Route]:
        """Group recipients into routes and find the hosts of each (DNS for MX routes)."""
        opts = self.options
        if opts.smarthost is not None:
            if self._relay_targets is None:  # the same relays for every message
                self._relay_targets = [Target(sh.host, sh.port, sh.tls_mode, sh.tls,
                                              smarthost=sh)
                                       for sh in [opts.smarthost, *opts.fallbacks]]
                self._relay_hosts = Route("smarthost", None, [],
                                          self._relay_targets).to_json()["hosts"]
            # One list for every route (nothing appends to a relay route's targets).
            return [Route("smarthost", None, list(recipients), self._relay_targets)]
        by_domain: dict[str, list[str]] = {}
        routes: list[Route] = []
        for rcpt in recipients:
            domain = domain_of(rcpt)
            if domain is None:
                routes.append(Route("mx", None, [rcpt], failure=RecipientOutcome(
                    rcpt, REJECTED, "routing", text="address has no domain (no smarthost given)",
                    exit_code=int(ExitCode.DATAERR))))
                continue
            by_domain.setdefault(domain, []).append(rcpt)
        for domain, rcpts in by_domain.items():
            routes.append(self._mx_route(domain, rcpts))
        return routes

    def _mx_route(self, domain: str, rcpts: list[str]) -> Route:
        from mailtool.mx import RouteStatus, make_resolver, resolve_domain

        opts = self.options
        route = Route("mx", domain, rcpts)
        if domain.startswith("["):
            literal = domain[1:-1]
            if literal.lower().startswith("ipv6:"):
                literal = literal[5:]
            route.targets.append(Target(literal, opts.mx_port, opts.mx_tls_mode, opts.mx_tls,
                                        addresses=(literal,)))
            return route
        if domain not in self._mx_cache:
            if self._resolver is None:
                self._resolver = make_resolver(opts.dns_server, timeout=opts.dns_timeout)
            self._mx_cache[domain] = resolve_domain(domain, resolver=self._resolver)
        resolved = self._mx_cache[domain]
        if opts.transcript is not None:
            for line in resolved.lookups:
                opts.transcript.note(f"DNS {line}")
        status = resolved.status
        fail: tuple[str, ExitCode, str] | None = None
        if status in (RouteStatus.NULL_MX, RouteStatus.NXDOMAIN, RouteStatus.NO_HOST):
            fail = (REJECTED, ExitCode.NOHOST, resolved.detail)
        elif status is RouteStatus.TEMPORARY:
            fail = (DEFERRED, ExitCode.TEMPFAIL, resolved.detail)
        if fail is not None:
            route.failure = RecipientOutcome("", fail[0], "DNS", text=fail[2],
                                             exit_code=int(fail[1]))
            return route
        for host in resolved.hosts:
            if not host.addresses:
                continue
            route.targets.append(Target(host.name, opts.mx_port, opts.mx_tls_mode, opts.mx_tls,
                                        addresses=host.addresses))
        if not route.targets:
            route.failure = RecipientOutcome("", DEFERRED, "DNS",
                                             text=f"no address for any MX host of {domain}",
                                             exit_code=int(ExitCode.TEMPFAIL))
        return route

    # --- delivering -------------------------------------------------------------------

    def deliver(self, envelope: Envelope, source: MessageSource,
                routes: list[Route] | None = None,
                on_outcomes: OutcomeHook | None = None) -> DeliveryResult:
        """Send ``source`` to every recipient of ``envelope``; one outcome per recipient.

        ``on_outcomes`` gets the outcomes of each transaction as soon as its final reply is
        in (before QUIT or the next transaction), and those of routes that failed without
        one; it may raise to stop the delivery (the caller could not record them).
        """
        result = self._deliver(envelope, source, routes, on_outcomes, None)
        assert result is not None
        return result

    def deliver_later(self, envelope: Envelope, source: MessageSource,
                      on_result: ResultHook) -> None:
        """``deliver`` for many messages in a row (``send --batch``): the result goes to
        ``on_result``, maybe later. On a single relay that pipelines, the end of this
        message's data goes out with the next message's commands (RFC 2920 section 3.1:
        content may start a group) and its final reply is read with theirs, or at
        ``close()`` (with QUIT). Results come in the order of the messages."""
        self._deliver(envelope, source, None, None, on_result)

    def _deliver(self, envelope: Envelope, source: MessageSource, routes: list[Route] | None,
                 on_outcomes: OutcomeHook | None, on_result: ResultHook | None
                 ) -> DeliveryResult | None:
        result = DeliveryResult(sender=envelope.sender, size=source.size)
        if routes is None:
            routes = self.plan(envelope.recipients)
        result.routes = [self._route_json(r) for r in routes]
        if (on_result is not None and on_outcomes is None and len(routes) == 1
                and routes[0].failure is None and len(routes[0].targets) == 1):
            self._settle_pending(keep=routes[0].targets[0].key)  # results stay in order
            order = envelope.recipients

            def later(outs: list[RecipientOutcome]) -> None:
                got = {o.recipient: o for o in outs}
                result.outcomes = [got[r] for r in order if r in got]
                on_result(result)

            outs = self._deliver_route(routes[0], envelope, source, on_later=later)
            if outs is not _LATER:
                later(outs)
            return None
        self._settle_pending()
        outcomes: dict[str, RecipientOutcome] = {}
        for route in routes:
            if route.failure is not None:
                failed = [_copy(route.failure, rcpt) for rcpt in route.recipients]
                for out in failed:
                    outcomes[out.recipient] = out
                if on_outcomes is not None:
                    on_outcomes(failed)
                continue
            for out in self._deliver_route(route, envelope, source, on_outcomes):
                outcomes[out.recipient] = out
        result.outcomes = [outcomes[r] for r in envelope.recipients if r in outcomes]
        if on_result is not None:
            on_result(result)
            return None
        return result

    def _route_json(self, route: Route) -> dict[str, Any]:
        if route.kind == "smarthost" and route.failure is None and \
                route.targets is self._relay_targets:
            return {"kind": route.kind, "domain": route.domain,
                    "recipients": route.recipients, "hosts": self._relay_hosts,
                    "failure": None}
        return route.to_json()

    def settle(self) -> None:
        """Read every final reply still pending (their results go out now)."""
        self._settle_pending()

    def _settle_pending(self, keep: tuple[Any, ...] | None = None) -> None:
        """Read the final replies still pending on every connection but ``keep``'s (their
        results go out first: ``deliver_later`` keeps the order of the messages)."""
        for key, client in list(self._clients.items()):
            if key != keep and client.final_pending:
                try:
                    client.finish()
                except MailtoolError:  # its message got the error; the connection is done
                    self._drop_key(key)

    def _drop_key(self, key: tuple[Any, ...]) -> None:
        client = self._clients.pop(key, None)
        if client is not None:
            client.close()

    def _deliver_route(self, route: Route, envelope: Envelope, source: MessageSource,
                       on_outcomes: OutcomeHook | None = None,
                       on_later: OutcomeHook | None = None) -> list[RecipientOutcome]:
        remaining = list(route.recipients)
        done: list[RecipientOutcome] = []
        last: RecipientOutcome | None = None
        relays = route.kind == "smarthost"
        for index, target in enumerate(route.targets):
            more = index + 1 < len(route.targets)
            label = f"{target.host}:{target.port}" if target.smarthost else target.host
            try:
                outcomes = self._attempt(target, envelope, source, remaining,
                                         on_later=None if more else on_later)
                if outcomes is _LATER:
                    return outcomes
            except (TransportError, TransportTimeoutError) as err:
                # Connection failure, timeout, lost connection: next host.
                last = RecipientOutcome.from_error("", err, label)
                continue
            except DataError as err:
                failed = [RecipientOutcome.from_error(r, err, label) for r in remaining]
                return self._finish(done, failed, on_outcomes)
            except MailtoolError as err:
                out = RecipientOutcome.from_error("", err, label)
                if out.status == DEFERRED:
                    last = out
                    continue
                return self._finish(done, [_copy(out, r) for r in remaining], on_outcomes)
            if outcomes is None:  # 4xx at MAIL: next host
                last = self._last_mail_reply
                continue
            if not (relays and more):
                return self._finish(done, outcomes, on_outcomes)
            # Another relay may take what this one deferred: keep the final answers now.
            final = [o for o in outcomes if o.status != DEFERRED]
            deferred = [o for o in outcomes if o.status == DEFERRED]
            if final and on_outcomes is not None:
                on_outcomes(final)
            done += final
            if not deferred:
                return done
            remaining = [o.recipient for o in deferred]
            last = deferred[0]
        if last is None:
            last = RecipientOutcome("", DEFERRED, "connect", text="no host could be tried",
                                    exit_code=int(ExitCode.TEMPFAIL))
        return self._finish(done, [_copy(last, r) for r in remaining], on_outcomes)

    @staticmethod
    def _finish(done: list[RecipientOutcome], outcomes: list[RecipientOutcome],
                on_outcomes: OutcomeHook | None) -> list[RecipientOutcome]:
        if on_outcomes is not None and outcomes:
            on_outcomes(outcomes)
        return done + outcomes

    def _client(self, target: Target) -> SMTPClient:
        client = self._clients.get(target.key)
        if client is not None and not client.closed:
            return client
        opts = self.options
        addresses = list(target.addresses) if target.addresses is not None else None
        try:
            client = SMTPClient.open(
                target.host, target.port, tls_mode=target.tls_mode, tls=target.tls,
                timeouts=opts.timeouts, transcript=opts.transcript, addresses=addresses,
                local_name=opts.local_name, log_body=opts.log_body,
            )
        except TLSError:
            if target.tls_mode is not TLSMode.OPPORTUNISTIC:
                raise
            # Opportunistic TLS failed at the handshake: as MTAs do, retry in cleartext.
            if opts.transcript is not None:
                opts.transcript.note("TLS failed; retrying without TLS (opportunistic)")
            client = SMTPClient.open(
                target.host, target.port, tls_mode=TLSMode.NONE, timeouts=opts.timeouts,
                transcript=opts.transcript, addresses=addresses, local_name=opts.local_name,
                log_body=opts.log_body,
            )
        client.transport.on_wait = opts.on_wait
        sh = target.smarthost
        if sh is not None and sh.user and client.capabilities.auth_mechanisms:
            if sh.credentials is None:
                raise AuthError("no credentials available", step="AUTH")
            try:
                client.authenticate(sh.credentials(), mechanism=sh.mechanism,
                                    before_secret=sh.before_secret)
            except BaseException:
                client.close()
                raise
        self._clients[target.key] = client
        return client

    def _attempt(self, target: Target, envelope: Envelope, source: MessageSource,
                 recipients: list[str], on_later: OutcomeHook | None = None
                 ) -> list[RecipientOutcome] | None:
        """One host: a list of outcomes, or None when the host said "later" to MAIL (or
        ``_LATER``: they go to ``on_later`` once the final reply is in)."""
        label = f"{target.host}:{target.port}" if target.smarthost else target.host
        reused = target.key in self._clients
        client = self._client(target)
        try:
            return self._transaction(client, label, envelope, source, recipients, on_later)
        except (TransportError, TransportTimeoutError):
            self._drop(target)
            if not reused:
                raise
        # A kept connection went stale (server timeout, 421): one fresh try.
        client = self._client(target)
        try:
            return self._transaction(client, label, envelope, source, recipients, on_later)
        except (TransportError, TransportTimeoutError):
            self._drop(target)
            raise

    def _transaction(self, client: SMTPClient, label: str, envelope: Envelope,
                     source: MessageSource, recipients: list[str],
                     on_later: OutcomeHook | None = None) -> list[RecipientOutcome] | None:
        opts = self.options
        caps = client.capabilities
        ext = caps.extensions  # offered extensions (upper-case keywords)
        utf8_address = envelope.needs_smtputf8()
        smtputf8 = utf8_address or source.utf8_headers
        if utf8_address and "SMTPUTF8" not in ext:
            err = DataError(f"{label} does not offer SMTPUTF8, needed for a non-ASCII address",
                            step="MAIL FROM", exit_code=ExitCode.UNAVAILABLE)
            return [RecipientOutcome.from_error(r, err, label) for r in recipients]
        limit = caps.size_limit if "SIZE" in ext else None
        if limit is not None and source.size > limit:
            err = DataError(f"message of {source.size} octets exceeds {label}'s limit of "
                            f"{limit}", step="SIZE", exit_code=ExitCode.UNAVAILABLE)
            return [RecipientOutcome.from_error(r, err, label) for r in recipients]
        dsn = "DSN" in ext
        params = mail_parameters(
            size=source.size if "SIZE" in ext else None,
            body="8BITMIME" if source.eight_bit and "8BITMIME" in ext else None,
            smtputf8=smtputf8 and "SMTPUTF8" in ext,
            ret=opts.ret if dsn else None,
            envid=opts.envid if dsn else None,
        )
        rparams = rcpt_parameters(notify=opts.notify) if dsn and opts.notify else []
        on_final = None
        if on_later is not None:
            def on_final(tr: TransactionResult, error: MailtoolError | None) -> None:
                on_later(_outcomes(tr, recipients, label, error))

        result = client.send_message(
            envelope.sender, recipients, source.chunks(), mail_params=params,
            rcpt_params=rparams, size_hint=source.size, use_chunking=opts.use_chunking,
            on_final=on_final,
        )
        if result.final_pending:
            return _LATER
        if not result.mail.is_positive:
            if result.mail.is_transient:
                self._last_mail_reply = RecipientOutcome.from_reply("", result.mail,
                                                                    "MAIL FROM", label)
                return None
            return [RecipientOutcome.from_reply(r, result.mail, "MAIL FROM", label)
                    for r in recipients]
        return _outcomes(result, recipients, label)

    def _drop(self, target: Target) -> None:
        client = self._clients.pop(target.key, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        """QUIT every open connection."""
        for client in self._clients.values():
            client.quit()
        self._clients.clear()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _outcomes(result: TransactionResult, recipients: list[str], label: str,
              error: MailtoolError | None = None) -> list[RecipientOutcome]:
    """Each recipient's outcome of a transaction whose MAIL was accepted; ``error``: the
    connection failed before the final reply."""
    outcomes = []
    replies = dict(result.rcpt)
    for rcpt in recipients:
        reply = replies.get(rcpt)
        if reply is None:  # the server stopped answering RCPTs (421)
            outcomes.append(RecipientOutcome(rcpt, DEFERRED, "RCPT TO", text="not tried",
                                             host=label, exit_code=int(ExitCode.TEMPFAIL)))
        elif not reply.is_positive:
            outcomes.append(RecipientOutcome.from_reply(rcpt, reply, "RCPT TO", label))
        elif error is not None:
            outcomes.append(RecipientOutcome.from_error(rcpt, error, label))
        elif result.data is None:
            outcomes.append(RecipientOutcome(rcpt, DEFERRED, result.data_step,
                                             text="no data reply", host=label,
                                             exit_code=int(ExitCode.TEMPFAIL)))
        else:
            outcomes.append(RecipientOutcome.from_reply(rcpt, result.data, result.data_step,
                                                        label))
    return outcomes


def _copy(out: RecipientOutcome, recipient: str) -> RecipientOutcome:
    return RecipientOutcome(recipient, out.status, out.step, out.code, out.enhanced, out.text,
                            out.host, out.exit_code)


def deliver(envelope: Envelope, source: MessageSource,
            options: DeliveryOptions) -> DeliveryResult:
    """Deliver one message (envelope + byte source) and return every recipient's outcome."""
    with Deliverer(options) as deliverer:
        return deliverer.deliver(envelope, source)


def smarthost_from_endpoint(endpoint: Any) -> Smarthost:
    """A ``Smarthost`` from a resolved ``mailtool.endpoint.Endpoint`` (credentials lazily)."""
    from mailtool import endpoint as ep

    def creds() -> Credentials:
        return ep.credentials(endpoint)

    def check(tls_active: bool) -> None:
        ep.check_plaintext_auth(endpoint, tls_active)

    return Smarthost(
        host=endpoint.host, port=endpoint.port, tls_mode=endpoint.tls_mode, tls=endpoint.tls,
        user=endpoint.user, mechanism=endpoint.auth, credentials=creds, before_secret=check,
    )


def format_outcomes(result: DeliveryResult) -> list[str]:
    """A compact table, one line per recipient, for people (stderr)."""
    rows = [(o.status, o.recipient, o.host or "-", o.step or "-",
             " ".join(str(x) for x in (o.code, o.enhanced, o.text) if x)) for o in result.outcomes]
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]
