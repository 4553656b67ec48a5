"""The IMAP client's engine: command submission, the event loop that routes untagged
responses and streams body literals to sinks, and the shared types (``BodyInfo``,
``error_for``). ``IMAPClient`` (client.py) is built on ``IMAPCore`` with the mailbox and
message command mixins; callers use ``IMAPClient``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mailtool.errors import (
    AuthError,
    ConnectionLostError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    UnavailableError,
    UsageError,
)
from mailtool.exitcodes import ExitCode
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
    ResponseReceived,
    Wait,
)
from mailtool.protocol.imap.types import (
    Continuation,
    FetchData,
    Response,
    StatusResponse,
    StreamedLiteral,
    UIDSet,
    Untagged,
    fetch_response,
)
from mailtool.protocol.imap.utf7 import decode_mailbox, encode_mailbox
from mailtool.protocol.replies import exit_code_for
from mailtool.protocol.transport import Transport
from mailtool.record import field, record, replace

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # BodySink is for type checkers only

#: Largest body kept in memory when no sink is given (imap-show of a single part, headers).
MAX_MEMORY_BODY = 64 * 1024 * 1024

#: Literal bytes gathered before they go to the session (and a body sink) in one piece.
LITERAL_PIECE = 128 * 1024

#: Most response bytes handed to the session in one piece outside literals.
BULK_READ = 64 * 1024

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


@record(frozen=True)
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



@record
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



@record
class _Handler:
    """Per-command routing of untagged responses and body literals."""

    on_response: Callable[[Response], None] | None = None
    sink: SinkFactory | None = None
    max_memory_body: int = MAX_MEMORY_BODY


class IMAPCore:
    """Connection state and the event loop shared by every command (see client.py)."""


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
        self._lit_logged = False  # the current literal's size is in the transcript
        #: Read strictly line by line (while the stream below is about to change).
        self.line_mode = False
        self._sinks: list[Any] = []  # sinks of the body literals of the current response
        self._sink: Any = None
        self._continuation: Continuation | None = None
        self._bye: StatusResponse | None = None
        self._trust_untagged = transport.tls_info is not None


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
                if not self._lit_logged:
                    self._lit_logged = True
                    transcript = self.transport.transcript
                    if transcript is not None:
                        transcript.record("S", f"<{remaining} bytes>".encode())
                # TLS hands over one record (often 4-16 kB) per read: take what has
                # arrived, up to LITERAL_PIECE bytes (never past the literal), so the
                # session, the sink and the disk see a few big pieces instead of many
                # small ones (the per-piece Python cost dominates a full sync).
                data = self.transport.read_burst(min(remaining, LITERAL_PIECE))
                if len(data) >= remaining:
                    self._lit_logged = False
                self.session.receive_data(data)
            else:
                self._lit_logged = False
                transport = self.transport
                if (transport.tls_info is not None and transport.transcript is None
                        and not self.line_mode):
                    # Under TLS, whatever has arrived goes to the session at once (it
                    # frames lines itself, bounded by MAX_IMAP_LINE): one call for a
                    # screenful of FETCH lines instead of one each. In cleartext, lines
                    # one by one, so nothing past a STARTTLS answer is ever consumed (the
                    # same while COMPRESS starts: ``line_mode``); with a transcript, line
                    # by line as it records them.
                    self.session.receive_data(transport.read_burst(BULK_READ))
                else:
                    self.session.receive_data(transport.readline(MAX_IMAP_LINE + 2))
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
        if type(event) is ResponseReceived:  # the most frequent event first
            response = event.response
            if self._sinks:
                if isinstance(response, Untagged) and response.kind == "FETCH":
                    response = self._attach_sinks(response)
                self._sinks = []
            if type(response) is not Untagged or response.kind != "FETCH":
                self._observe(response)  # (a FETCH changes no connection state)
            handler = self._handlers.get(event.command)  # type: ignore[arg-type]
            if handler is not None and handler.on_response is not None:
                handler.on_response(response)
        elif isinstance(event, BodyChunk):
            self._sink.write(event.data)
        elif isinstance(event, BodyStart):
            self._body_start(event)
        elif isinstance(event, BodyEnd):
            sink, self._sink = self._sink, None
            done = getattr(sink, "done", None)
            if done is not None:
                done()
            self._sinks.append(sink)
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
        if response.number == fetch.seq and response.extra is None:  # as the parser makes them
            return fetch_response(fetch.seq, items)
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
                    import logging  # only now: logging costs start-up time

                    logging.getLogger("mailtool.imap").warning("server alert: %s",
                                                               response.text)
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
        queued = self.session.queued_event
        dispatch = self._dispatch
        while command.result is None:
            event = queued()  # a screenful of FETCH lines is parsed in one go: no read
            if event is None:
                self._pump()
            else:
                dispatch(event)
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


    # --- mailbox names ----------------------------------------------------------------

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

    def close(self) -> None:
        self.transport.close()


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


