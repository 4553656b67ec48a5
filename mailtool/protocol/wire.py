"""Bytes-level helpers shared by every protocol: limits, argument guard, CRLF, dot-stuffing.

Theory: all three protocols are line based with CRLF line ends. Data we send must never
contain a bare CR or LF (SMTP smuggling, RFC 5321 section 2.3.8) and command arguments must
never contain a line break (command injection). Data we read is bounded everywhere.
"""

from __future__ import annotations

from mailtool.errors import DataError

#: Longest line we accept from a server. RFC 5321 allows 512-octet reply lines and RFC 1939
#: 512-octet responses, but real servers send long capability lists and IMAP sends whole
#: FETCH responses on one line, so the bound is generous yet small enough to stop a flood.
MAX_LINE = 64 * 1024

#: Longest SMTP multi-line reply (number of lines); EHLO lists have a few dozen.
MAX_REPLY_LINES = 1000

#: Size of each recv() and of each chunk a body is streamed in.
CHUNK = 256 * 1024

_FORBIDDEN = {c for c in range(0x20) if c != 0x09} | {0x7F}


def guard_argument(value: str, what: str = "argument") -> str:
    """Refuse CR, LF, NUL and other control characters in a command argument or header.

    Raises:
        DataError: ``value`` contains a control character (header/command injection).
    """
    if value.isprintable():
        return value  # no control character at all (the usual case, checked in C)
    for ch in value:
        if ord(ch) in _FORBIDDEN:
            raise DataError(f"{what} contains a control character ({ord(ch):#04x}); refused")
    return value


class CRLFNormalizer:
    """Turn CRLF, bare LF and bare CR into CRLF, chunk by chunk.

    A CR at the end of a chunk is held back until the next chunk shows whether an LF follows.
    """

    def __init__(self) -> None:
        self._pending_cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            return b"\r\n"
        return b""


class DotStuffer:
    """Encode a message for SMTP DATA: normalise line ends, double leading dots, terminate.

    ``feed`` returns wire bytes for each chunk; ``finish`` returns the rest, a final CRLF if
    the message did not end with one, and the ``.CRLF`` terminator.
    """

    def __init__(self) -> None:
        self._crlf = CRLFNormalizer()
        self._at_line_start = True
        self._empty = True

    def _stuff(self, data: bytes) -> bytes:
        if not data:
            return data
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
        self._at_line_start = data.endswith(b"\r\n")
        # A chunk ending in "\r\n" followed by one starting with "." is handled above;
        # one ending in "\r" cannot happen: the normaliser holds a trailing CR back.
        self._empty = False
        return data

    def feed(self, chunk: bytes) -> bytes:
        return self._stuff(self._crlf.feed(chunk))

    def finish(self) -> bytes:
        out = self._stuff(self._crlf.finish())
        if not self._empty and not self._at_line_start:
            out += b"\r\n"
        return out + b".\r\n"


def dot_stuff(message: bytes) -> bytes:
    """Whole-message form of ``DotStuffer``: the same bytes, in a few passes of C (a
    message of a batch is one chunk, sent this way)."""
    data = normalize_crlf(message)
    if data[:1] == b".":
        data = b"." + data
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def normalize_crlf(data: bytes) -> bytes:
    """Whole-buffer form of ``CRLFNormalizer``: CRLF, bare CR and bare LF all become CRLF."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.replace(b"\n", b"\r\n")
