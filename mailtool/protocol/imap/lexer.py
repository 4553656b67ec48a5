"""IMAP response lexer: a pure reader over one complete, framed server response.

Theory of operation. The session frames a response as *segments* (the text between literals,
line ends removed) and the *literals* themselves: ``* 1 FETCH (BODY[] {5}\\r\\nhello)\\r\\n``
becomes segments ``[b'* 1 FETCH (BODY[] {5}', b')']`` and literals ``[b'hello']``. The lexer
walks that structure; a literal marker ``{n}``, ``~{n}`` (RFC 9051 literal8) or ``{n+}`` at the
end of a segment yields the literal's value and continues with the next segment. The grammar
is RFC 9051 section 9 (and RFC 3501 section 9), read leniently where servers differ in
harmless ways (repeated spaces, lower-case keywords) and strictly where a mistake would
matter (numbers, string escapes, unbalanced lists).

Values: an atom is ``str``; a quoted string or literal is ``bytes``; NIL is ``None``; a
parenthesised list is ``list``; a streamed body literal is the ``StreamedLiteral`` the
session put in its place. Every failure is an ``IMAPParseError`` (a ``ProtocolError``).
"""

from __future__ import annotations

from mailtool.errors import ProtocolError
from mailtool.protocol.replies import decode_server_text

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

#: Deepest list nesting we follow (BODYSTRUCTURE of nested message/rfc822 parts); deeper
#: is refused instead of recursing without bound.
MAX_DEPTH = 64

#: Largest number we accept (RFC 9051 number64 is 63 bits).
MAX_NUMBER = 2**63 - 1

# Characters that end an atom in a response: atom-specials of RFC 9051 minus the ones
# servers legitimately send inside atoms (``\`` for flags, ``*`` in ``\*``, ``%``), plus
# ``]`` which closes a response code.
_ATOM_END = frozenset(b'(){ "]') | frozenset(range(0x20)) | {0x7F}
_SP = 0x20


class IMAPParseError(ProtocolError):
    """A server response that does not follow the IMAP grammar."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("step", "IMAP response")
        super().__init__(message, **kwargs)


class Lexer:
    """Cursor over the segments and literals of one response."""

    __slots__ = ("_cur", "_lit_at", "literals", "pos", "seg", "segments")

    def __init__(self, segments: list[bytes], literals: list[Any]) -> None:
        if len(literals) != len(segments) - 1:
            raise IMAPParseError("response framing is inconsistent")
        self.segments = segments
        self.literals = literals
        self.seg = 0
        self.pos = 0
        self._cur = segments[0]
        self._lit_at = self._marker_pos(0)

    def _marker_pos(self, index: int) -> int:
        """Where the literal marker starts in segment ``index`` (its length if none)."""
        seg = self.segments[index]
        if index >= len(self.literals):
            return len(seg)
        start = seg.rfind(b"{")
        if start < 0:
            raise IMAPParseError("literal without a {n} marker")
        if start > 0 and seg[start - 1 : start] == b"~":
            start -= 1
        return start

    # --- positions ----------------------------------------------------------------

    def at_end(self) -> bool:
        """True at the end of the whole response."""
        return self.pos >= self._lit_at and self.seg >= len(self.literals)

    def peek(self) -> int | None:
        """The next byte, or None at a literal marker or the end."""
        if self.pos < self._lit_at:
            return self._cur[self.pos]
        return None

    def at_literal(self) -> bool:
        return self.pos >= self._lit_at and self.seg < len(self.literals)

    def skip_sp(self) -> None:
        while self.pos < self._lit_at and self._cur[self.pos] == _SP:
            self.pos += 1

    def expect_sp(self) -> None:
        if self.peek() != _SP:
            raise self.error("expected a space")
        self.skip_sp()

    def accept(self, char: bytes) -> bool:
        if self.pos < self._lit_at and self._cur[self.pos] == char[0]:
            self.pos += 1
            return True
        return False

    def expect(self, char: bytes) -> None:
        if not self.accept(char):
            raise self.error(f"expected {char.decode()!r}")

    def error(self, what: str) -> IMAPParseError:
        context = decode_server_text(self._cur[max(0, self.pos - 40) : self.pos + 40])
        return IMAPParseError(f"{what} at offset {self.pos}: {context!r}")

    # --- tokens -------------------------------------------------------------------

    def atom(self) -> str:
        """An atom (also flag names like ``\\Seen``); empty is an error."""
        start = self.pos
        cur = self._cur
        end = self._lit_at
        pos = start
        while pos < end and cur[pos] not in _ATOM_END:
            pos += 1
        if pos == start:
            raise self.error("expected an atom")
        self.pos = pos
        return cur[start:pos].decode("utf-8", "replace")

    def fetch_att_name(self) -> str:
        """A FETCH item name, including ``[section]`` and ``<origin>`` (``BODY[1.MIME]<0>``)."""
        start = self.pos
        cur = self._cur
        end = self._lit_at
        pos = start
        while pos < end and cur[pos] not in _ATOM_END and cur[pos] != 0x5B:  # "["
            pos += 1
        if pos < end and cur[pos] == 0x5B:
            close = cur.find(b"]", pos, end)
            if close < 0:
                raise self.error("unterminated section in a FETCH item")
            pos = close + 1
            if pos < end and cur[pos] == 0x3C:  # "<"
                gt = cur.find(b">", pos, end)
                if gt < 0 or not cur[pos + 1 : gt].isdigit():
                    raise self.error("malformed <origin> in a FETCH item")
                pos = gt + 1
        if pos == start:
            raise self.error("expected a FETCH item name")
        self.pos = pos
        return cur[start:pos].decode("ascii", "replace").upper()

    def number(self) -> int:
        start = self.pos
        cur = self._cur
        pos = start
        while pos < self._lit_at and 0x30 <= cur[pos] <= 0x39:
            pos += 1
        if pos == start:
            raise self.error("expected a number")
        if pos - start > 19:
            raise self.error("number too large")
        value = int(cur[start:pos])
        if value > MAX_NUMBER:
            raise self.error("number too large")
        self.pos = pos
        return value

    def quoted(self) -> bytes:
        """A quoted string (the opening quote not yet consumed); ``\\\\`` and ``\\"`` escapes."""
        self.expect(b'"')
        cur = self._cur
        end = self._lit_at
        start = self.pos
        close = cur.find(b'"', start, end)
        if close >= 0 and cur.find(b"\\", start, close) < 0:
            self.pos = close + 1
            return cur[start:close]
        out = bytearray()
        pos = start
        while True:
            if pos >= end:
                self.pos = pos
                raise self.error("unterminated quoted string")
            c = cur[pos]
            if c == 0x22:
                self.pos = pos + 1
                return bytes(out)
            if c == 0x5C:
                pos += 1
                if pos >= end:
                    self.pos = pos
                    raise self.error("unterminated quoted string")
                c = cur[pos]
            out.append(c)
            pos += 1

    def literal(self) -> Any:
        """The literal at the current position; moves to the next segment."""
        if not self.at_literal():
            raise self.error("expected a literal")
        value = self.literals[self.seg]
        self.seg += 1
        self._cur = self.segments[self.seg]
        self.pos = 0
        self._lit_at = self._marker_pos(self.seg)
        return value

    def rest(self) -> bytes:
        """The rest of the current segment (free text such as resp-text)."""
        end = self._lit_at if self.seg < len(self.literals) else len(self._cur)
        text = self._cur[self.pos : end]
        self.pos = end
        return text

    # --- values -------------------------------------------------------------------

    def value(self, depth: int = 0) -> Any:
        """One generic value: atom, string, literal, NIL or a (nested) list."""
        if self.at_literal():
            return self.literal()
        c = self.peek()
        if c is None:
            raise self.error("unexpected end of response")
        if c == 0x28:  # "("
            return self.list(depth + 1)
        if c == 0x22:
            return self.quoted()
        word = self.atom()
        if word.upper() == "NIL":
            return None
        return word

    def list(self, depth: int = 1) -> list[Any]:
        if depth > MAX_DEPTH:
            raise self.error("lists nested too deeply")
        self.expect(b"(")
        items: list[Any] = []
        append = items.append
        # The hot loop of ENVELOPE/BODYSTRUCTURE parsing: peek/skip_sp inlined.
        while True:
            cur = self._cur
            end = self._lit_at
            pos = self.pos
            while pos < end and cur[pos] == 0x20:
                pos += 1
            self.pos = pos
            if pos < end:
                c = cur[pos]
                if c == 0x29:  # ")"
                    self.pos = pos + 1
                    return items
                if c == 0x22:
                    append(self.quoted())
                elif c == 0x28:
                    append(self.list(depth + 1))
                else:
                    word = self.atom()
                    append(None if len(word) == 3 and word.upper() == "NIL" else word)
            elif self.at_literal():
                append(self.literal())
            else:
                raise self.error("unterminated list")

    def nstring(self) -> Any:
        """A string, a literal, or NIL (None)."""
        if self.at_literal():
            return self.literal()
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        word = self.atom()
        if word.upper() != "NIL":
            raise self.error("expected a string or NIL")
        return None

    def astring(self) -> bytes:
        """An atom or a string, as bytes (mailbox names)."""
        if self.at_literal():
            value = self.literal()
            if not isinstance(value, bytes):
                raise self.error("a streamed literal where a string was expected")
            return value
        if self.peek() == 0x22:
            return self.quoted()
        start = self.pos
        cur = self._cur
        pos = start
        # ASTRING-CHAR allows "]" (resp-specials).
        while pos < self._lit_at and (cur[pos] not in _ATOM_END or cur[pos] == 0x5D):
            pos += 1
        if pos == start:
            raise self.error("expected a string")
        self.pos = pos
        return cur[start:pos]


def to_number(value: Any, what: str = "number") -> int:
    """A generic value that must be a number (an all-digit atom)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
        if number <= MAX_NUMBER:
            return number
    raise IMAPParseError(f"expected a {what}, got {decode_server_text(repr(value))[:80]}")
