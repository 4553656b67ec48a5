"""IMAP response parser: one framed response (segments + literals) -> a typed response.

Theory of operation. ``parse_response`` reads the first token: ``+`` is a continuation
request, ``*`` untagged data, anything else a tagged status. Untagged data is dispatched on
its keyword (RFC 9051 section 7): status responses (OK/NO/BAD/BYE/PREAUTH with an optional
``[code]``), ``n EXISTS/RECENT/EXPUNGE``, ``n FETCH (...)``, CAPABILITY, FLAGS, LIST/LSUB,
STATUS, SEARCH (with RFC 7162 MODSEQ), ESEARCH (RFC 4731), ENABLED (RFC 5161), NAMESPACE
(RFC 2342), ID (RFC 2971) and VANISHED (RFC 7162). Unknown keywords are kept as a generic
value tree rather than refused, so a new extension does not break us.

FETCH items are typed: FLAGS, UID, RFC822.SIZE, MODSEQ, INTERNALDATE, ENVELOPE
(``Envelope``), BODYSTRUCTURE/BODY (``BodyStructure``), ``BODY[section]<origin>``,
``BINARY[...]`` and RFC822[.HEADER|.TEXT] (``bytes``, NIL, or the session's
``StreamedLiteral``). Pure: bytes in, values out, only ``IMAPParseError`` on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mailtool.protocol.imap.lexer import MAX_NUMBER, IMAPParseError, Lexer, to_number
from mailtool.protocol.imap.types import (
    Address,
    BodyStructure,
    Continuation,
    Envelope,
    ESearch,
    FetchData,
    ListEntry,
    MailboxStatus,
    Response,
    ResponseCode,
    StatusResponse,
    StreamedLiteral,
    UIDSet,
    Untagged,
    Vanished,
    fetch_response,
    text_of,
)
from mailtool.protocol.imap.utf7 import decode_mailbox
from mailtool.protocol.replies import decode_server_text

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

#: Most ranges we accept in one sequence set from the server (VANISHED, ESEARCH ALL).
MAX_SET_RANGES = 1_000_000

_STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_NUMERIC_CODES = frozenset({"UIDVALIDITY", "UIDNEXT", "UNSEEN", "HIGHESTMODSEQ"})
_LIST_CODES = frozenset({"PERMANENTFLAGS", "BADCHARSET"})
_STRING_ITEMS = ("BODY[", "BINARY[", "RFC822")


def parse_line(line: bytes) -> Response:
    """Parse a response held in one line (no literals); CRLF optional. For tests and tools."""
    return parse_response([line.rstrip(b"\r\n")], [])


def parse_response(segments: list[bytes], literals: list[Any]) -> Response:
    """Parse one framed response.

    Raises:
        IMAPParseError: the response does not follow the grammar.
    """
    if segments[0][:2] == b"* ":
        fast = _fast_fetch(segments, literals)
        if fast is not None:
            return fast
    return parse_full(segments, literals)


def parse_full(segments: list[bytes], literals: list[Any]) -> Response:
    """``parse_response`` without the FETCH fast path (the reference it is tested against)."""
    lx = Lexer(segments, literals)
    first = lx.peek()
    if first == 0x2B:  # "+"
        lx.pos += 1
        lx.skip_sp()
        raw = lx.rest()
        _end(lx)
        return Continuation(text=decode_server_text(raw), data=raw)
    if first == 0x2A:  # "*"
        lx.pos += 1
        lx.expect_sp()
        return _untagged(lx)
    tag = lx.atom()
    if not all(0x21 <= ord(c) <= 0x7E and c not in "+*" for c in tag):
        raise lx.error("malformed tag")
    lx.expect_sp()
    status = lx.atom().upper()
    if status not in ("OK", "NO", "BAD"):
        raise lx.error(f"tagged response with status {status!r}")
    return _status(lx, tag, status)


def _end(lx: Lexer) -> None:
    lx.skip_sp()
    if not lx.at_end():
        raise lx.error("unexpected data at the end of the response")


def _status(lx: Lexer, tag: str | None, status: str) -> StatusResponse:
    code = None
    lx.skip_sp()
    if lx.peek() == 0x5B:  # "["
        code = _resp_code(lx)
        lx.skip_sp()
    text = decode_server_text(lx.rest())
    _end(lx)
    return StatusResponse(tag=tag, status=status, code=code, text=text)  # type: ignore[arg-type]


def _resp_code(lx: Lexer) -> ResponseCode:
    lx.expect(b"[")
    name = lx.atom().upper()
    args: tuple[Any, ...] = ()
    text = ""
    if lx.peek() == 0x20:
        lx.skip_sp()
        start = lx.pos
        if name in _LIST_CODES and lx.peek() == 0x28:
            args = tuple(lx.list())
        elif name == "CAPABILITY":
            words = []
            while lx.peek() not in (0x5D, None):
                words.append(lx.atom().upper())
                lx.skip_sp()
            args = tuple(words)
        else:
            while lx.peek() not in (0x5D, None):
                lx.pos += 1
        text = decode_server_text(lx._cur[start : lx.pos])
        if not args and text:
            words_ = text.split()
            if name in _NUMERIC_CODES:
                args = (to_number(words_[0], f"{name} value"),)
            else:
                args = tuple(words_)
    lx.skip_sp()
    if not lx.accept(b"]"):
        raise lx.error("unterminated response code")
    return ResponseCode(name=name, args=args, text=text)


def _untagged(lx: Lexer) -> Response:
    c = lx.peek()
    if c is not None and 0x30 <= c <= 0x39:
        number = lx.number()
        lx.expect_sp()
        kind = lx.atom().upper()
        if kind == "FETCH":
            lx.expect_sp()
            fetch = _fetch(lx, number)
            _end(lx)
            return Untagged(kind="FETCH", number=number, value=fetch)
        # EXISTS, RECENT, EXPUNGE, and whatever else a server may number.
        rest = lx.rest()
        return Untagged(kind=kind, number=number, value=decode_server_text(rest).strip() or None)
    word = lx.atom().upper()
    if word in _STATUS_WORDS:
        return _status(lx, None, word)
    lx.skip_sp()
    handler = _UNTAGGED.get(word)
    if handler is not None:
        result = handler(lx)
        _end(lx)
        return result
    values = []
    while not lx.at_end():
        values.append(lx.value())
        lx.skip_sp()
    return Untagged(kind=word, value=values)


def _words(lx: Lexer) -> tuple[str, ...]:
    words = []
    while not lx.at_end():
        words.append(lx.atom())
        lx.skip_sp()
    return tuple(words)


def _capability(lx: Lexer) -> Untagged:
    return Untagged(kind="CAPABILITY", value=tuple(w.upper() for w in _words(lx)))


def _enabled(lx: Lexer) -> Untagged:
    return Untagged(kind="ENABLED", value=tuple(w.upper() for w in _words(lx)))


def _flags(lx: Lexer) -> Untagged:
    return Untagged(kind="FLAGS", value=_flag_list(lx))


def _flag_list(lx: Lexer) -> tuple[str, ...]:
    values = lx.list()
    if not all(isinstance(v, str) for v in values):
        raise lx.error("malformed flag list")
    return tuple(values)


def _search(lx: Lexer) -> Untagged:
    numbers = []
    modseq = None
    while not lx.at_end():
        if lx.peek() == 0x28:
            inner = lx.list()
            if len(inner) == 2 and isinstance(inner[0], str) and inner[0].upper() == "MODSEQ":
                modseq = to_number(inner[1], "MODSEQ")
            else:
                raise lx.error("malformed SEARCH result")
        else:
            numbers.append(lx.number())
        lx.skip_sp()
    return Untagged(kind="SEARCH", value=tuple(numbers), extra=modseq)


def parse_set(text: str) -> UIDSet:
    """A sequence set from the server (``1:5,7,9:8``) -> ``UIDSet``.

    Raises:
        IMAPParseError: malformed, ``*``, zero, or more than ``MAX_SET_RANGES`` ranges.
    """
    ranges: list[tuple[int, int]] = []
    parts = text.split(",")
    if len(parts) > MAX_SET_RANGES:
        raise IMAPParseError("sequence set too long")
    for part in parts:
        lo_s, sep, hi_s = part.partition(":")
        lo = to_number(lo_s, "sequence number")
        hi = to_number(hi_s, "sequence number") if sep else lo
        if lo == 0 or hi == 0:
            raise IMAPParseError("zero in a sequence set")
        if lo > hi:
            lo, hi = hi, lo
        ranges.append((lo, hi))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return UIDSet(tuple(merged))


def _esearch(lx: Lexer) -> Untagged:
    tag = None
    uid = False
    fields: dict[str, Any] = {}
    if lx.peek() == 0x28:
        corr = lx.list()
        if len(corr) != 2 or not isinstance(corr[0], str) or corr[0].upper() != "TAG":
            raise lx.error("malformed ESEARCH correlator")
        if not isinstance(corr[1], bytes):
            raise lx.error("malformed ESEARCH tag")
        tag = corr[1].decode("ascii", "replace")
        lx.skip_sp()
    while not lx.at_end():
        name = lx.atom().upper()
        lx.skip_sp()
        if name == "UID":
            uid = True
            continue
        value = lx.value()
        lx.skip_sp()
        if name == "ALL":
            if not isinstance(value, str):
                raise lx.error("malformed ESEARCH ALL")
            fields["all"] = parse_set(value)
        elif name in ("MIN", "MAX", "COUNT", "MODSEQ"):
            fields[name.lower()] = to_number(value, f"ESEARCH {name}")
        # other return data (PARTIAL, RELEVANCY ...) is ignored
    return Untagged(kind="ESEARCH", value=ESearch(tag=tag, uid=uid, **fields))


def _vanished(lx: Lexer) -> Untagged:
    earlier = False
    if lx.peek() == 0x28:
        inner = lx.list()
        if [str(v).upper() for v in inner] != ["EARLIER"]:
            raise lx.error("malformed VANISHED")
        earlier = True
        lx.skip_sp()
    uids = parse_set(lx.atom())
    return Untagged(kind="VANISHED", value=Vanished(earlier=earlier, uids=uids))


def _list(lx: Lexer, kind: str = "LIST") -> Untagged:
    attrs = _flag_list(lx)
    lx.expect_sp()
    delim_value = lx.nstring()
    if isinstance(delim_value, StreamedLiteral):
        raise lx.error("malformed LIST delimiter")
    delimiter = delim_value.decode("utf-8", "replace") if delim_value is not None else None
    lx.expect_sp()
    raw = lx.astring()
    lx.skip_sp()
    extended: tuple[Any, ...] = ()
    if lx.peek() == 0x28:
        extended = tuple(lx.list())
    entry = ListEntry(
        attributes=attrs,
        delimiter=delimiter,
        raw_name=raw,
        name=decode_mailbox(raw),
        extended=extended,
    )
    return Untagged(kind=kind, value=entry)


def _lsub(lx: Lexer) -> Untagged:
    return _list(lx, "LSUB")


def _status_data(lx: Lexer) -> Untagged:
    raw = lx.astring()
    lx.skip_sp()
    values = lx.list()
    if len(values) % 2:
        raise lx.error("malformed STATUS data")
    items: dict[str, int] = {}
    for key, value in zip(values[::2], values[1::2]):
        if not isinstance(key, str):
            raise lx.error("malformed STATUS item")
        items[key.upper()] = to_number(value, f"STATUS {key}")
    return Untagged(
        kind="STATUS", value=MailboxStatus(raw_name=raw, name=decode_mailbox(raw), items=items)
    )


def _id(lx: Lexer) -> Untagged:
    value = lx.value()
    result: dict[str, str | None] = {}
    if isinstance(value, list):
        for key, val in zip(value[::2], value[1::2]):
            result[text_of(key) or ""] = text_of(val)
    elif value is not None:
        raise lx.error("malformed ID response")
    return Untagged(kind="ID", value=result)


def _namespace(lx: Lexer) -> Untagged:
    groups = []
    for index in range(3):
        if index:
            lx.expect_sp()
        value = lx.value()
        entries: list[tuple[str, str | None]] = []
        if isinstance(value, list):
            for desc in value:
                if not isinstance(desc, list) or len(desc) < 2:
                    raise lx.error("malformed NAMESPACE entry")
                prefix = desc[0] if isinstance(desc[0], bytes) else b""
                entries.append((decode_mailbox(prefix), text_of(desc[1])))
        elif value is not None:
            raise lx.error("malformed NAMESPACE response")
        groups.append(tuple(entries))
    return Untagged(kind="NAMESPACE", value=tuple(groups))


_UNTAGGED = {
    "CAPABILITY": _capability,
    "ENABLED": _enabled,
    "FLAGS": _flags,
    "SEARCH": _search,
    "ESEARCH": _esearch,
    "VANISHED": _vanished,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status_data,
    "ID": _id,
    "NAMESPACE": _namespace,
}


# --- FETCH ------------------------------------------------------------------------------

# The FETCH responses a sync receives by the thousand hold only UID, RFC822.SIZE, MODSEQ
# and FLAGS (plain atoms), sometimes ending in one streamed ``BODY[]`` literal, and a
# server sends them in one item order, line after line. The first such line of an order
# goes through an item loop (one small regex per item); it teaches the parser a *shape*:
# one regex for the whole line in that order. The lines after it take one match each,
# straight from the session's input buffer (``fetch_lines``) or from a framed response
# (``_fast_fetch``). Anything else, or anything unusual about them (NIL or odd flags,
# numbers above MAX_NUMBER, lower-case names, other spacing), goes through the general
# parser, which is the reference the fast paths are tested against.
_FAST_BODY = b" BODY[] {"
_fast_patterns: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None

#: A flag in the fast paths: a system flag, ``\*`` or a plain keyword (no other atom
#: characters, so decoding is plain ASCII and the general parser reads the same words).
_FAST_FLAG = rb"(?:\\\*|\\?[A-Za-z0-9$_.-]+)"
_FAST_FLAGS = rb"((?:" + _FAST_FLAG + rb"(?: " + _FAST_FLAG + rb")*)?)"
#: In a shape, numbers have at most 18 digits, so none exceeds MAX_NUMBER (a longer one
#: takes the item loop, which checks).
_SHAPE_ITEMS = {
    "UID": rb"UID ([0-9]{1,18})",
    "RFC822.SIZE": rb"RFC822\.SIZE ([0-9]{1,18})",
    "MODSEQ": rb"MODSEQ \(([0-9]{1,18})\)",
    # any text without parentheses here (a quick scan); ``_flag_words`` checks it
    "FLAGS": rb"FLAGS \(([^()\r\n]*)\)",
}
_FAST_HEAD = rb"\* ([1-9][0-9]{0,9}) FETCH \("

#: Most item orders remembered (servers use one or two; a hostile one gets no more).
MAX_SHAPES = 32
#: Most distinct flag lists whose decoded form is remembered (then the memo starts over),
#: and the longest one remembered (a folder has a handful of short ones).
MAX_FLAG_MEMO = 1024
MAX_MEMO_FLAGS = 512
_FLAG_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$_.-"


def _fast() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """The item loop's patterns, compiled on first use (not every run sees a FETCH)."""
    global _fast_patterns
    if _fast_patterns is None:
        _fast_patterns = (
            re.compile(_FAST_HEAD),
            re.compile(rb"(UID|RFC822\.SIZE) ([0-9]{1,19})|MODSEQ \(([0-9]{1,19})\)"
                       rb"|FLAGS \(" + _FAST_FLAGS + rb"\)"),
        )
    return _fast_patterns


class _NotSimple(Exception):
    """A line a shape matched holds something only the general parser may judge (NIL,
    flags with other characters)."""


class _FlagMemo(dict[bytes, tuple[str, ...]]):
    """Fast-path flag lists as the general parser reads them, each decoded once (a folder
    has a handful): ``memo[raw]`` is a plain dict lookup after the first time."""

    def __missing__(self, raw: bytes) -> tuple[str, ...]:
        """Check and decode a new list.

        Raises:
            _NotSimple: not a plain list of flags, or one holding NIL (the general parser
                refuses it).
        """
        for word in raw.split(b" ") if raw else ():  # as _FAST_FLAGS (without a compile)
            plain = word[1:] if word[:1] == b"\\" else word
            if (not plain or plain.translate(None, _FLAG_CHARS)) and word != b"\\*":
                raise _NotSimple  # other atom characters, quotes, odd spacing...
        words = tuple(raw.decode("ascii").split(" ")) if raw else ()
        if "NIL" in (w.upper() for w in words):
            raise _NotSimple
        if len(raw) <= MAX_MEMO_FLAGS:
            if len(self) >= MAX_FLAG_MEMO:
                self.clear()
            self[raw] = words
        return words


_flag_words = _FlagMemo().__getitem__


def _builder(names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """Items from the groups of a shape's match (sequence number first), one dict display
    per item count rather than a loop (this runs once per FETCH line)."""
    convert: list[Callable[[bytes], Any]] = [
        _flag_words if name == "FLAGS" else int for name in names]
    n0, c0 = names[0], convert[0]
    if len(names) == 1:
        return lambda g: {n0: c0(g[1])}
    n1, c1 = names[1], convert[1]
    if len(names) == 2:
        return lambda g: {n0: c0(g[1]), n1: c1(g[2])}
    n2, c2 = names[2], convert[2]
    if len(names) == 3:
        return lambda g: {n0: c0(g[1]), n1: c1(g[2]), n2: c2(g[3])}
    n3, c3 = names[3], convert[3]
    return lambda g: {n0: c0(g[1]), n1: c1(g[2]), n2: c2(g[3]), n3: c3(g[4])}


class _Shape:
    """One item order: whole-line patterns and how to turn their groups into items."""

    __slots__ = ("_body", "items", "line", "names", "source")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.source = _FAST_HEAD + rb" ".join(_SHAPE_ITEMS[name] for name in names)
        self.items = _builder(names)
        self.line = re.compile(self.source + rb"\)\r?\n")  # one line, LF (CRLF) included
        self._body: re.Pattern[bytes] | None = None  # compiled when asked (~0.4 ms)

    def parse(self, line: bytes, body: StreamedLiteral | None) -> Untagged | bool | None:
        """A framed line (no CRLF) in this order: the response; False when the line is
        not in this order; None when it is but only the general parser may judge it."""
        if body is None:
            if line[-1:] != b")":  # (the pattern would take a last CR as the CRLF's)
                return False
            m = self.line.fullmatch(line + b"\n")
        else:
            if self._body is None:
                self._body = re.compile(self.source + rb" BODY\[\] \{[0-9]+\}")
            m = self._body.fullmatch(line)
        if m is None:
            return False
        groups = m.groups()
        try:
            items = self.items(groups)
        except _NotSimple:
            return None
        if body is not None:
            items["BODY[]"] = body
        return fetch_response(int(groups[0]), items)


_shapes: dict[tuple[str, ...], _Shape] = {}
_last_shape: _Shape | None = None

#: What starts each simple item, for ``_guess``.
_OPENERS = ((b"UID ", "UID"), (b"FLAGS (", "FLAGS"), (b"MODSEQ (", "MODSEQ"),
            (b"RFC822.SIZE ", "RFC822.SIZE"))


def _shape_for(names: tuple[str, ...]) -> _Shape | None:
    """The shape of an item order (each item once), compiled once; None past MAX_SHAPES."""
    shape = _shapes.get(names)
    if shape is None:
        if len(_shapes) >= MAX_SHAPES or len(set(names)) != len(names):
            return None
        shape = _shapes[names] = _Shape(names)
    return shape


def _learn(names: tuple[str, ...]) -> None:
    """Remember the item order of a simple FETCH line (each item once)."""
    global _last_shape
    shape = _shape_for(names)
    if shape is not None:
        _last_shape = shape


def _guess(line: bytes) -> tuple[str, ...] | None:
    """The item order of a line that may be a simple FETCH, by where the item names first
    appear: only a guess (the shape's pattern decides), but it spares a process the item
    loop's patterns when the server's first line is plain."""
    found = sorted((at, name) for opener, name in _OPENERS
                   if (at := line.find(opener, 10)) >= 0)
    return tuple(name for _, name in found) or None


def fetch_lines(buf: bytes | bytearray, max_line: int) -> tuple[list[Untagged], int]:
    """The simple FETCH response lines at the start of ``buf`` (CRLF included) in the
    order the server has been using, each parsed in one match: the responses, and where
    the last of them ends.

    Stops at the first line that is not one, or is longer than ``max_line`` (the caller
    frames and parses it the general way, which also teaches this function a new order).
    """
    responses: list[Untagged] = []
    shape = _last_shape
    if shape is None:
        return responses, 0
    match, items_of, append = shape.line.match, shape.items, responses.append
    pos = 0
    while True:
        m = match(buf, pos)
        if m is None or m.end() - pos > max_line:
            break
        groups = m.groups()
        try:
            items = items_of(groups)
        except _NotSimple:
            break
        append(fetch_response(int(groups[0]), items))
        pos = m.end()
    return responses, pos


def _fast_fetch(segments: list[bytes], literals: list[Any]) -> Untagged | None:
    """A simple FETCH response parsed by regex, or None to use the general parser."""
    line = segments[0]
    if b" FETCH (" not in line[:24]:
        return None
    body = None
    if len(segments) == 1:
        if literals or line[-1:] != b")":
            return None
    elif (len(segments) == 2 and segments[1] == b")" and len(literals) == 1
          and isinstance(literals[0], StreamedLiteral) and line[-1:] == b"}"):
        body = literals[0]
    else:
        return None
    global _last_shape
    shape = _last_shape
    if shape is not None:
        parsed = shape.parse(line, body)
        if parsed is not False:
            return parsed  # type: ignore[return-value]
    names = _guess(line)
    if names is not None and (shape is None or names != shape.names):
        guessed = _shape_for(names)
        if guessed is not None:
            parsed = guessed.parse(line, body)
            if parsed is not False:
                _last_shape = guessed
                return parsed  # type: ignore[return-value]
    return _fetch_items(line, body)


def _fetch_items(line: bytes, body: StreamedLiteral | None) -> Untagged | None:
    """``_fast_fetch`` item by item (a line in an order not seen before)."""
    head_re, item_re = _fast()
    head = head_re.match(line)
    if head is None:
        return None
    if body is None:
        end = len(line) - 1
    else:
        end = line.rfind(_FAST_BODY)
        if end < head.end() - 1 or not line[end + len(_FAST_BODY):-1].isdigit():
            return None
        if end == head.end() - 1:  # "(BODY[] {n}": no simple item before the body
            return None
    items: dict[str, Any] = {}
    names: list[str] = []
    pos = head.end()
    match = item_re.match
    while pos < end:
        m = match(line, pos, end)
        if m is None:
            return None
        name, number, modseq, flags = m.groups()
        if name is not None:
            value = int(number)
            if value > MAX_NUMBER:
                return None
            key = name.decode("ascii")
            items[key] = value
        elif modseq is not None:
            value = int(modseq)
            if value > MAX_NUMBER:
                return None
            key = "MODSEQ"
            items[key] = value
        else:
            try:
                items["FLAGS"] = _flag_words(flags)
            except _NotSimple:
                return None
            key = "FLAGS"
        names.append(key)
        pos = m.end()
        if pos < end:
            if line[pos] != 0x20 or pos + 1 == end:
                return None
            pos += 1
    if not names:
        return None
    _learn(tuple(names))
    if body is not None:
        items["BODY[]"] = body
    seq = int(head.group(1))
    return fetch_response(seq, items)


def _fetch(lx: Lexer, seq: int) -> FetchData:
    lx.expect(b"(")
    items: dict[str, Any] = {}
    while True:
        lx.skip_sp()
        if lx.accept(b")"):
            break
        if lx.at_end():
            raise lx.error("unterminated FETCH response")
        name = lx.fetch_att_name()
        lx.expect_sp()
        items[name] = _fetch_value(lx, name)
    return FetchData(seq=seq, items=items)


def _fetch_value(lx: Lexer, name: str) -> Any:
    if name == "FLAGS":
        return _flag_list(lx)
    if name in ("UID", "RFC822.SIZE"):
        return lx.number()
    if name == "MODSEQ":
        inner = lx.list()
        if len(inner) != 1:
            raise lx.error("malformed MODSEQ")
        return to_number(inner[0], "MODSEQ")
    if name == "INTERNALDATE":
        value = lx.nstring()
        if not isinstance(value, bytes):
            raise lx.error("malformed INTERNALDATE")
        return value.decode("ascii", "replace")
    if name == "ENVELOPE":
        return envelope_from(lx.list())
    if name in ("BODYSTRUCTURE", "BODY"):
        return bodystructure_from(lx.list())
    if name.startswith(_STRING_ITEMS):
        return lx.nstring()
    return lx.value()


def _text(value: Any) -> str | None:
    # Decoded but not escaped: callers that print server text escape it (render layer).
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise IMAPParseError(f"expected a string, got {type(value).__name__}")


def _addresses(value: Any) -> tuple[Address, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise IMAPParseError("malformed address list in ENVELOPE")
    result = []
    for item in value:
        if not isinstance(item, list) or len(item) != 4:
            raise IMAPParseError("malformed address in ENVELOPE")
        name, adl, mailbox, host = (_text(v) for v in item)
        result.append(Address(name=name, adl=adl, mailbox=mailbox, host=host))
    return tuple(result)


def envelope_from(value: Any) -> Envelope:
    """An ENVELOPE list (generic values) -> ``Envelope``.

    Raises:
        IMAPParseError: not ten fields of the right kinds.
    """
    if not isinstance(value, list) or len(value) != 10:
        raise IMAPParseError("malformed ENVELOPE: expected 10 fields")
    return Envelope(
        date=_text(value[0]),
        subject=_text(value[1]),
        from_=_addresses(value[2]),
        sender=_addresses(value[3]),
        reply_to=_addresses(value[4]),
        to=_addresses(value[5]),
        cc=_addresses(value[6]),
        bcc=_addresses(value[7]),
        in_reply_to=_text(value[8]),
        message_id=_text(value[9]),
    )


def _params(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) % 2:
        raise IMAPParseError("malformed body parameter list")
    result = {}
    for key, val in zip(value[::2], value[1::2]):
        k = _text(key)
        if k is None:
            raise IMAPParseError("NIL body parameter name")
        result[k.lower()] = _text(val) or ""
    return result


def _disposition(value: Any) -> tuple[str | None, dict[str, str]]:
    if value is None:
        return None, {}
    if not isinstance(value, list) or len(value) != 2:
        raise IMAPParseError("malformed body disposition")
    kind = _text(value[0])
    return (kind.lower() if kind else None), _params(value[1])


def _language(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, bytes):
        return (decode_server_text(value),)
    if isinstance(value, list):
        return tuple(_text(v) or "" for v in value)
    raise IMAPParseError("malformed body language")


def _number_field(value: Any, what: str) -> int:
    if isinstance(value, str):
        return to_number(value, what)
    raise IMAPParseError(f"malformed {what}")


def bodystructure_from(value: Any, part_id: str = "") -> BodyStructure:
    """A BODYSTRUCTURE list (generic values) -> ``BodyStructure`` with section numbers.

    Raises:
        IMAPParseError: the structure does not follow RFC 9051 ``body``.
    """
    if not isinstance(value, list) or not value:
        raise IMAPParseError("malformed BODYSTRUCTURE")
    if isinstance(value[0], list):
        parts = []
        index = 0
        while index < len(value) and isinstance(value[index], list):
            child_id = f"{part_id}.{index + 1}" if part_id else str(index + 1)
            parts.append(bodystructure_from(value[index], child_id))
            index += 1
        if index >= len(value):
            raise IMAPParseError("multipart BODYSTRUCTURE without a subtype")
        subtype = _text(value[index]) or ""
        ext = value[index + 1 :]
        params = _params(ext[0]) if len(ext) > 0 else {}
        disp, disp_params = _disposition(ext[1]) if len(ext) > 1 else (None, {})
        return BodyStructure(
            type="multipart",
            subtype=subtype.lower(),
            params=params,
            disposition=disp,
            disposition_params=disp_params,
            language=_language(ext[2]) if len(ext) > 2 else (),
            location=_text(ext[3]) if len(ext) > 3 and not isinstance(ext[3], list) else None,
            parts=tuple(parts),
            part_id=part_id,
        )
    if len(value) < 7:
        raise IMAPParseError("single-part BODYSTRUCTURE with fewer than 7 fields")
    mtype = (_text(value[0]) or "").lower()
    subtype = (_text(value[1]) or "").lower()
    fields: dict[str, Any] = {
        "params": _params(value[2]),
        "id": _text(value[3]),
        "description": _text(value[4]),
        "encoding": (_text(value[5]) or "").upper() or None,
        "size": _number_field(value[6], "body size"),
    }
    rest = value[7:]
    if mtype == "message" and subtype in ("rfc822", "global") and len(rest) >= 3:
        fields["envelope"] = envelope_from(rest[0])
        own = part_id or "1"
        inner_multi = isinstance(rest[1], list) and bool(rest[1]) and isinstance(rest[1][0], list)
        inner = bodystructure_from(rest[1], own if inner_multi else f"{own}.1")
        fields["body"] = inner
        fields["lines"] = _number_field(rest[2], "body lines")
        rest = rest[3:]
    elif mtype == "text":
        if not rest:
            raise IMAPParseError("text BODYSTRUCTURE without a line count")
        fields["lines"] = _number_field(rest[0], "body lines")
        rest = rest[1:]
    if rest:
        fields["md5"] = _text(rest[0]) if not isinstance(rest[0], list) else None
    if len(rest) > 1:
        fields["disposition"], fields["disposition_params"] = _disposition(rest[1])
    if len(rest) > 2:
        fields["language"] = _language(rest[2])
    if len(rest) > 3 and not isinstance(rest[3], list):
        fields["location"] = _text(rest[3])
    return BodyStructure(type=mtype, subtype=subtype, part_id=part_id or "1", **fields)


_prefix_patterns: tuple[re.Pattern[bytes], ...] | None = None
_PREFIX_BODY = StreamedLiteral(0)  # stands for the body literal the prefix announces


def _prefix() -> tuple[re.Pattern[bytes], ...]:
    """``fetch_prefix_items``'s patterns, compiled on first use (body fetches only)."""
    global _prefix_patterns
    if _prefix_patterns is None:
        _prefix_patterns = (
            re.compile(rb"[ (](UID|RFC822\.SIZE) (\d{1,19})(?=[ )])", re.IGNORECASE),
            re.compile(rb"[ (]FLAGS \(([^()\"{]*)\)", re.IGNORECASE),
            re.compile(rb'[ (]INTERNALDATE "([^"]{1,64})"', re.IGNORECASE),
            re.compile(rb"[ (]MODSEQ \((\d{1,19})\)", re.IGNORECASE),
        )
    return _prefix_patterns


def fetch_prefix_items(prefix: bytes) -> dict[str, Any]:
    """The simple items (UID, RFC822.SIZE, FLAGS, INTERNALDATE, MODSEQ) in the text of a
    FETCH response *before* its body literal, so a body sink can be chosen by UID.

    Best effort: an item the server sends after the body is simply absent; the complete
    ``FetchData`` that follows the body is authoritative.
    """
    if b"\n" in prefix:  # a literal came first (e.g. an ENVELOPE field): too ambiguous
        return {}
    fast = _fast_fetch([prefix, b")"], [_PREFIX_BODY])  # the usual shape, one regex pass
    if fast is not None:
        found = dict(fast.value.items)
        del found["BODY[]"]
        return found
    items: dict[str, Any] = {}
    num_re, flags_re, date_re, modseq_re = _prefix()
    for m in num_re.finditer(prefix):
        items.setdefault(m.group(1).decode().upper(), int(m.group(2)))
    flags = flags_re.search(prefix)
    if flags:
        items["FLAGS"] = tuple(flags.group(1).decode("utf-8", "replace").split())
    date = date_re.search(prefix)
    if date:
        items["INTERNALDATE"] = date.group(1).decode("ascii", "replace")
    modseq = modseq_re.search(prefix)
    if modseq:
        items["MODSEQ"] = int(modseq.group(1))
    return items
