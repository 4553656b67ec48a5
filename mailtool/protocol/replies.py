"""The reply model shared by SMTP, POP3 and IMAP, and the pure parsers that build it.

SMTP (RFC 5321 section 4.2): ``ddd-text`` continuation lines, then ``ddd text``; every line of
one reply carries the same code. When the server speaks ENHANCEDSTATUSCODES (RFC 2034), each
text starts with ``class.subject.detail`` (RFC 3463) whose class matches the first digit.
POP3 (RFC 1939, 2449, 3206): ``+OK text`` or ``-ERR [CODE] text``.
IMAP (RFC 3501/9051 section 7.1): ``tag OK|NO|BAD [CODE ...] text``; the IMAP parser builds
those replies, this module maps their codes to exit codes.

Also the one function that turns server bytes into text for people.
"""

from __future__ import annotations

from mailtool.errors import ProtocolError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.wire import MAX_REPLY_LINES
from mailtool.record import record

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

#: Longest server text we show in one line; the rest is elided (CVE-2021-36386 class).
MAX_SHOWN_TEXT = 2000

#: Control characters escaped in server text (tab is kept). A pattern compiled on first
#: use: most replies are printable text and never need it.
_CONTROL = r"[\x00-\x08\x0a-\x1f\x7f]"


def decode_server_text(data: bytes | str) -> str:
    """Server bytes -> printable text: UTF-8 (invalid bytes replaced), control chars escaped."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.rstrip("\r\n")
    if text.isprintable():
        return text  # no control character at all (the usual case, checked in C)
    import re  # here: a reply with a control character in it is rare

    return re.sub(_CONTROL, lambda m: f"\\x{ord(m.group()):02x}", text)


@record(frozen=True, slots=True)
class Reply:
    """One server reply, whatever the protocol.

    Attributes:
        status: ``"250"`` for SMTP, ``"+OK"``/``"-ERR"`` for POP3, ``"OK"``/``"NO"``/``"BAD"``/
            ``"BYE"`` for IMAP.
        lines: the text of each line, decoded, without code and enhanced code.
        code: the SMTP basic code, else None.
        enhanced: the SMTP enhanced status code (``"5.1.1"``), else None.
        resp_code: the POP3/IMAP bracketed response code (``"IN-USE"``), else None.
    """

    status: str
    lines: tuple[str, ...]
    code: int | None = None
    enhanced: str | None = None
    resp_code: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        if self.code is not None:
            return self.code < 400
        return self.status in ("+OK", "OK", "PREAUTH")

    @property
    def is_transient(self) -> bool:
        """A 4xx, or a POP3/IMAP code that means "later"."""
        if self.code is not None:
            return 400 <= self.code < 500
        return exit_code_for(self) == ExitCode.TEMPFAIL

    @property
    def is_permanent(self) -> bool:
        if self.code is not None:
            return self.code >= 500
        return not self.is_positive and not self.is_transient

    def one_line(self) -> str:
        """The reply as one line: ``550 5.1.1 no such user`` (continuations joined by ``/``)."""
        head = self.status
        if self.enhanced:
            head += " " + self.enhanced
        if self.resp_code:
            head += f" [{self.resp_code}]"
        text = " / ".join(line for line in self.lines if line)
        if len(text) > MAX_SHOWN_TEXT:
            text = text[:MAX_SHOWN_TEXT] + "..."
        return f"{head} {text}".rstrip()

    def __str__(self) -> str:
        return self.one_line()


class ReplyParseError(ProtocolError):
    """A server reply that does not follow the grammar."""


# --- SMTP -------------------------------------------------------------------------------


def parse_smtp_line(line: bytes) -> tuple[int, bool, str]:
    """Split one SMTP reply line into (code, is_last, text).

    Accepts a bare ``250`` (no text) and tolerates a missing CR.

    Raises:
        ReplyParseError: not three digits 2-5/0-5/0-9 followed by space, hyphen or end.
    """
    line = line.rstrip(b"\r\n")
    if len(line) < 3 or not line[:3].isdigit():
        raise ReplyParseError(f"malformed SMTP reply line: {decode_server_text(line[:200])!r}")
    code = int(line[:3])
    if not (200 <= code <= 599) or line[1] > ord("5"):
        raise ReplyParseError(f"SMTP reply code out of range: {decode_server_text(line[:200])!r}")
    sep = line[3:4]
    if sep not in (b"", b" ", b"-"):
        raise ReplyParseError(f"malformed SMTP reply line: {decode_server_text(line[:200])!r}")
    return code, sep != b"-", decode_server_text(line[4:])


def split_enhanced(code: int, text: str) -> tuple[str | None, str]:
    """Take an enhanced status code off the front of ``text`` when its class matches.

    The code is ``class.subject.detail`` (RFC 3463: a class digit 2, 4 or 5, then one to
    three digits twice), followed by white space or the end of the text. Parsed by hand:
    it is read from every SMTP reply, and a regex costs each start its compilation.
    """
    if len(text) < 5 or text[1] != "." or text[0] not in "245" or int(text[0]) != code // 100:
        return None, text
    if text[3] == "." and text[2].isdecimal() and text[4].isdecimal() and (
            len(text) == 5 or text[5].isspace()):
        return text[:5], text[5:].lstrip()  # the usual x.y.z
    end = 2
    for _part in (0, 1):
        start = end
        while end < len(text) and end - start < 4 and text[end].isdecimal():
            end += 1
        if not 1 <= end - start <= 3:
            return None, text
        if _part == 0:
            if end >= len(text) or text[end] != ".":
                return None, text
            end += 1
    if end < len(text) and not text[end].isspace():
        return None, text
    return text[:end], text[end:].lstrip()


def build_smtp_reply(parsed: Iterable[tuple[int, bool, str]]) -> Reply:
    """Assemble parsed lines (the last one flagged ``is_last``) into a ``Reply``."""
    items = list(parsed)
    if not items:
        raise ReplyParseError("empty SMTP reply")
    code = items[0][0]
    enhanced: str | None = None
    lines: list[str] = []
    for index, (line_code, _last, text) in enumerate(items):
        if line_code != code:
            raise ReplyParseError(f"SMTP reply mixes codes {code} and {line_code}")
        enh, rest = split_enhanced(code, text)
        if index == 0:
            enhanced = enh
        lines.append(rest if enh is not None and enh == enhanced else text)
    return Reply(status=str(code), lines=tuple(lines), code=code, enhanced=enhanced)


#: One-line replies remembered per reader (a ``Reply`` is immutable, so one instance can
#: stand for every identical line): a pipelined batch gets the same "250 2.1.0 Ok" and
#: "354 ..." for every message, and parses each only once. Bounded: replies carrying a
#: queue id differ every time.
REPLY_CACHE_SIZE = 64


class SMTPReplyReader:
    """Incremental SMTP reply assembler: ``feed`` lines until it returns a ``Reply``."""

    def __init__(self, max_lines: int = MAX_REPLY_LINES) -> None:
        self._lines: list[tuple[int, bool, str]] = []
        self._max = max_lines
        self._seen: dict[bytes, Reply] = {}

    def feed(self, line: bytes) -> Reply | None:
        if not self._lines:
            known = self._seen.get(line)
            if known is not None:
                return known
        if not self._lines and line[3:4] == b" " and line[:3].isdigit() and \
                b"2" <= line[:1] <= b"5" and line[1:2] <= b"5" and line.isascii():
            # One-line reply, the usual case (one per command of a pipelined batch): what
            # parse_smtp_line + build_smtp_reply make of it, in one step.
            code = int(line[:3])
            text = line[4:].rstrip(b"\r\n").decode("ascii")
            if not text.isprintable():
                text = decode_server_text(text)
            enhanced, rest = split_enhanced(code, text)
            reply = Reply(str(code), (text if enhanced is None else rest,), code, enhanced)
            if len(self._seen) < REPLY_CACHE_SIZE and len(line) <= 512:
                self._seen[line] = reply
            return reply
        parsed = parse_smtp_line(line)
        self._lines.append(parsed)
        if parsed[1]:
            reply = build_smtp_reply(self._lines)
            self._lines = []
            return reply
        if len(self._lines) >= self._max:
            raise ReplyParseError(f"SMTP reply longer than {self._max} lines")
        return None


def parse_smtp_reply(data: bytes) -> Reply:
    """Parse one complete reply held in ``data`` (tests and ``explain``)."""
    reader = SMTPReplyReader()
    reply: Reply | None = None
    for raw in data.splitlines():
        if reply is not None:
            raise ReplyParseError("data after the last line of an SMTP reply")
        reply = reader.feed(raw)
    if reply is None:
        raise ReplyParseError("SMTP reply ends with a continuation line")
    return reply


# --- POP3 -------------------------------------------------------------------------------

#: Compiled on first use (re's cache): an SMTP-only process never needs it.
_RESP_CODE = r"^\[([A-Za-z0-9/-]{1,64})\]\s*"


def parse_pop3_status(line: bytes) -> Reply:
    """Parse a POP3 status line ``+OK ...`` / ``-ERR [CODE] ...`` (RFC 1939, 2449).

    Raises:
        ReplyParseError: the line starts with neither indicator.
    """
    text = decode_server_text(line)
    if text.startswith("+OK") and text[3:4] in ("", " "):
        return Reply(status="+OK", lines=(text[4:],))
    if text.startswith("-ERR") and text[4:5] in ("", " "):
        rest = text[5:]
        import re  # here: most runs never see an -ERR

        m = re.match(_RESP_CODE, rest)
        code = m.group(1).upper() if m else None
        return Reply(status="-ERR", lines=(rest[m.end() :] if m else rest,), resp_code=code)
    raise ReplyParseError(f"malformed POP3 status line: {text[:200]!r}")


# --- exit codes -------------------------------------------------------------------------

# Enhanced codes (RFC 3463) that name the addressee or its host specifically.
_ENHANCED_EXIT = {
    "5.1.1": ExitCode.NOUSER,  # bad destination mailbox address
    "5.1.3": ExitCode.NOUSER,  # bad destination mailbox address syntax
    "5.1.6": ExitCode.NOUSER,  # mailbox has moved
    "5.2.1": ExitCode.NOUSER,  # mailbox disabled
    "5.1.2": ExitCode.NOHOST,  # bad destination system address
    "5.1.10": ExitCode.NOHOST,  # recipient address has null MX (RFC 7505)
    "5.4.4": ExitCode.NOHOST,  # unable to route
}

_SMTP_EXIT = {
    530: ExitCode.NOPERM,  # authentication required
    534: ExitCode.NOPERM,  # mechanism too weak
    535: ExitCode.NOPERM,  # credentials invalid
    538: ExitCode.NOPERM,  # encryption required for the mechanism
    521: ExitCode.NOHOST,  # host does not accept mail
    556: ExitCode.NOHOST,  # domain does not accept mail (null MX)
}

_POP3_EXIT = {
    "IN-USE": ExitCode.TEMPFAIL,
    "LOGIN-DELAY": ExitCode.TEMPFAIL,
    "SYS/TEMP": ExitCode.TEMPFAIL,
    "SYS/PERM": ExitCode.UNAVAILABLE,
    "AUTH": ExitCode.NOPERM,
}

_IMAP_EXIT = {
    "AUTHENTICATIONFAILED": ExitCode.NOPERM,
    "AUTHORIZATIONFAILED": ExitCode.NOPERM,
    "EXPIRED": ExitCode.NOPERM,
    "PRIVACYREQUIRED": ExitCode.NOPERM,
    "CONTACTADMIN": ExitCode.NOPERM,
    "NOPERM": ExitCode.NOPERM,
    "UNAVAILABLE": ExitCode.TEMPFAIL,
    "INUSE": ExitCode.TEMPFAIL,
    "LIMIT": ExitCode.TEMPFAIL,
    "OVERQUOTA": ExitCode.TEMPFAIL,
    "SERVERBUG": ExitCode.TEMPFAIL,
    "NONEXISTENT": ExitCode.UNAVAILABLE,
    "TRYCREATE": ExitCode.UNAVAILABLE,
    "CANNOT": ExitCode.UNAVAILABLE,
    "CLIENTBUG": ExitCode.PROTOCOL,
}


def exit_code_for(reply: Reply) -> ExitCode:
    """The sysexits code a failed reply maps to (``OK`` for a positive reply).

    SMTP: 4xx -> 75; 5.1.1-style -> 67; null MX / unroutable -> 68; AUTH failures -> 77;
    other 5xx -> 69. POP3 and IMAP: by response code, else 69 (NO/-ERR) or 76 (BAD).
    """
    if reply.is_positive:
        return ExitCode.OK
    if reply.code is not None:
        if 400 <= reply.code < 500:
            return ExitCode.TEMPFAIL
        if reply.enhanced in _ENHANCED_EXIT:
            return _ENHANCED_EXIT[reply.enhanced]
        if reply.enhanced and reply.enhanced.startswith("5.7.") and reply.code in _SMTP_EXIT:
            return _SMTP_EXIT[reply.code]
        return _SMTP_EXIT.get(reply.code, ExitCode.UNAVAILABLE)
    if reply.status in ("+OK", "-ERR"):
        return _POP3_EXIT.get(reply.resp_code or "", ExitCode.UNAVAILABLE)
    code = (reply.resp_code or "").split(" ", 1)[0].upper()
    if code in _IMAP_EXIT:
        return _IMAP_EXIT[code]
    if reply.status == "BAD":
        return ExitCode.PROTOCOL
    if reply.status == "BYE":
        return ExitCode.TEMPFAIL
    return ExitCode.UNAVAILABLE
