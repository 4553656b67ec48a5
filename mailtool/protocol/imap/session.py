"""Sans-I/O IMAP session: framing, tags, commands in flight, literals both ways.

Theory of operation (h11's shape). ``receive_data(bytes)`` appends server bytes;
``next_event()`` returns the next event or ``NEED_DATA``. The session frames responses as
lines and literals (RFC 9051 section 2.2): a line ending in ``{n}`` (``~{n}``, ``{n+}``) is
followed by exactly ``n`` octets, then the response continues on the next line. It never
allocates from a number the server sent:

* a literal in the place of a message body (``BODY[...]``, ``BINARY[...]``, ``RFC822...``
  inside an untagged FETCH) is *streamed*: ``BodyStart``, ``BodyChunk``..., ``BodyEnd``
  events carry it, and the parsed ``FetchData`` holds a ``StreamedLiteral`` in its place.
  Its size is checked against ``max_body_literal`` before a byte is read;
* any other literal (a mailbox name, an envelope field) is kept inline up to
  ``MAX_INLINE_LITERAL`` and the whole response up to ``MAX_RESPONSE``; beyond, the
  response is refused with an ``IMAPParseError`` (exit 76).

A run of simple FETCH lines (``* n FETCH (UID u FLAGS (...) MODSEQ (m))``, thousands after a
resync) is taken from the input in one step, each line in one regex match
(``parser.fetch_lines``); each still yields its own ``ResponseReceived``, in order, and any
other line is framed as above. ``queued_event()`` hands out events already parsed without
reading, for the client's hot loop.

Commands: ``command(name, *args)`` allocates a tag and renders the arguments
(atoms, quoted strings, literals, lists) into ``CommandParts``: wire bytes plus the points
where a synchronising literal must wait for the server's ``+`` (RFC 9051 section 7.5).
With LITERAL+ (RFC 7888) literals are non-synchronising; with LITERAL- only up to 4096
octets. Several commands may be in flight (pipelining); untagged responses are attributed
to the oldest command in flight and collected on it (unless it streams them), and its
tagged completion yields ``CommandDone``. A tagged response for a tag not in flight is a
protocol error. After any error the session refuses further use.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator

from mailtool.errors import DataError
from mailtool.protocol.imap.lexer import IMAPParseError
from mailtool.protocol.imap.parser import fetch_lines, parse_response
from mailtool.protocol.imap.types import (
    Continuation,
    Response,
    StatusResponse,
    StreamedLiteral,
    Untagged,
)
from mailtool.protocol.replies import decode_server_text
from mailtool.record import field, record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

#: Longest response line. IMAP puts whole results on one line: ``* SEARCH`` for a folder
#: of a million messages is about 7 MB, so the shared 64 KiB line bound is too small here;
#: 8 MiB still stops a flood (and MAX_RESPONSE bounds the response as a whole).
MAX_IMAP_LINE = 8 * 1024 * 1024

#: Largest literal kept in memory that is not a message body (mailbox names, subjects):
#: real ones are a few kilobytes; 1 MiB leaves room and stops a hostile ``{999999999}``.
MAX_INLINE_LITERAL = 1024 * 1024

#: Largest response kept in memory (all its lines and inline literals together): a FETCH of
#: ENVELOPE + BODYSTRUCTURE for a message with hundreds of parts stays well below.
MAX_RESPONSE = 16 * 1024 * 1024

#: Most lines (segments) in one response, i.e. literals + 1.
MAX_SEGMENTS = 100_000

#: Default ceiling for a streamed body literal: mail servers refuse messages far smaller
#: (tens of MiB); 4 GiB lets an archive through yet refuses ``{999999999999}``.
MAX_BODY_LITERAL = 4 * 1024**3

#: LITERAL- (RFC 7888 section 4): non-synchronising literals only up to this size.
LITERAL_MINUS_MAX = 4096

_LITERAL_MARK = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}$")
_body_patterns: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None


def _body_res() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """FETCH head and body item patterns, compiled at the first literal (not at import)."""
    global _body_patterns
    if _body_patterns is None:
        _body_patterns = (
            re.compile(rb"\* (\d{1,20}) FETCH ", re.IGNORECASE),
            re.compile(rb"(?:^|[ (])((?:BODY|BINARY)(?:\.PEEK)?\[[^\]]*\](?:<\d+>)?"
                       rb"|RFC822(?:\.HEADER|\.TEXT)?) ?$", re.IGNORECASE),
        )
    return _body_patterns
_ATOM_OK = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~\[\]]+")


class NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


# --- events -----------------------------------------------------------------------------


@record(eq=False)
class Command:
    """A command in flight: its tag, name, and the untagged responses attributed to it."""

    tag: str
    name: str
    collect: bool = True
    untagged: list[Response] = field(default_factory=list)
    result: StatusResponse | None = None


@record(frozen=True, slots=True)
class ResponseReceived:
    """An untagged response; ``command`` is the command in flight it was attributed to."""

    response: Response
    command: Command | None


_set_response = vars(ResponseReceived)["response"].__set__
_set_command = vars(ResponseReceived)["command"].__set__


def _received(response: Response, command: Command | None) -> ResponseReceived:
    """``ResponseReceived(response, command)`` through its slots (once per FETCH line;
    the frozen record's ``__init__`` costs more than the rest of the event)."""
    event: ResponseReceived = object.__new__(ResponseReceived)
    _set_response(event, response)
    _set_command(event, command)
    return event


@record(frozen=True, slots=True)
class ContinuationRequest:
    """The server's ``+``: go on with a literal, a SASL response, or IDLE has started."""

    continuation: Continuation


@record(frozen=True, slots=True)
class CommandDone:
    """A tagged response completed ``command`` (``command.result`` is set)."""

    command: Command
    status: StatusResponse


@record(frozen=True, slots=True)
class BodyStart:
    """A message body literal begins: FETCH sequence number, item name, size, and the
    items parsed from the text before it (UID, FLAGS, RFC822.SIZE ... when sent first)."""

    seq: int
    item: str
    size: int
    prefix: bytes


@record(frozen=True, slots=True)
class BodyChunk:
    data: bytes


@record(frozen=True, slots=True)
class BodyEnd:
    size: int


Event = ResponseReceived | ContinuationRequest | CommandDone | BodyStart | BodyChunk | BodyEnd


# --- command arguments ------------------------------------------------------------------


class Raw(str):
    """An argument sent exactly as written (search keys, sequence sets, ``(FLAGS)``).

    Guarded against control characters; the caller vouches for its grammar.
    """


@record(frozen=True)
class LiteralData:
    """A literal whose bytes come from an iterable of chunks (APPEND of a big message)."""

    size: int
    chunks: Iterable[bytes]
    binary: bool = False  # literal8 (RFC 3516)


class Wait(enum.Enum):
    """Marker in ``CommandParts``: wait for the server's ``+`` before the next part."""

    CONTINUATION = "CONTINUATION"


Part = bytes | LiteralData | Wait


@record
class CommandParts:
    """What to send for one command: bytes, streamed literals and continuation waits."""

    command: Command
    parts: list[Part]

    @property
    def synchronising(self) -> bool:
        return any(p is Wait.CONTINUATION for p in self.parts)


def quote(value: str | bytes) -> bytes:
    """A quoted string (RFC 9051 ``quoted``): ``\\`` and ``"`` escaped."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class IMAPSession:
    """The client side of one IMAP connection, without I/O."""

    def __init__(
        self,
        *,
        tag_prefix: str = "A",
        max_body_literal: int = MAX_BODY_LITERAL,
        max_inline_literal: int = MAX_INLINE_LITERAL,
    ) -> None:
        self._tags = itertools.count(1)
        self._prefix = tag_prefix
        self.max_body_literal = max_body_literal
        self.max_inline_literal = max_inline_literal
        self.literal_plus = False
        self.literal_minus = False
        self.in_flight: deque[Command] = deque()
        self._by_tag: dict[str, Command] = {}
        self._in = bytearray()
        self._events: deque[Event] = deque()
        self._segments: list[bytes] = []
        self._literals: list[Any] = []
        self._size = 0
        self._lit_remaining = 0
        self._lit_size = 0
        self._lit_stream = False
        self._lit_buf = bytearray()
        self._broken: Exception | None = None

    # --- receiving --------------------------------------------------------------------

    @property
    def literal_remaining(self) -> int:
        """Octets of a literal still expected (0 when a line is expected)."""
        return self._lit_remaining

    def receive_data(self, data: bytes) -> None:
        if self._broken is not None:
            raise IMAPParseError("IMAP session already failed") from self._broken
        if self._lit_stream and not self._in and 0 < len(data) <= self._lit_remaining:
            # A piece of a streamed body while nothing else waits: hand it on as it is
            # (no copy through the input buffer; bodies are most of a full sync's bytes).
            self._lit_remaining -= len(data)
            self._events.append(BodyChunk(data))
            if not self._lit_remaining:
                self._end_literal()
            return
        self._in += data

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA``.

        Raises:
            IMAPParseError: the server broke the grammar or a bound; the session is dead.
        """
        if self._events:
            return self._events.popleft()
        if self._broken is not None:
            raise IMAPParseError("IMAP session already failed") from self._broken
        try:
            while not self._events:
                if not self._step():
                    return NEED_DATA
        except IMAPParseError as exc:
            self._broken = exc
            raise
        return self._events.popleft()

    def queued_event(self) -> Event | None:
        """The next event already framed and parsed, or None; never reads or raises (for a
        caller's hot loop: ``next_event`` when this gives None)."""
        return self._events.popleft() if self._events else None

    def events(self) -> Iterator[Event]:
        """Every event available now."""
        while True:
            event = self.next_event()
            if event is NEED_DATA:
                return
            assert not isinstance(event, NeedData)
            yield event

    def _step(self) -> bool:
        """Consume what can be consumed; False when more data is needed."""
        if self._lit_remaining:
            if not self._in:
                return False
            take = min(self._lit_remaining, len(self._in))
            if take == len(self._in):
                piece = bytes(self._in)
                self._in.clear()
            else:
                piece = bytes(self._in[:take])
                del self._in[:take]
            self._lit_remaining -= take
            if self._lit_stream:
                self._events.append(BodyChunk(piece))
            else:
                self._lit_buf += piece
            if not self._lit_remaining:
                self._end_literal()
            return True
        if not self._segments and self._fetch_lines():
            return True
        idx = self._in.find(b"\n")
        if idx < 0:
            if len(self._in) > MAX_IMAP_LINE:
                raise IMAPParseError(f"server sent a line longer than {MAX_IMAP_LINE} bytes")
            return False
        if idx + 1 > MAX_IMAP_LINE:
            raise IMAPParseError(f"server sent a line longer than {MAX_IMAP_LINE} bytes")
        line = bytes(self._in[:idx])
        del self._in[: idx + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        self._line(line)
        return True

    def _fetch_lines(self) -> bool:
        """Take every simple FETCH line at the start of the input in one go (see
        ``parser.fetch_lines``); False when the first line is not one.

        They are what a resync receives by the thousand. Each still becomes its own
        ``ResponseReceived``, in order, attributed as ``_complete`` would; the first line
        that is not one is left to ``_line``, so everything else is framed as before.
        """
        if b"\n" not in self._in:
            # Nothing complete yet: no regex scan of a partial line, which would be
            # repeated at every piece of a long one (quadratic; "in" is a memchr).
            return False
        responses, end = fetch_lines(self._in, MAX_IMAP_LINE)
        if not end:
            return False
        del self._in[:end]
        command = self.in_flight[0] if self.in_flight else None
        if command is not None and command.collect:
            command.untagged.extend(responses)
        self._events.extend([_received(response, command) for response in responses])
        return True

    def _line(self, line: bytes) -> None:
        self._size += len(line)
        if self._size > MAX_RESPONSE:
            raise IMAPParseError(f"server response larger than {MAX_RESPONSE} bytes")
        self._segments.append(line)
        if len(self._segments) > MAX_SEGMENTS:
            raise IMAPParseError("server response with too many literals")
        m = _LITERAL_MARK.search(line) if line[-1:] == b"}" else None  # (no scan otherwise)
        if m is None or not self._can_have_literal(line):
            self._complete()
            return
        size = int(m.group(2))
        first = self._segments[0]
        head_re, body_re = _body_res()
        head = head_re.match(first)
        body = body_re.search(line, 0, m.start()) if head else None
        if body is not None and head is not None:
            if size > self.max_body_literal:
                raise IMAPParseError(
                    f"server announced a {size}-byte message body, above the limit of "
                    f"{self.max_body_literal} bytes"
                )
            self._lit_stream = True
            self._lit_size = size
            item = body.group(1).decode("ascii").upper().replace(".PEEK", "")
            self._events.append(
                BodyStart(seq=int(head.group(1)), item=item, size=size, prefix=b"\n".join(self._segments))
            )
        else:
            if size > self.max_inline_literal:
                raise IMAPParseError(
                    f"server announced a {size}-byte literal, above the limit of "
                    f"{self.max_inline_literal} bytes"
                )
            if self._size + size > MAX_RESPONSE:
                raise IMAPParseError(f"server response larger than {MAX_RESPONSE} bytes")
            self._lit_stream = False
            self._lit_size = size
            self._size += size
        self._lit_remaining = size
        if size == 0:
            self._end_literal()

    def _can_have_literal(self, line: bytes) -> bool:
        # A continuation request's text ("+ Ready for {5}") is never followed by a literal.
        return not (len(self._segments) == 1 and line[:1] == b"+")

    def _end_literal(self) -> None:
        if self._lit_stream:
            self._literals.append(StreamedLiteral(self._lit_size))
            self._events.append(BodyEnd(self._lit_size))
        else:
            self._literals.append(bytes(self._lit_buf))
            self._lit_buf = bytearray()
        self._lit_stream = False

    def _complete(self) -> None:
        segments, literals = self._segments, self._literals
        self._segments, self._literals, self._size = [], [], 0
        if not segments[0]:
            raise IMAPParseError("server sent an empty line")
        response = parse_response(segments, literals)
        if isinstance(response, Continuation):
            self._events.append(ContinuationRequest(response))
        elif isinstance(response, StatusResponse) and response.tag is not None:
            command = self._by_tag.pop(response.tag, None)
            if command is None:
                raise IMAPParseError(
                    f"server answered tag {decode_server_text(response.tag)!r}, "
                    "which no command in flight has"
                )
            self.in_flight.remove(command)
            command.result = response
            self._events.append(CommandDone(command, response))
        else:
            command = self.in_flight[0] if self.in_flight else None
            if command is not None and command.collect:
                command.untagged.append(response)
            self._events.append(ResponseReceived(response, command))

    # --- sending ----------------------------------------------------------------------

    def next_tag(self) -> str:
        return f"{self._prefix}{next(self._tags):04d}"

    def command(self, name: str, *args: Any, collect: bool = True) -> CommandParts:
        """Render a command and put it in flight.

        Args:
            name: the command words (``"UID FETCH"``), upper-case ASCII.
            args: ``Raw`` (verbatim), ``str`` (astring: atom, quoted or literal), ``bytes``
                (literal), ``int``, ``LiteralData``, or a list/tuple (parenthesised).
            collect: keep untagged responses on the command (False: events only).

        Raises:
            DataError: an argument holds a control character where none is allowed.
        """
        tag = self.next_tag()
        command = Command(tag=tag, name=name, collect=collect)
        parts: list[Part] = []
        out = bytearray(f"{tag} {name}".encode("ascii"))
        for arg in args:
            out += b" "
            out = self._render(arg, out, parts)
        out += b"\r\n"
        parts.append(bytes(out))
        self.in_flight.append(command)
        self._by_tag[tag] = command
        return CommandParts(command, parts)

    def continuation_line(self, data: bytes) -> bytes:
        """A line sent in answer to ``+`` (a SASL response, ``DONE``)."""
        if b"\r" in data or b"\n" in data:
            raise DataError("line contains CR or LF; refused")
        return data + b"\r\n"

    def _literal_head(self, size: int, binary: bool = False) -> tuple[bytes, bool]:
        """The ``{n}`` marker and whether it must wait for ``+``."""
        prefix = b"~" if binary else b""
        if self.literal_plus or (self.literal_minus and size <= LITERAL_MINUS_MAX):
            return prefix + b"{%d+}\r\n" % size, False
        return prefix + b"{%d}\r\n" % size, True

    def _render(self, arg: Any, out: bytearray, parts: list[Part]) -> bytearray:
        if isinstance(arg, Raw):
            for ch in arg:
                if ord(ch) < 0x20 or ord(ch) == 0x7F:
                    raise DataError("command argument contains a control character; refused")
            out += arg.encode("utf-8")
        elif isinstance(arg, bool):
            raise TypeError("bool is not an IMAP argument")
        elif isinstance(arg, int):
            out += str(arg).encode("ascii")
        elif isinstance(arg, str):
            if arg and _ATOM_OK.fullmatch(arg) and arg.upper() != "NIL":
                out += arg.encode("ascii")
            elif all(0x20 <= ord(c) <= 0x7E for c in arg):
                out += quote(arg)
            else:
                if any(ord(c) < 0x20 or ord(c) == 0x7F for c in arg):
                    raise DataError("command argument contains a control character; refused")
                return self._render(arg.encode("utf-8"), out, parts)
        elif isinstance(arg, bytes):
            head, sync = self._literal_head(len(arg))
            out += head
            parts.append(bytes(out))
            if sync:
                parts.append(Wait.CONTINUATION)
            out = bytearray(arg)
        elif isinstance(arg, LiteralData):
            head, sync = self._literal_head(arg.size, arg.binary)
            out += head
            parts.append(bytes(out))
            if sync:
                parts.append(Wait.CONTINUATION)
            parts.append(arg)
            out = bytearray()
        elif isinstance(arg, (list, tuple)):
            out += b"("
            for index, item in enumerate(arg):
                if index:
                    out += b" "
                out = self._render(item, out, parts)
            out += b")"
        else:
            raise TypeError(f"cannot send {type(arg).__name__} as an IMAP argument")
        return out

    def forget(self, command: Command) -> None:
        """Drop a command that was never sent (the caller failed before sending it)."""
        if command in self.in_flight:
            self.in_flight.remove(command)
        self._by_tag.pop(command.tag, None)


def is_untagged(response: Response, kind: str) -> bool:
    """True for an ``Untagged`` response of ``kind`` (``"EXISTS"``, ``"FETCH"`` ...)."""
    return isinstance(response, Untagged) and response.kind == kind
