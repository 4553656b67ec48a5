"""POP3 without I/O: commands out as bytes, server bytes in, events out.

Theory of operation (h11 style). ``POP3Session`` keeps a FIFO of the commands sent and not
yet answered, so replies are always paired with the right command even when several are in
flight (PIPELINING, RFC 2449 section 6.6). The client feeds whatever it received with
``receive_data`` and pulls ``next_event()`` until it returns ``NEED_DATA``:

* ``Greeting`` once, first (with the APOP timestamp when there is one, RFC 1939 section 7);
* ``Status`` for each command's ``+OK``/``-ERR`` line (RFC 2449 response codes kept);
* ``Challenge`` for each ``+ base64`` line of an AUTH exchange (RFC 5034);
* after a positive status of a multi-line command: ``Line`` events (CAPA, LIST, UIDL; one
  dot-unstuffed line each, bounded) or ``Data`` events (RETR, TOP: dot-unstuffed message
  bytes, in whatever pieces they arrived), then ``End``.

Multi-line bodies are decoded by ``DotUnstuffer``, a pure incremental decoder that never
holds more than three bytes back and so streams messages of any size (RFC 1939 section 3:
lines starting with "." are byte-stuffed; the response ends with CRLF "." CRLF). Status and
listing lines are bounded by ``MAX_LINE``. Anything that breaks the grammar raises
``ProtocolError``; after that the session refuses further use.

Also here: the pure parsers for CAPA (RFC 2449 section 5), LIST/UIDL/STAT (RFC 1939
sections 5 and 7, with the UIDL grammar checks: 1 to 70 characters 0x21-0x7E, no
duplicates; fetchmail CVE-2005-2335 came from trusting them) and the APOP digest.
"""

from __future__ import annotations

import enum
from collections import deque

from mailtool.errors import LineTooLongError, ProtocolError
from mailtool.protocol.replies import Reply, ReplyParseError, parse_pop3_status
from mailtool.protocol.wire import MAX_LINE, guard_argument
from mailtool.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable

#: RFC 1939 allows 512-octet responses; real servers send longer capability and error text,
#: so status and listing lines get the shared, generous bound.
MAX_STATUS_LINE = MAX_LINE

#: Longest UIDL (RFC 1939 section 7: 1 to 70 characters in the range 0x21 to 0x7E).
MAX_UIDL = 70

#: Longest message number we accept (ten digits is beyond any real maildrop).
MAX_MSGNO_DIGITS = 10

#: Most lines of a CAPA answer (a few dozen in practice).
MAX_CAPA_LINES = 1000

#: Longest APOP timestamp we take from a greeting (a msg-id; bounded so parsing is linear).
MAX_TIMESTAMP = 500


class Body(enum.Enum):
    """What follows a positive status line of a command."""

    NONE = "none"  # single-line response
    LINES = "lines"  # multi-line listing (CAPA, LIST, UIDL): Line events
    DATA = "data"  # multi-line message (RETR, TOP): Data events


# --- events -----------------------------------------------------------------------------


@record(frozen=True, slots=True)
class Greeting:
    """The server's greeting; ``timestamp`` is the APOP ``<...>`` banner part, if any."""

    reply: Reply
    timestamp: str | None


@record(frozen=True, slots=True)
class Status:
    """The status line answering ``command``."""

    command: str
    reply: Reply


@record(frozen=True, slots=True)
class Challenge:
    """A ``+ base64`` continuation in an AUTH exchange (still base64-encoded)."""

    command: str
    data: bytes


@record(frozen=True, slots=True)
class Line:
    """One line of a multi-line listing, unstuffed, without its CRLF."""

    command: str
    line: bytes


@record(frozen=True, slots=True)
class Data:
    """A piece of a multi-line message body, unstuffed, line ends as the server sent them."""

    command: str
    data: bytes


@record(frozen=True, slots=True)
class End:
    """The end of a multi-line response."""

    command: str


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: ``next_event`` returns this when it needs more bytes from the server.
NEED_DATA = NeedData()

Event = Greeting | Status | Challenge | Line | Data | End


# --- the dot-unstuffing decoder ---------------------------------------------------------


class DotUnstuffer:
    """Incremental decoder for a POP3 multi-line body (RFC 1939 section 3).

    ``feed(data)`` returns ``(payload, rest)``: the unstuffed bytes decoded so far and, once
    the terminating ``CRLF . CRLF`` has been seen, the bytes that followed it (the next
    response), else None. At most three bytes ("." "\\r" at a line start) are held back
    between calls. The payload keeps the server's line ends; the CRLF before the final dot
    belongs to the message.
    """

    __slots__ = ("_at_line_start", "_held", "done")

    def __init__(self) -> None:
        self._at_line_start = True  # the body starts right after the status line
        self._held = b""
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        if self.done:
            raise ProtocolError("multi-line response already ended")
        if self._held:
            data = self._held + data
            self._held = b""
        out: list[bytes] = []
        pos = 0  # first byte not yet emitted
        size = len(data)
        cand = 0 if self._at_line_start else -1  # a line start to look at
        search = 0
        while True:
            if cand < 0:
                found = data.find(b"\n.", search)
                if found < 0:
                    break
                cand = found + 1
            if cand >= size:
                break
            if data[cand] != 0x2E:  # only possible for cand == 0
                cand = -1
                continue
            after = data[cand + 1 : cand + 3]
            if after == b"\r\n":
                out.append(data[pos:cand])
                self.done = True
                return b"".join(out), data[cand + 3 :]
            if len(after) < 2 and b"\r\n".startswith(after):
                # "." or ".\r" at the very end: cannot tell terminator from stuffing yet.
                out.append(data[pos:cand])
                self._held = data[cand:]
                self._at_line_start = True
                return b"".join(out), None
            out.append(data[pos:cand])  # a stuffed dot: drop it
            pos = cand + 1
            search = cand + 1
            cand = -1
        out.append(data[pos:])
        if size:
            self._at_line_start = data.endswith(b"\n")
        return b"".join(out) if len(out) > 1 else out[0], None


def unstuff(wire: bytes) -> tuple[bytes, bytes]:
    """Whole-buffer form: ``(body, rest)``. Raises ``ProtocolError`` when unterminated."""
    decoder = DotUnstuffer()
    body, rest = decoder.feed(wire)
    if rest is None:
        raise ProtocolError("multi-line response is not terminated")
    return body, rest


# --- commands ---------------------------------------------------------------------------

#: Command -> what follows its positive status (LIST/UIDL with an argument are single-line).
_BODY_OF = {
    "CAPA": Body.LINES,
    "LIST": Body.LINES,
    "UIDL": Body.LINES,
    "RETR": Body.DATA,
    "TOP": Body.DATA,
}


def body_of(name: str, args: tuple[str, ...]) -> Body:
    """What follows a positive status of ``name args``."""
    name = name.upper()
    if name in ("LIST", "UIDL") and args:
        return Body.NONE
    return _BODY_OF.get(name, Body.NONE)


def encode_command(name: str, *args: str) -> bytes:
    """``NAME arg arg CRLF``; arguments are guarded against CR, LF and control characters.

    Raises:
        DataError: an argument contains a control character (command injection).
    """
    for arg in args:
        guard_argument(arg, f"{name} argument")
        if " " in arg and name.upper() not in ("PASS", "APOP"):
            # RFC 1939 section 3: arguments are separated by single spaces; only the PASS
            # argument may contain spaces (RFC 1939 section 7 notes some servers allow it).
            raise ProtocolError(f"{name} argument must not contain a space")
    line = " ".join((name, *args)) if args else name
    return line.encode("utf-8") + b"\r\n"


# --- the session ------------------------------------------------------------------------


class _Mode(enum.Enum):
    STATUS = "status"
    LINES = "lines"
    DATA = "data"
    BROKEN = "broken"


@record(slots=True)
class _Pending:
    command: str
    body: Body


class POP3Session:
    """The POP3 client state machine (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending: deque[_Pending] = deque([_Pending("greeting", Body.NONE)])
        self._mode = _Mode.STATUS
        self._decoder: DotUnstuffer | None = None
        self._line_buf = bytearray()
        self.greeted = False

    # -- outgoing ------------------------------------------------------------------

    def send_command(self, name: str, *args: str) -> bytes:
        """Queue ``name args`` as sent and return its wire bytes."""
        self._check_usable()
        name = name.upper()
        data = encode_command(name, *args)
        self._pending.append(_Pending(name, body_of(name, args)))
        return data

    def send_auth_response(self, data: bytes) -> bytes:
        """The base64 line answering a ``Challenge`` (the AUTH command stays pending)."""
        self._check_usable()
        if not self._pending or self._pending[0].command != "AUTH":
            raise ProtocolError("no AUTH exchange in progress")
        if b"\r" in data or b"\n" in data:
            raise ProtocolError("AUTH response must be one line")
        return data + b"\r\n"

    @property
    def pending(self) -> int:
        """Commands sent and not yet fully answered (the greeting counts until read)."""
        return len(self._pending)

    @property
    def awaiting(self) -> str | None:
        """Name of the command whose answer is read next (None when none is pending)."""
        return self._pending[0].command if self._pending else None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    def discard_buffer(self) -> int:
        """Drop unread bytes (after STLS: they arrived in cleartext). Returns how many."""
        count = len(self._buf)
        self._buf = bytearray()
        return count

    # -- incoming ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self._check_usable()
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next event, or ``NEED_DATA``.

        Raises:
            ProtocolError: unparsable or oversized server data, or data nobody asked for.
        """
        self._check_usable()
        try:
            if self._mode is _Mode.STATUS:
                return self._next_status()
            if self._mode is _Mode.DATA:
                return self._next_data()
            return self._next_line()
        except ProtocolError:
            self._mode = _Mode.BROKEN
            raise

    def _check_usable(self) -> None:
        if self._mode is _Mode.BROKEN:
            raise ProtocolError("POP3 session unusable after a protocol error")

    def _take_line(self, limit: int) -> bytes | None:
        idx = self._buf.find(b"\n", 0, limit + 1)
        if idx < 0:
            if len(self._buf) > limit:
                raise LineTooLongError(f"server sent a line longer than {limit} bytes")
            return None
        line = bytes(self._buf[: idx + 1])
        del self._buf[: idx + 1]
        return line

    def _next_status(self) -> Event | NeedData:
        if not self._buf:
            return NEED_DATA
        if not self._pending:
            raise ProtocolError(
                f"server sent data nobody asked for: {bytes(self._buf[:80])!r}"
            )
        line = self._take_line(MAX_STATUS_LINE)
        if line is None:
            return NEED_DATA
        head = self._pending[0]
        if head.command == "AUTH" and line.startswith(b"+") and not line.startswith(b"+OK"):
            payload = line[1:].strip()
            return Challenge(head.command, payload)
        try:
            reply = parse_pop3_status(line)
        except ReplyParseError as exc:
            raise ProtocolError(f"malformed reply to {head.command}: {exc.message}") from exc
        if head.command == "greeting":
            self._pending.popleft()
            self.greeted = True
            return Greeting(reply, apop_timestamp(reply) if reply.is_positive else None)
        if reply.is_positive and head.body is not Body.NONE:
            self._decoder = DotUnstuffer()
            self._mode = _Mode.DATA if head.body is Body.DATA else _Mode.LINES
        else:
            self._pending.popleft()
        return Status(head.command, reply)

    def _decode(self) -> tuple[bytes, bool]:
        """Run the decoder over the buffer: (payload, finished)."""
        assert self._decoder is not None
        data = bytes(self._buf)
        self._buf = bytearray()
        payload, rest = self._decoder.feed(data)
        if rest is None:
            return payload, False
        self._buf = bytearray(rest)
        return payload, True

    def _finish_body(self) -> End:
        head = self._pending.popleft()
        self._decoder = None
        self._mode = _Mode.STATUS
        return End(head.command)

    def _next_data(self) -> Event | NeedData:
        if self._decoder is not None and self._decoder.done:
            return self._finish_body()
        if not self._buf:
            return NEED_DATA
        payload, _finished = self._decode()
        if payload:
            return Data(self._pending[0].command, payload)
        return self._next_data()

    def take_lines(self) -> list[bytes]:
        """Every complete listing line available now (CAPA/LIST/UIDL), unstuffed, without
        line ends, in one call: the bulk form of ``Line`` events for long listings.

        Returns an empty list when no complete line is buffered (or no listing is being
        read); ``next_event`` then gives the next ``Line``, the ``End`` or ``NEED_DATA``.
        Lines are bounded by ``MAX_STATUS_LINE`` exactly as with ``next_event``.
        """
        self._check_usable()
        if self._mode is not _Mode.LINES:
            return []
        try:
            if self._buf and self._decoder is not None and not self._decoder.done:
                payload, _finished = self._decode()
                self._line_buf += payload
            end = self._line_buf.rfind(b"\n")
            if end < 0:
                if len(self._line_buf) > MAX_STATUS_LINE:
                    raise LineTooLongError(
                        f"server sent a {self._pending[0].command} line longer than "
                        f"{MAX_STATUS_LINE} bytes"
                    )
                return []
            # One CR LF -> LF pass, then one split: each line loses at most the one CR
            # before its LF, exactly as the per-line form in ``_next_line``.
            lines = bytes(self._line_buf[: end + 1]).replace(b"\r\n", b"\n").split(b"\n")
            lines.pop()  # the empty piece after the last LF
            del self._line_buf[: end + 1]
            if len(self._line_buf) > MAX_STATUS_LINE or (
                max(map(len, lines)) > MAX_STATUS_LINE + 1
            ):
                raise LineTooLongError(
                    f"server sent a {self._pending[0].command} line longer than "
                    f"{MAX_STATUS_LINE} bytes"
                )
            return lines
        except ProtocolError:
            self._mode = _Mode.BROKEN
            raise

    def _next_line(self) -> Event | NeedData:
        command = self._pending[0].command
        while True:
            idx = self._line_buf.find(b"\n")
            if idx >= 0:
                line = bytes(self._line_buf[:idx])
                if line.endswith(b"\r"):
                    line = line[:-1]  # the CR of CRLF only, as ``take_lines`` does
                del self._line_buf[: idx + 1]
                return Line(command, line)
            if len(self._line_buf) > MAX_STATUS_LINE:
                raise LineTooLongError(
                    f"server sent a {command} line longer than {MAX_STATUS_LINE} bytes"
                )
            assert self._decoder is not None
            if self._decoder.done:
                if self._line_buf:
                    raise ProtocolError(f"{command} listing ends inside a line")
                return self._finish_body()
            if not self._buf:
                return NEED_DATA
            payload, _finished = self._decode()
            self._line_buf += payload


# --- pure parsers -----------------------------------------------------------------------

# Regular expressions are compiled on first use: ``re`` and the compile cost stay out of the
# start-up of a run that never needs them.
_patterns: dict[str, re.Pattern[bytes]] = {}


def _pattern(name: str) -> re.Pattern[bytes]:
    pat = _patterns.get(name)
    if pat is None:
        import re

        if name == "uidl":
            # A unique-id (RFC 1939 section 7): 1 to 70 characters in the range 0x21 to 0x7E.
            pat = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_UIDL)
        elif name == "listing":
            # A whole UIDL listing of well-formed lines, one C-speed pass (the fast path).
            pat = re.compile(rb"(?:[0-9]{1,%d} [\x21-\x7e]{1,%d}\n)*"
                             % (MAX_MSGNO_DIGITS, MAX_UIDL))
        else:
            raise KeyError(name)
        _patterns[name] = pat
    return pat


def apop_timestamp(greeting: Reply) -> str | None:
    """The ``<process-ID.clock@hostname>`` part of a greeting, if any (RFC 1939 section 7).

    The first ``<`` followed by 1 to ``MAX_TIMESTAMP`` characters that are neither angle
    brackets nor white space, then ``>``; one linear scan, no regular expression.
    """
    text = greeting.text
    size = len(text)
    start = text.find("<")
    while start >= 0:
        end = start + 1
        while end < size and text[end] not in "<>" and not text[end].isspace():
            end += 1
        if end < size and text[end] == ">" and 2 <= end - start <= MAX_TIMESTAMP + 1:
            return text[start : end + 1]
        start = text.find("<", end)
    return None


def apop_digest(timestamp: str, password: str) -> str:
    """Hex MD5 of timestamp followed by the shared secret (RFC 1939 section 7)."""
    import hashlib  # only for APOP: not on the start-up path

    return hashlib.md5((timestamp + password).encode("utf-8")).hexdigest()


def parse_capa(lines: Iterable[bytes]) -> dict[str, tuple[str, ...]]:
    """CAPA lines -> {NAME: (arguments...)} (RFC 2449 section 5), names upper-cased."""
    caps: dict[str, tuple[str, ...]] = {}
    for count, raw in enumerate(lines):
        if count >= MAX_CAPA_LINES:
            raise ProtocolError(f"CAPA answer longer than {MAX_CAPA_LINES} lines")
        words = raw.decode("utf-8", "replace").split()
        if not words:
            continue
        caps[words[0].upper()] = tuple(words[1:])
    return caps


def _msgno(text: bytes, what: str) -> int:
    if not text.isdigit() or len(text) > MAX_MSGNO_DIGITS or int(text) == 0:
        raise ProtocolError(f"bad message number in {what}: {text[:40]!r}")
    return int(text)


def _octets(text: bytes, what: str) -> int:
    if not text.isdigit() or len(text) > 15:
        raise ProtocolError(f"bad size in {what}: {text[:40]!r}")
    return int(text)


def check_uidl(uid: bytes) -> str:
    """Check a unique-id against RFC 1939 section 7 and return it as text.

    Raises:
        ProtocolError: empty, longer than 70 characters, or outside 0x21-0x7E.
    """
    if _pattern("uidl").fullmatch(uid) is None:
        raise ProtocolError(f"server sent an invalid UIDL {uid[:80]!r} (RFC 1939 section 7)")
    return uid.decode("ascii")


def parse_scan_line(line: bytes, what: str = "LIST") -> tuple[int, int]:
    """``msgno octets`` (a LIST line or the text of ``+OK msgno octets``)."""
    parts = line.split()
    if len(parts) < 2:
        raise ProtocolError(f"malformed {what} line: {line[:80]!r}")
    return _msgno(parts[0], what), _octets(parts[1], what)


def parse_uidl_line(line: bytes) -> tuple[int, str]:
    """``msgno unique-id``."""
    parts = line.split()
    if len(parts) != 2:
        raise ProtocolError(f"malformed UIDL line: {line[:80]!r}")
    return _msgno(parts[0], "UIDL"), check_uidl(parts[1])


def parse_list(lines: Iterable[bytes]) -> dict[int, int]:
    """LIST lines -> {msgno: octets}; duplicate numbers are refused."""
    sizes: dict[int, int] = {}
    for line in lines:
        # Fast path for the usual "msgno octets" line (a maildrop lists thousands); any
        # line it does not take goes through the checking parser, which raises.
        parts = line.split(None, 2)
        if (len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit()
                and len(parts[0]) <= MAX_MSGNO_DIGITS and len(parts[1]) <= 15):
            num, size = int(parts[0]), int(parts[1])
            if num == 0:
                parse_scan_line(line)
        else:
            num, size = parse_scan_line(line)
        if num in sizes:
            raise ProtocolError(f"LIST names message {num} twice")
        sizes[num] = size
    return sizes


def parse_uidl(lines: Iterable[bytes]) -> dict[int, str]:
    """UIDL lines -> {msgno: uidl}; duplicate numbers or UIDLs are refused (section 7)."""
    lines = list(lines)
    if lines:
        # Fast path for a listing whose every line is "msgno SP unique-id": checked in one
        # pass, split in one call. Anything else (or a zero, or a duplicate) goes through
        # the checking loop below, which accepts what it may and raises with the reason.
        blob = b"\n".join(lines) + b"\n"
        if _pattern("listing").fullmatch(blob) is not None:
            tokens = blob.decode("ascii").split()
            ids = tokens[1::2]
            fast = dict(zip(map(int, tokens[0::2]), ids, strict=True))
            if len(fast) == len(ids) == len(set(ids)) and 0 not in fast:
                return fast
    uids: dict[int, str] = {}
    seen: set[str] = set()
    for line in lines:
        num, uid = parse_uidl_line(line)
        if num in uids:
            raise ProtocolError(f"UIDL names message {num} twice")
        if uid in seen:
            raise ProtocolError(f"UIDL gives the same unique-id {uid!r} to two messages")
        uids[num] = uid
        seen.add(uid)
    return uids


def parse_stat(reply: Reply) -> tuple[int, int]:
    """``+OK count octets`` -> (count, octets)."""
    parts = reply.text.encode("utf-8", "replace").split()
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ProtocolError(f"malformed STAT reply: {reply.one_line()[:80]!r}")
    return int(parts[0]), int(parts[1])
