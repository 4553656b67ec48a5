"""IMAP client: drives an ``IMAPSession`` over a ``Transport``.

API (everything a caller needs; names are stable, additions welcome)::

    from mailtool.protocol.imap.client import IMAPClient, connect_endpoint

    client = connect_endpoint(endpoint, timeout=60, transcript=t)   # TLS + login, ready
    # or by hand:
    client = IMAPClient.connect(host, port, tls_mode=TLSMode.IMPLICIT, tls=TLSSettings())
    client.authenticate(creds)            # SASL (SASL-IR) or LOGIN; never under LOGINDISABLED
    client.enable("CONDSTORE", "QRESYNC") # -> set of what the server enabled (only offered)
    client.capabilities                   # frozenset of upper-case words; client.has("MOVE")

    client.list_mailboxes("", "*", special_use=True, status=("MESSAGES", "UNSEEN"))
        -> list[Mailbox]  (entry: ListEntry, name: str, status: dict | None)
    client.status("INBOX", ("MESSAGES", "UIDNEXT")) -> dict[str, int]
    client.status_many(["a", "b"], items)           -> dict[name, dict]  (pipelined)
    info = client.select("INBOX", readonly=True, condstore=True,
                         qresync=(uidvalidity, modseq, known_uids or None))
        -> SelectInfo(exists, uidvalidity, uidnext, highestmodseq, nomodseq, flags,
                      permanentflags, readonly, vanished: list[UIDSet], fetches: list)
    client.examine(name, ...)                       (select readonly)
    client.uid_search("ALL") or client.uid_search(["FROM", "bob", Raw("UNSEEN")])
        -> list[int] (ESEARCH used when offered)
    client.uid_fetch(uids, ["UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"],
                     sink=factory, on_fetch=callback, changedsince=None, vanished=False,
                     on_vanished=None) -> list[FetchData] (empty when on_fetch is given)
    client.uid_fetch_many(uid_sets, items, window=4, ...)  several UID FETCH in flight
    client.uid_store(uids, "+FLAGS.SILENT", ["\\Seen"], unchangedsince=None)
    client.uid_expunge(uids); client.expunge(); client.uid_move(uids, dest)
    client.append(mailbox, data_or_LiteralData, flags=(), date=None) -> (uidvalidity, uid)|None
    client.noop(); client.idle(seconds, on_response); client.compress()
    client.id({"name": "mailtool"}); client.namespace(); client.logout(); client.close()

Body streaming. For every message body literal in a FETCH response (``BODY[...]``,
``BINARY[...]``, ``RFC822``), ``sink(info: BodyInfo)`` is called *before* the first byte with
what is known from the text before the literal (sequence number, item, size, and UID/FLAGS/
RFC822.SIZE/INTERNALDATE/MODSEQ when the server sent them first, which Dovecot does), and
must return an object with ``write(bytes)``; each chunk (at most ``wire.CHUNK`` bytes) is
written to it, then its ``done()`` is called if it has one. When the connection fails
mid-body, ``abort()`` is called if it has one: a body is complete only once ``on_fetch``
receives the ``FetchData``, whose body item is then ``StreamedLiteral(size, sink)``.
Without a ``sink``, bodies are collected in memory up to ``max_memory_body`` bytes each and
returned as ``bytes``.

Errors: a NO/BAD becomes the ``MailtoolError`` subclass that its response code maps to via
``replies.exit_code_for`` (RFC 5530 codes: AUTHENTICATIONFAILED -> 77, UNAVAILABLE -> 75,
NONEXISTENT -> 69, ...), with the step (the command) and the server's reply. A grammar
violation or a bound exceeded is an ``IMAPParseError`` (76); a lost connection is a
``ConnectionLostError`` (75) unless the server said BYE, whose text is then reported.

Extension points: new commands are small methods built on ``self.run(parts, ...)`` /
``self.submit`` + ``self.wait``; ``self.session.command(name, *args)`` renders arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from mailtool.errors import (
    AuthError,
    ConnectionLostError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    TLSError,
    TransportTimeoutError,
    UnavailableError,
    UsageError,
)
from mailtool.exitcodes import ExitCode
from mailtool.protocol import sasl
from mailtool.protocol.imap.lexer import IMAPParseError
from mailtool.protocol.imap.parser import fetch_prefix_items
from mailtool.protocol.imap.session import (
    MAX_IMAP_LINE,
    NEED_DATA,
    BodyChunk,
    BodyEnd,
    BodyStart,
    Command,
    CommandDone,
    CommandParts,
    ContinuationRequest,
    Event,
    IMAPSession,
    LiteralData,
    Raw,
    ResponseReceived,
    Wait,
)
from mailtool.protocol.imap.types import (
    Continuation,
    ESearch,
    FetchData,
    ListEntry,
    MailboxStatus,
    Response,
    StatusResponse,
    StreamedLiteral,
    UIDSet,
    Untagged,
    Vanished,
)
from mailtool.protocol.imap.utf7 import decode_mailbox, encode_mailbox
from mailtool.protocol.replies import exit_code_for
from mailtool.protocol.tls import TLSMode, TLSSettings, must_upgrade
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import DEFAULT_TIMEOUT, Transport
from mailtool.protocol.wire import CHUNK

log = logging.getLogger("mailtool.imap")

#: Largest body kept in memory when no sink is given (imap-show of a single part, headers).
MAX_MEMORY_BODY = 64 * 1024 * 1024

#: RFC 2177: re-issue IDLE at least every 29 minutes.
IDLE_MAX = 29 * 60

#: Margin by which a body literal may exceed the RFC822.SIZE the server announced before it
#: (servers differ on line ends for broken messages; far more is a hostile server).
SIZE_MARGIN = 64 * 1024

_ERROR_CLASS: dict[ExitCode, type[MailtoolError]] = {
    ExitCode.NOPERM: AuthError,
    ExitCode.TEMPFAIL: TempFailError,
    ExitCode.PROTOCOL: ProtocolError,
    ExitCode.UNAVAILABLE: UnavailableError,
}

#: RFC 5530 (and RFC 3501) response codes -> what the operator reads.
_CODE_TEXT = {
    "AUTHENTICATIONFAILED": "authentication failed",
    "AUTHORIZATIONFAILED": "not authorised for that identity",
    "EXPIRED": "credentials expired",
    "PRIVACYREQUIRED": "the server requires an encrypted connection",
    "CONTACTADMIN": "the server asks you to contact its administrator",
    "NOPERM": "permission denied",
    "UNAVAILABLE": "server temporarily unavailable",
    "INUSE": "mailbox in use",
    "LIMIT": "server limit exceeded",
    "OVERQUOTA": "over quota",
    "SERVERBUG": "server bug",
    "NONEXISTENT": "no such mailbox",
    "TRYCREATE": "no such mailbox",
    "ALREADYEXISTS": "already exists",
    "CANNOT": "the server cannot do that",
    "CLIENTBUG": "the server says we broke the protocol",
}


def error_for(result: StatusResponse, step: str, what: str | None = None) -> MailtoolError:
    """The ``MailtoolError`` for a failed tagged response (exit code from its code)."""
    reply = result.reply()
    code = exit_code_for(reply)
    cls = _ERROR_CLASS.get(code, UnavailableError)
    name = result.code.name if result.code else ""
    message = what or _CODE_TEXT.get(name) or (
        "command rejected" if result.status == "BAD" else "command failed"
    )
    return cls(message, step=step, reply=reply, exit_code=code)


class BodySink(Protocol):
    """Receives one body literal in chunks (optional ``done()`` and ``abort()``)."""

    def write(self, data: bytes) -> Any: ...


@dataclass(frozen=True)
class BodyInfo:
    """What is known when a body literal starts (see the module doc)."""

    seq: int
    item: str
    size: int
    uid: int | None = None
    flags: tuple[str, ...] | None = None
    rfc822_size: int | None = None
    internaldate: str | None = None
    modseq: int | None = None


SinkFactory = Callable[[BodyInfo], BodySink]


class _MemorySink:
    def __init__(self, limit: int) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise UsageError(
                f"message part larger than {self.limit} bytes: use --raw or a sink to stream it"
            )
        self.parts.append(data)


@dataclass(frozen=True)
class Mailbox:
    """A LIST entry with its decoded name and, when asked, its STATUS items."""

    entry: ListEntry
    name: str
    status: dict[str, int] | None = None

    @property
    def delimiter(self) -> str | None:
        return self.entry.delimiter

    @property
    def special_use(self) -> str | None:
        return self.entry.special_use


@dataclass
class SelectInfo:
    """What SELECT/EXAMINE reported (RFC 9051 section 6.3.2, RFC 7162)."""

    name: str
    readonly: bool = False
    exists: int = 0
    recent: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    unseen: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    flags: tuple[str, ...] = ()
    permanentflags: tuple[str, ...] = ()
    vanished: list[UIDSet] = field(default_factory=list)
    fetches: list[FetchData] = field(default_factory=list)


@dataclass
class _Handler:
    """Per-command routing of untagged responses and body literals."""

    on_response: Callable[[Response], None] | None = None
    sink: SinkFactory | None = None
    max_memory_body: int = MAX_MEMORY_BODY


class IMAPClient:
    """One IMAP connection. See the module doc for the API."""

    def __init__(
        self,
        transport: Transport,
        *,
        session: IMAPSession | None = None,
        max_memory_body: int = MAX_MEMORY_BODY,
    ) -> None:
        self.transport = transport
        self.session = session or IMAPSession()
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: set[str] = set()
        self.alerts: list[str] = []
        self.greeting: StatusResponse | None = None
        self.authenticated = False
        self.selected: SelectInfo | None = None
        self.last_result: StatusResponse | None = None
        self.max_memory_body = max_memory_body
        self._handlers: dict[Command, _Handler] = {}
        self._lit_iter: Any = None
        self._sinks: list[Any] = []  # sinks of the body literals of the current response
        self._sink: Any = None
        self._continuation: Continuation | None = None
        self._bye: StatusResponse | None = None
        self._trust_untagged = transport.tls_info is not None

    # --- connecting -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        tls_mode: TLSMode = TLSMode.IMPLICIT,
        tls: TLSSettings | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Transcript | None = None,
        **kwargs: Any,
    ) -> IMAPClient:
        """Connect, read the greeting, and secure the connection as ``tls_mode`` says.

        Raises:
            TLSError: TLS required but STARTTLS not offered, the handshake failed, or a
                PREAUTH greeting arrived in cleartext (fetchmail CVE-2021-39272 class).
            TempFailError: the greeting was BYE (server busy, too many connections).
        """
        settings = tls or TLSSettings()
        transport = Transport.connect(
            host,
            port,
            timeout=timeout,
            tls=settings if tls_mode is TLSMode.IMPLICIT else None,
            transcript=transcript,
        )
        client = cls(transport, **kwargs)
        try:
            client._read_greeting()
            preauth = client.greeting is not None and client.greeting.status == "PREAUTH"
            if preauth and tls_mode is TLSMode.STARTTLS:
                assert client.greeting is not None
                raise TLSError(
                    "server greeted with PREAUTH on a cleartext connection; "
                    "refusing to continue without TLS",
                    step="STARTTLS",
                    reply=client.greeting.reply(),
                )
            # A PREAUTH session can no longer upgrade (RFC 9051 App. E): opportunistic
            # mode stays in cleartext then, required mode has refused above.
            if not preauth and must_upgrade(tls_mode, client.has("STARTTLS"), host=host,
                                            command="STARTTLS", implicit_port=993):
                client.starttls(settings)
        except BaseException:
            transport.close()
            raise
        return client

    def _read_greeting(self) -> None:
        while self.greeting is None:
            event = self._next_event()
            if isinstance(event, ResponseReceived) and isinstance(event.response, StatusResponse):
                self.greeting = event.response
                self._observe(event.response)
            else:
                raise ProtocolError("server did not start with a greeting", step="greeting")
        greeting = self.greeting
        if greeting.status == "BYE":
            raise TempFailError(
                "server refused the connection", step="greeting", reply=greeting.reply()
            )
        if greeting.status not in ("OK", "PREAUTH"):
            raise ProtocolError("unexpected greeting", step="greeting", reply=greeting.reply())
        self.authenticated = greeting.status == "PREAUTH"
        if not self.capabilities:
            self.capability()

    @property
    def tls_active(self) -> bool:
        return self.transport.tls_info is not None

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    @property
    def utf8(self) -> bool:
        """UTF-8 mailbox names and strings (UTF8=ACCEPT enabled, or IMAP4rev2)."""
        return "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled

    def _set_capabilities(self, words: Iterable[str]) -> None:
        self.capabilities = frozenset(w.upper() for w in words)
        self.session.literal_plus = "LITERAL+" in self.capabilities
        self.session.literal_minus = "LITERAL-" in self.capabilities

    # --- the event loop --------------------------------------------------------------

    def _read_more(self) -> None:
        try:
            remaining = self.session.literal_remaining
            if remaining:
                if self._lit_iter is None:
                    self._lit_iter = self.transport.iter_exact(remaining, CHUNK)
                try:
                    piece = next(self._lit_iter)
                except StopIteration:  # pragma: no cover - sizes agree by construction
                    self._lit_iter = None
                    return
                if self.session.literal_remaining == len(piece):
                    self._lit_iter = None
                self.session.receive_data(piece)
            else:
                self._lit_iter = None
                self.session.receive_data(self.transport.readline(MAX_IMAP_LINE + 2))
        except ConnectionLostError as exc:
            self._abort_sink()
            self.transport.close()
            if self._bye is not None:
                raise TempFailError(
                    "server closed the connection", step="IMAP", reply=self._bye.reply()
                ) from exc
            raise
        except MailtoolError:
            self._abort_sink()
            raise

    def _abort_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            abort = getattr(sink, "abort", None)
            if abort is not None:
                abort()

    def _next_event(self) -> Event:
        try:
            while True:
                event = self.session.next_event()
                if event is not NEED_DATA:
                    assert not isinstance(event, type(NEED_DATA))
                    return event
                self._read_more()
        except MailtoolError as exc:
            # A lost connection, a timeout or a bad response names the command it broke.
            if self.session.in_flight and exc.step in (None, "IMAP response"):
                name = self.session.in_flight[0].name
                exc.step = name if exc.step is None else f"{name} response"
            raise

    def _pump(self) -> Event:
        """Read and dispatch one event; return it."""
        try:
            event = self._next_event()
        except IMAPParseError:
            self._abort_sink()
            self.transport.close()
            raise
        self._dispatch(event)
        return event

    def _handler_for(self, command: Command | None) -> _Handler | None:
        if command is None:
            return None
        return self._handlers.get(command)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, BodyChunk):
            self._sink.write(event.data)
        elif isinstance(event, BodyStart):
            self._body_start(event)
        elif isinstance(event, BodyEnd):
            sink, self._sink = self._sink, None
            done = getattr(sink, "done", None)
            if done is not None:
                done()
            self._sinks.append(sink)
        elif isinstance(event, ResponseReceived):
            response = event.response
            if isinstance(response, Untagged) and response.kind == "FETCH" and self._sinks:
                response = self._attach_sinks(response)
            self._sinks = []
            self._observe(response)
            handler = self._handler_for(event.command)
            if handler is not None and handler.on_response is not None:
                handler.on_response(response)
        elif isinstance(event, ContinuationRequest):
            self._continuation = event.continuation
        elif isinstance(event, CommandDone):
            self._handlers.pop(event.command, None)
            self._observe(event.status)

    def _body_start(self, event: BodyStart) -> None:
        command = self.session.in_flight[0] if self.session.in_flight else None
        handler = self._handler_for(command)
        items = fetch_prefix_items(event.prefix)
        info = BodyInfo(
            seq=event.seq,
            item=event.item,
            size=event.size,
            uid=items.get("UID"),
            flags=items.get("FLAGS"),
            rfc822_size=items.get("RFC822.SIZE"),
            internaldate=items.get("INTERNALDATE"),
            modseq=items.get("MODSEQ"),
        )
        if (
            info.rfc822_size is not None
            and event.item in ("BODY[]", "RFC822", "BINARY[]")
            and event.size > info.rfc822_size + SIZE_MARGIN
        ):
            self.transport.close()
            raise IMAPParseError(
                f"server announced a {event.size}-byte body for a message of "
                f"{info.rfc822_size} bytes"
            )
        if handler is not None and handler.sink is not None:
            self._sink = handler.sink(info)
        else:
            limit = handler.max_memory_body if handler is not None else self.max_memory_body
            self._sink = _MemorySink(limit)

    def _attach_sinks(self, response: Untagged) -> Untagged:
        fetch = response.value
        assert isinstance(fetch, FetchData)
        sinks = iter(self._sinks)
        items = dict(fetch.items)
        for key, value in items.items():
            if isinstance(value, StreamedLiteral):
                sink = next(sinks, None)
                if isinstance(sink, _MemorySink):
                    items[key] = b"".join(sink.parts)
                else:
                    items[key] = StreamedLiteral(value.size, sink)
        return replace(response, value=FetchData(seq=fetch.seq, items=items))

    def _observe(self, response: Response) -> None:
        """Connection-wide bookkeeping for every response (capabilities, alerts, BYE)."""
        if isinstance(response, StatusResponse):
            code = response.code
            if code is not None:
                if code.name == "CAPABILITY" and code.args:
                    self._set_capabilities(code.args)
                elif code.name == "ALERT" and self._trust_untagged:
                    self.alerts.append(response.text)
                    log.warning("server alert: %s", response.text)
            if response.status == "BYE" and response.tag is None:
                self._bye = response
        elif isinstance(response, Untagged):
            if response.kind == "CAPABILITY":
                self._set_capabilities(response.value)
            elif self.selected is not None:
                if response.kind == "EXISTS" and response.number is not None:
                    self.selected.exists = response.number
                elif response.kind == "EXPUNGE" and self.selected.exists:
                    self.selected.exists -= 1

    # --- commands ---------------------------------------------------------------------

    def submit(self, parts: CommandParts, handler: _Handler | None = None) -> Command:
        """Send a command (waiting for ``+`` at synchronising literals); do not wait."""
        if self.transport.closed:
            self.session.forget(parts.command)
            raise ConnectionLostError("the IMAP connection is closed", step=parts.command.name)
        if handler is not None:
            self._handlers[parts.command] = handler
        log_as = self._log_as
        self._log_as = None
        for part in parts.parts:
            if part is Wait.CONTINUATION:
                self._await_continuation(parts.command)
            elif isinstance(part, LiteralData):
                for chunk in part.chunks:
                    self.transport.send(chunk, log_as=b"<literal data>")
            else:
                assert isinstance(part, bytes)
                self.transport.send(part, log_as=log_as)
        return parts.command

    _log_as: bytes | None = None

    def _await_continuation(self, command: Command) -> Continuation:
        self._continuation = None
        while self._continuation is None:
            if command.result is not None:
                raise error_for(command.result, command.name)
            self._pump()
        cont, self._continuation = self._continuation, None
        return cont

    def wait(self, command: Command) -> StatusResponse:
        """Process responses until ``command`` completes; return its tagged status."""
        while command.result is None:
            self._pump()
        self.last_result = command.result
        return command.result

    def run(
        self,
        parts: CommandParts,
        *,
        step: str | None = None,
        handler: _Handler | None = None,
        check: bool = True,
    ) -> Command:
        """Submit, wait, and raise the mapped error on NO/BAD when ``check``."""
        command = self.submit(parts, handler)
        result = self.wait(command)
        if check and result.status != "OK":
            raise error_for(result, step or command.name)
        return command

    def simple(self, name: str, *args: Any, step: str | None = None) -> Command:
        return self.run(self.session.command(name, *args), step=step)

    def capability(self) -> frozenset[str]:
        command = self.simple("CAPABILITY")
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "CAPABILITY":
                self._set_capabilities(response.value)
        return self.capabilities

    def starttls(self, settings: TLSSettings) -> None:
        """Upgrade with STARTTLS; forget and re-read capabilities afterwards."""
        if not self.has("STARTTLS"):
            raise TLSError(
                "server does not offer STARTTLS; refusing to continue in cleartext",
                step="STARTTLS",
                hint="use --tls implicit (port 993), or --tls none if you really mean it",
            )
        self.simple("STARTTLS")
        if self.session.literal_remaining or self.session.in_flight:
            raise ProtocolError("data after STARTTLS before the handshake", step="STARTTLS")
        self.transport.starttls(settings)
        self.capabilities = frozenset()
        self.alerts = []
        self._trust_untagged = True
        self.capability()

    def login(self, user: str, password: str) -> None:
        """LOGIN (RFC 9051 section 6.2.3); refused under LOGINDISABLED."""
        if self.has("LOGINDISABLED"):
            raise AuthError(
                "server disables LOGIN on this connection (LOGINDISABLED)",
                step="LOGIN",
                hint="use TLS (--tls implicit or starttls)",
            )
        parts = self.session.command("LOGIN", user, password)
        self._log_as = f"{parts.command.tag} LOGIN {user} <password redacted>\r\n".encode()
        self._finish_auth(parts, "LOGIN")

    def _finish_auth(self, parts: CommandParts, step: str) -> None:
        try:
            command = self.submit(parts)
        finally:
            self._log_as = None
        result = self.wait(command)
        if result.status != "OK":
            err = error_for(result, step, "authentication failed")
            if err.exit_code not in (ExitCode.TEMPFAIL, ExitCode.NOPERM):
                err = AuthError(err.message, step=step, reply=err.reply)
            raise err
        self.authenticated = True
        if not (result.code is not None and result.code.name == "CAPABILITY"):
            self.capability()

    def authenticate(self, creds: sasl.Credentials, *, wanted: str | None = None) -> None:
        """Log in with the best SASL mechanism offered (or ``wanted``), else LOGIN."""
        offered = [c[5:] for c in self.capabilities if c.startswith("AUTH=")]
        mech_cls: type[sasl.Mechanism] | None = None
        if wanted and wanted.upper() not in sasl.MECHANISMS:
            raise AuthError(f"unsupported authentication mechanism {wanted}", step="AUTHENTICATE")
        try:
            mech_cls = sasl.choose(offered, creds, wanted=wanted)
        except AuthError:
            if wanted or creds.password is None:
                raise
        if mech_cls is None:
            self.login(creds.user, creds.password or "")
            return
        host, port = self.transport.host, self.transport.peer[1]
        mech = mech_cls(creds, host=host, port=port)
        step = f"AUTHENTICATE {mech.name}"
        initial = mech.initial()
        redacted = sasl.redacted(mech.name)
        if initial is not None and self.has("SASL-IR"):
            ir = sasl.encode(initial) or b"="
            parts = self.session.command("AUTHENTICATE", Raw(mech.name), Raw(ir.decode()))
            self._log_as = f"{parts.command.tag} AUTHENTICATE {mech.name} ".encode() + redacted + b"\r\n"
            initial = None
        else:
            parts = self.session.command("AUTHENTICATE", Raw(mech.name))
        try:
            command = self.submit(parts)
        finally:
            self._log_as = None
        while command.result is None:
            self._continuation = None
            while self._continuation is None and command.result is None:
                self._pump()
            if command.result is not None:
                break
            cont, self._continuation = self._continuation, None
            assert cont is not None
            if initial is not None and not cont.data.strip():
                response, initial = initial, None
            else:
                initial = None
                try:
                    response = mech.respond(sasl.decode(cont.data))
                except MailtoolError:
                    self.transport.send(b"*\r\n")
                    raise
            self.transport.send(
                self.session.continuation_line(sasl.encode(response)), log_as=redacted + b"\r\n"
            )
        result = command.result
        self.last_result = result
        if result.status != "OK":
            err = error_for(result, step, "authentication failed")
            if err.exit_code not in (ExitCode.TEMPFAIL, ExitCode.NOPERM):
                err = AuthError(err.message, step=step, reply=err.reply)
            raise err
        self.authenticated = True
        if not (result.code is not None and result.code.name == "CAPABILITY"):
            self.capability()

    def enable(self, *extensions: str) -> set[str]:
        """ENABLE what the server offers among ``extensions`` (RFC 5161); return what it
        enabled. Must precede SELECT."""
        wanted = [e.upper() for e in extensions if self.has(e) or e.upper() == "IMAP4REV2"]
        wanted = [e for e in wanted if self.has(e)]
        if not wanted or not self.has("ENABLE"):
            return set()
        command = self.simple("ENABLE", *[Raw(e) for e in wanted])
        now: set[str] = set()
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "ENABLED":
                now.update(response.value)
        self.enabled |= now
        return now

    def id(self, fields: dict[str, str] | None = None) -> dict[str, str | None]:
        """ID (RFC 2971): send ours, return the server's."""
        if not self.has("ID"):
            return {}
        arg: Any = Raw("NIL")
        if fields:
            arg = [x for kv in fields.items() for x in (Raw(_quoted(kv[0])), Raw(_quoted(kv[1])))]
        command = self.simple("ID", arg)
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "ID":
                return dict(response.value)
        return {}

    def namespace(self) -> tuple[Any, ...]:
        """NAMESPACE (RFC 2342): (personal, other users, shared), each ((prefix, delim), ...)."""
        if not self.has("NAMESPACE") and not self.has("IMAP4REV2"):
            return ((("", None),), (), ())
        command = self.simple("NAMESPACE")
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "NAMESPACE":
                return tuple(response.value)
        return ((), (), ())

    # --- mailboxes --------------------------------------------------------------------

    def mailbox_arg(self, name: str) -> Any:
        """A mailbox name as a command argument (modified UTF-7, or UTF-8 if enabled)."""
        if name.upper() == "INBOX":
            return "INBOX"
        raw = encode_mailbox(name, utf8=self.utf8)
        if raw.isascii():
            return raw.decode("ascii")
        return raw

    def _name(self, raw: bytes) -> str:
        return decode_mailbox(raw, utf8=self.utf8)

    def list_mailboxes(
        self,
        reference: str = "",
        pattern: str = "*",
        *,
        special_use: bool = False,
        status: Sequence[str] | None = None,
    ) -> list[Mailbox]:
        """LIST, with RETURN (SPECIAL-USE) and LIST-STATUS (RFC 5819) when offered.

        With ``status`` and no LIST-STATUS, the STATUS commands are pipelined.
        """
        returns: list[Any] = []
        if special_use and self.has("SPECIAL-USE"):
            returns.append(Raw("SPECIAL-USE"))
        use_list_status = bool(status) and self.has("LIST-STATUS")
        if use_list_status and status:
            returns += [Raw("STATUS"), [Raw(s.upper()) for s in status]]
        args: list[Any] = [self.mailbox_arg(reference) if reference else "", self.mailbox_arg(pattern)]
        if returns:
            args += [Raw("RETURN"), returns]
        entries: list[ListEntry] = []
        statuses: dict[bytes, dict[str, int]] = {}

        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                if response.kind == "LIST":
                    entries.append(response.value)
                elif response.kind == "STATUS":
                    statuses[response.value.raw_name] = response.value.items

        self.run(self.session.command("LIST", *args, collect=False), handler=_Handler(collect))
        boxes = [Mailbox(entry=e, name=self._name(e.raw_name)) for e in entries]
        if status and not use_list_status:
            wanted = [b for b in boxes if b.entry.selectable]
            many = self.status_many([b.name for b in wanted], status)
            return [replace(b, status=many.get(b.name)) if b.entry.selectable else b for b in boxes]
        if status:
            return [
                replace(b, status=statuses.get(b.entry.raw_name)) if b.entry.selectable else b
                for b in boxes
            ]
        return boxes

    def status(self, mailbox: str, items: Sequence[str]) -> dict[str, int]:
        """STATUS of one mailbox."""
        return self.status_many([mailbox], items, strict=True).get(mailbox, {})

    def status_many(
        self, mailboxes: Sequence[str], items: Sequence[str], *, strict: bool = False
    ) -> dict[str, dict[str, int]]:
        """STATUS for many mailboxes, all commands in flight at once (pipelined).

        A mailbox the server refuses is left out (or raises when ``strict``).
        """
        results: dict[str, dict[str, int]] = {}
        commands: list[tuple[str, Command]] = []
        item_args = [Raw(i.upper()) for i in items]

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "STATUS":
                status: MailboxStatus = response.value
                results[self._name(status.raw_name)] = status.items

        for name in mailboxes:
            parts = self.session.command("STATUS", self.mailbox_arg(name), item_args, collect=False)
            commands.append((name, self.submit(parts, _Handler(collect))))
        for name, command in commands:
            result = self.wait(command)
            if result.status != "OK" and strict:
                raise error_for(result, f"STATUS {name}")
        # INBOX may come back in another case
        for name in mailboxes:
            if name not in results:
                for key in list(results):
                    if key.upper() == name.upper() == "INBOX":
                        results[name] = results.pop(key)
        return results

    def select(
        self,
        mailbox: str,
        *,
        readonly: bool = False,
        condstore: bool = False,
        qresync: tuple[int, int, str | None] | None = None,
    ) -> SelectInfo:
        """SELECT (or EXAMINE): the mailbox's counters and, with QRESYNC, its changes.

        Args:
            condstore: ask for MODSEQ tracking (``(CONDSTORE)``) when offered.
            qresync: (known UIDVALIDITY, known HIGHESTMODSEQ, known UIDs or None); the
                server then reports ``vanished`` UIDs and changed ``fetches`` (RFC 7162).
        """
        info = SelectInfo(name=mailbox, readonly=readonly)
        params: list[Any] = []
        if qresync is not None and "QRESYNC" in self.enabled:
            uidvalidity, modseq, known = qresync
            inner: list[Any] = [uidvalidity, modseq]
            if known:
                inner.append(Raw(known))
            params = [Raw("QRESYNC"), inner]
        elif condstore and self.has("CONDSTORE"):
            params = [Raw("CONDSTORE")]
        name = "EXAMINE" if readonly else "SELECT"
        args: list[Any] = [self.mailbox_arg(mailbox)]
        if params:
            args.append(params)

        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                if response.kind == "EXISTS" and response.number is not None:
                    info.exists = response.number
                elif response.kind == "RECENT" and response.number is not None:
                    info.recent = response.number
                elif response.kind == "FLAGS":
                    info.flags = response.value
                elif response.kind == "VANISHED":
                    info.vanished.append(response.value.uids)
                elif response.kind == "FETCH":
                    info.fetches.append(response.value)
            elif isinstance(response, StatusResponse) and response.code is not None:
                code = response.code
                if code.name == "UIDVALIDITY" and code.args:
                    info.uidvalidity = code.args[0]
                elif code.name == "UIDNEXT" and code.args:
                    info.uidnext = code.args[0]
                elif code.name == "UNSEEN" and code.args:
                    info.unseen = code.args[0]
                elif code.name == "HIGHESTMODSEQ" and code.args:
                    info.highestmodseq = code.args[0]
                elif code.name == "NOMODSEQ":
                    info.nomodseq = True
                elif code.name == "PERMANENTFLAGS":
                    info.permanentflags = tuple(str(a) for a in code.args)

        self.selected = None
        command = self.run(
            self.session.command(name, *args, collect=False),
            step=f"{name} {mailbox}",
            handler=_Handler(collect),
        )
        result = command.result
        if result is not None and result.code is not None and result.code.name == "READ-ONLY":
            info.readonly = True
        self.selected = info
        return info

    def examine(self, mailbox: str, **kwargs: Any) -> SelectInfo:
        return self.select(mailbox, readonly=True, **kwargs)

    def unselect(self) -> None:
        """UNSELECT (RFC 3691) when offered, else CLOSE on a read-only mailbox."""
        if self.selected is None:
            return
        if self.has("UNSELECT") or self.has("IMAP4REV2"):
            self.simple("UNSELECT")
        else:
            self.simple("CLOSE")
        self.selected = None

    # --- messages ---------------------------------------------------------------------

    def _criteria(self, criteria: str | Sequence[Any]) -> list[Any]:
        if isinstance(criteria, str):
            return [Raw(criteria)]
        args = list(criteria)
        needs_charset = any(
            isinstance(a, str) and not isinstance(a, Raw) and not a.isascii() for a in args
        )
        if needs_charset and not self.utf8:
            args = [Raw("CHARSET"), Raw("UTF-8"), *args]
        return args

    def uid_search(self, criteria: str | Sequence[Any] = "ALL") -> list[int]:
        """UID SEARCH (ESEARCH's RETURN (ALL) when offered): matching UIDs, ascending.

        ``criteria`` is raw IMAP search text, or a list of arguments where plain ``str``
        values are quoted (or sent as literals) and ``Raw`` values go as written.
        """
        return list(self.uid_search_set(criteria))

    def uid_search_set(self, criteria: str | Sequence[Any] = "ALL") -> UIDSet:
        """Like ``uid_search`` but as a compact ``UIDSet`` (ESEARCH sends ranges, so a
        folder of 100,000 messages costs a few bytes instead of a 600 kB line)."""
        if self.has("ESEARCH"):
            result = self.uid_esearch(criteria, ("ALL",))
            return result.all if result.all is not None else UIDSet()
        found: list[int] = []

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "SEARCH":
                found.extend(response.value)

        self.run(
            self.session.command("UID SEARCH", *self._criteria(criteria), collect=False),
            handler=_Handler(collect),
        )
        return UIDSet.of(found)

    def uid_esearch(
        self, criteria: str | Sequence[Any], returns: Sequence[str] = ("ALL",)
    ) -> ESearch:
        """UID SEARCH RETURN (...) (RFC 4731): ALL as a set, MIN/MAX/COUNT."""
        if not self.has("ESEARCH"):
            raise UnavailableError("server does not support ESEARCH", step="UID SEARCH")
        found: list[ESearch] = []

        def collect(response: Response) -> None:
            if isinstance(response, Untagged) and response.kind == "ESEARCH":
                found.append(response.value)

        parts = self.session.command(
            "UID SEARCH",
            Raw("RETURN"),
            [Raw(r.upper()) for r in returns],
            *self._criteria(criteria),
            collect=False,
        )
        tag = parts.command.tag
        self.run(parts, handler=_Handler(collect))
        for result in found:
            if result.tag in (None, tag):
                return result
        return ESearch(tag=tag, uid=True)

    def _fetch_parts(
        self,
        uids: Any,
        items: Sequence[str] | str,
        changedsince: int | None,
        vanished: bool,
    ) -> CommandParts:
        uid_text = _set_text(uids)
        item_arg: Any = Raw(items) if isinstance(items, str) else [Raw(i) for i in items]
        args: list[Any] = [Raw(uid_text), item_arg]
        modifiers: list[Any] = []
        if changedsince is not None:
            modifiers += [Raw("CHANGEDSINCE"), changedsince]
            if vanished and "QRESYNC" in self.enabled:
                modifiers.append(Raw("VANISHED"))
        if modifiers:
            args.append(modifiers)
        return self.session.command("UID FETCH", *args, collect=False)

    def _fetch_handler(
        self,
        sink: SinkFactory | None,
        on_fetch: Callable[[FetchData], None] | None,
        on_vanished: Callable[[Vanished], None] | None,
        out: list[FetchData],
        max_memory_body: int | None,
    ) -> _Handler:
        def collect(response: Response) -> None:
            if isinstance(response, Untagged):
                if response.kind == "FETCH":
                    if on_fetch is not None:
                        on_fetch(response.value)
                    else:
                        out.append(response.value)
                elif response.kind == "VANISHED" and on_vanished is not None:
                    on_vanished(response.value)

        return _Handler(collect, sink, max_memory_body or self.max_memory_body)

    def uid_fetch(
        self,
        uids: Any,
        items: Sequence[str] | str,
        *,
        sink: SinkFactory | None = None,
        on_fetch: Callable[[FetchData], None] | None = None,
        on_vanished: Callable[[Vanished], None] | None = None,
        changedsince: int | None = None,
        vanished: bool = False,
        max_memory_body: int | None = None,
    ) -> list[FetchData]:
        """UID FETCH ``uids`` (a set text like ``"1:*"``, a ``UIDSet`` or ints).

        Bodies stream to ``sink`` (see the module doc). FETCH responses go to ``on_fetch``
        as they arrive when given (nothing is collected), else they are returned. Unsolicited
        FETCHes without a UID (flag changes by others) are passed on as well: check ``.uid``.
        """
        out: list[FetchData] = []
        parts = self._fetch_parts(uids, items, changedsince, vanished)
        handler = self._fetch_handler(sink, on_fetch, on_vanished, out, max_memory_body)
        self.run(parts, handler=handler)
        return out

    def uid_fetch_many(
        self,
        uid_sets: Iterable[Any],
        items: Sequence[str] | str,
        *,
        window: int = 4,
        sink: SinkFactory | None = None,
        on_fetch: Callable[[FetchData], None] | None = None,
        on_vanished: Callable[[Vanished], None] | None = None,
        on_batch_done: Callable[[Any], None] | None = None,
    ) -> list[FetchData]:
        """Several UID FETCH commands with up to ``window`` in flight (pipelining).

        ``on_batch_done(uid_set)`` runs after each command's tagged OK, in order: the place
        to flush a batch of fsyncs and record state.
        """
        out: list[FetchData] = []
        pending: list[tuple[Any, Command]] = []
        for uid_set in uid_sets:
            parts = self._fetch_parts(uid_set, items, None, False)
            handler = self._fetch_handler(sink, on_fetch, on_vanished, out, None)
            pending.append((uid_set, self.submit(parts, handler)))
            while len(pending) >= max(1, window):
                self._finish_batch(pending.pop(0), on_batch_done)
        while pending:
            self._finish_batch(pending.pop(0), on_batch_done)
        return out

    def _finish_batch(
        self, item: tuple[Any, Command], on_batch_done: Callable[[Any], None] | None
    ) -> None:
        uid_set, command = item
        result = self.wait(command)
        if result.status != "OK":
            raise error_for(result, "UID FETCH")
        if on_batch_done is not None:
            on_batch_done(uid_set)

    def uid_store(
        self,
        uids: Any,
        action: str,
        flags: Sequence[str],
        *,
        unchangedsince: int | None = None,
    ) -> list[FetchData]:
        """UID STORE ``action`` (``+FLAGS``, ``-FLAGS.SILENT`` ...) with CONDSTORE's
        UNCHANGEDSINCE; returns the FETCH responses (empty with .SILENT)."""
        args: list[Any] = [Raw(_set_text(uids))]
        if unchangedsince is not None:
            args.append([Raw("UNCHANGEDSINCE"), unchangedsince])
        args += [Raw(action.upper()), [Raw(f) for f in flags]]
        out: list[FetchData] = []
        handler = self._fetch_handler(None, None, None, out, None)
        self.run(self.session.command("UID STORE", *args, collect=False), handler=handler)
        return out

    def uid_expunge(self, uids: Any) -> None:
        """UID EXPUNGE (UIDPLUS): only these UIDs, not others' \\Deleted messages."""
        if not (self.has("UIDPLUS") or self.has("IMAP4REV2")):
            raise UnavailableError("server lacks UIDPLUS (UID EXPUNGE)", step="UID EXPUNGE")
        self.simple("UID EXPUNGE", Raw(_set_text(uids)))

    def expunge(self) -> None:
        self.simple("EXPUNGE")

    def uid_move(self, uids: Any, destination: str) -> None:
        """UID MOVE (RFC 6851), else COPY + \\Deleted + UID EXPUNGE."""
        uid_text = Raw(_set_text(uids))
        dest = self.mailbox_arg(destination)
        if self.has("MOVE") or self.has("IMAP4REV2"):
            self.simple("UID MOVE", uid_text, dest)
            return
        self.simple("UID COPY", uid_text, dest)
        self.uid_store(uid_text, "+FLAGS.SILENT", ["\\Deleted"])
        self.uid_expunge(uid_text)

    def append(
        self,
        mailbox: str,
        message: bytes | LiteralData,
        *,
        flags: Sequence[str] = (),
        date: str | None = None,
    ) -> tuple[int, int] | None:
        """APPEND; returns (UIDVALIDITY, UID) from APPENDUID when the server reports it."""
        args: list[Any] = [self.mailbox_arg(mailbox)]
        if flags:
            args.append([Raw(f) for f in flags])
        if date:
            args.append(Raw(_quoted(date)))
        if isinstance(message, bytes):
            message = LiteralData(len(message), [message])
        args.append(message)
        command = self.run(self.session.command("APPEND", *args), step=f"APPEND {mailbox}")
        result = command.result
        if result is not None and result.code is not None and result.code.name == "APPENDUID":
            try:
                return int(result.code.args[0]), int(result.code.args[1])
            except (IndexError, ValueError):
                return None
        return None

    def noop(self) -> list[Response]:
        """NOOP; returns the untagged responses it collected (new mail, flag changes)."""
        return self.simple("NOOP").untagged

    def idle(
        self, seconds: float, on_response: Callable[[Response], bool | None] | None = None
    ) -> list[Response]:
        """IDLE (RFC 2177) for at most ``seconds`` (capped at 29 min) or until
        ``on_response`` returns True; returns the untagged responses seen."""
        if not self.has("IDLE") and not self.has("IMAP4REV2"):
            raise UnavailableError("server does not support IDLE", step="IDLE")
        seen: list[Response] = []
        stop = False

        def collect(response: Response) -> None:
            nonlocal stop
            seen.append(response)
            if on_response is not None and on_response(response):
                stop = True

        parts = self.session.command("IDLE", collect=False)
        command = self.submit(parts, _Handler(collect))
        self._continuation = None
        while self._continuation is None:
            if command.result is not None:
                raise error_for(command.result, "IDLE")
            self._pump()
        self._continuation = None
        old = self.transport.timeout
        self.transport.set_timeout(min(seconds, IDLE_MAX))
        try:
            while not stop and command.result is None:
                try:
                    self._pump()
                except TransportTimeoutError:
                    break
        finally:
            self.transport.set_timeout(old)
        if command.result is None:
            self.transport.send(b"DONE\r\n")
        result = self.wait(command)
        if result.status != "OK":
            raise error_for(result, "IDLE")
        return seen

    def compress(self) -> bool:
        """COMPRESS=DEFLATE (RFC 4978) when offered; True when compression is on."""
        if not self.has("COMPRESS=DEFLATE") or self.session.in_flight:
            return False
        command = self.run(self.session.command("COMPRESS", Raw("DEFLATE")), check=False)
        if command.result is None or command.result.status != "OK":
            return False  # e.g. NO [COMPRESSIONACTIVE]
        self.transport.start_deflate()
        return True

    def logout(self) -> None:
        """LOGOUT and close; errors on the way out are ignored (the work is done)."""
        try:
            if not self.transport.closed:
                self.simple("LOGOUT")
        except MailtoolError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> IMAPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is None:
            self.logout()
        else:
            self.close()


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _set_text(uids: Any) -> str:
    """A UID set argument: ``"1:*"`` as is, a ``UIDSet``, or an iterable of ints."""
    if isinstance(uids, str):
        if not uids or any(c not in "0123456789:,*" for c in uids):
            raise UsageError(f"bad UID set {uids!r}")
        return uids
    text = str(uids) if isinstance(uids, (UIDSet, int)) else str(UIDSet.of(uids))
    if not text:
        raise UsageError("empty UID set")
    return text


def connect_endpoint(
    endpoint: Any,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transcript: Transcript | None = None,
    login: bool = True,
    **kwargs: Any,
) -> IMAPClient:
    """Connect to a resolved ``endpoint.Endpoint`` as its TLS mode says and log in.

    The cleartext check (``endpoint.check_plaintext_auth``) runs right before credentials
    are looked up and sent, on every path.
    """
    from mailtool.endpoint import check_plaintext_auth, credentials

    client = IMAPClient.connect(
        endpoint.host,
        endpoint.port,
        tls_mode=endpoint.tls_mode,
        tls=endpoint.tls,
        timeout=timeout,
        transcript=transcript,
        **kwargs,
    )
    try:
        if login and not client.authenticated:
            check_plaintext_auth(endpoint, client.tls_active)
            client.authenticate(credentials(endpoint), wanted=endpoint.auth)
    except BaseException:
        client.close()
        raise
    return client
