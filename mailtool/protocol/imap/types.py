"""Typed values the IMAP parser produces and the client returns (all frozen dataclasses).

Strings from the wire are ``bytes`` in the generic value tree (atoms are ``str``, NIL is
``None``, parenthesised lists are ``list``); the typed values below decode them to ``str``
where a person reads them (envelope fields, mailbox names) and keep ``bytes`` where the raw
form matters (message bodies).
"""

from __future__ import annotations

from collections.abc import Iterator

from mailtool.protocol.replies import Reply, decode_server_text
from mailtool.record import field, record

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    import datetime as _dt
    from typing import Any, Literal

    Status = Literal["OK", "NO", "BAD", "BYE", "PREAUTH"]
    #: The generic value tree: atom ``str``, string ``bytes``, ``None`` for NIL, lists,
    #: and a ``StreamedLiteral`` where a body literal went to a sink instead of memory.
    Value = Any


@record(frozen=True, slots=True)
class StreamedLiteral:
    """A body literal that was streamed (to a sink) instead of being kept in memory."""

    size: int
    sink: Any = None


@record(frozen=True, slots=True)
class ResponseCode:
    """A bracketed response code: ``[UIDVALIDITY 3857529045]`` -> name and arguments.

    ``args`` holds the parsed arguments: numbers as ``int`` for the numeric codes
    (UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ), flag lists as tuples, otherwise the words.
    ``text`` is the argument text as sent.
    """

    name: str
    args: tuple[Any, ...] = ()
    text: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.text}".rstrip()


@record(frozen=True, slots=True)
class StatusResponse:
    """``tag OK|NO|BAD [code] text`` or the untagged ``* OK|NO|BAD|BYE|PREAUTH``."""

    tag: str | None
    status: Status
    code: ResponseCode | None
    text: str

    @property
    def ok(self) -> bool:
        return self.status in ("OK", "PREAUTH")

    def reply(self) -> Reply:
        """As the shared ``Reply`` model (for error messages and exit codes)."""
        return Reply(
            status=self.status,
            lines=(self.text,),
            resp_code=str(self.code) if self.code is not None else None,
        )


@record(frozen=True, slots=True)
class Continuation:
    """A continuation request ``+ text``; ``data`` is the raw text (SASL base64 challenges)."""

    text: str
    data: bytes


@record(frozen=True, slots=True)
class UIDSet:
    """A set of UIDs (or sequence numbers) as sorted, merged inclusive ranges.

    ``*`` in a set from the server is not valid in responses and is refused by the parser.
    """

    ranges: tuple[tuple[int, int], ...] = ()

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        return any(lo <= item <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ",".join(f"{lo}" if lo == hi else f"{lo}:{hi}" for lo, hi in self.ranges)

    def last(self, n: int) -> list[int]:
        """The ``n`` highest members, highest first (without expanding the whole set)."""
        out: list[int] = []
        for lo, hi in reversed(self.ranges):
            for value in range(hi, lo - 1, -1):
                if len(out) >= n:
                    return out
                out.append(value)
        return out

    @classmethod
    def of(cls, numbers: Any) -> UIDSet:
        """Build a compact set from any iterable of ints."""
        ranges: list[tuple[int, int]] = []
        for n in sorted(set(numbers)):
            if ranges and ranges[-1][1] + 1 == n:
                ranges[-1] = (ranges[-1][0], n)
            else:
                ranges.append((n, n))
        return cls(tuple(ranges))


@record(frozen=True, slots=True)
class Address:
    """One address of an ENVELOPE (RFC 3501 section 7.4.2); group syntax keeps host None."""

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def email(self) -> str:
        if self.mailbox is None:
            return ""
        return f"{self.mailbox}@{self.host}" if self.host else self.mailbox

    def __str__(self) -> str:
        if self.name:
            return f"{self.name} <{self.email}>"
        return self.email


@record(frozen=True, slots=True)
class Envelope:
    """The ENVELOPE fetch item. Text fields are raw header text (RFC 2047 still encoded)."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: str | None
    message_id: str | None


@record(frozen=True, slots=True)
class BodyStructure:
    """A BODYSTRUCTURE node: a single part, or a multipart with ``parts``.

    ``part_id`` is the IMAP section number of this node ("1", "2.1"; "" for the root of a
    single-part message), filled in by the parser.
    """

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    id: str | None = None
    description: str | None = None
    encoding: str | None = None
    size: int = 0
    lines: int | None = None
    md5: str | None = None
    disposition: str | None = None
    disposition_params: dict[str, str] = field(default_factory=dict)
    language: tuple[str, ...] = ()
    location: str | None = None
    parts: tuple[BodyStructure, ...] = ()
    envelope: Envelope | None = None  # message/rfc822
    body: BodyStructure | None = None  # message/rfc822
    part_id: str = ""

    @property
    def is_multipart(self) -> bool:
        return bool(self.parts) or self.type == "multipart"

    @property
    def mime_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def filename(self) -> str | None:
        return self.disposition_params.get("filename") or self.params.get("name")

    def walk(self) -> Iterator[BodyStructure]:
        """This node and every node below it, depth first."""
        yield self
        for part in self.parts:
            yield from part.walk()


@record(frozen=True, slots=True)
class FetchData:
    """One ``* n FETCH (...)`` response: sequence number and items by upper-case name.

    Body sections are keyed as the server names them (``BODY[]``, ``BODY[HEADER]``,
    ``BODY[1]<0>``); their values are ``bytes``, ``None`` (NIL) or a ``StreamedLiteral``.
    """

    seq: int
    items: dict[str, Any]

    @property
    def uid(self) -> int | None:
        value = self.items.get("UID")
        return value if isinstance(value, int) else None

    @property
    def flags(self) -> tuple[str, ...] | None:
        value = self.items.get("FLAGS")
        return value if isinstance(value, tuple) else None

    @property
    def size(self) -> int | None:
        value = self.items.get("RFC822.SIZE")
        return value if isinstance(value, int) else None

    @property
    def modseq(self) -> int | None:
        value = self.items.get("MODSEQ")
        return value if isinstance(value, int) else None

    @property
    def internaldate(self) -> str | None:
        value = self.items.get("INTERNALDATE")
        return value if isinstance(value, str) else None

    @property
    def internaldate_dt(self) -> _dt.datetime | None:
        return parse_internaldate(self.internaldate) if self.internaldate else None

    @property
    def envelope(self) -> Envelope | None:
        value = self.items.get("ENVELOPE")
        return value if isinstance(value, Envelope) else None

    @property
    def bodystructure(self) -> BodyStructure | None:
        value = self.items.get("BODYSTRUCTURE", self.items.get("BODY"))
        return value if isinstance(value, BodyStructure) else None

    def body(self, section: str = "") -> Any:
        """The value of ``BODY[section]`` (any origin), or None when absent."""
        want = f"BODY[{section.upper()}]"
        for key, value in self.items.items():
            if key == want or (key.startswith(want) and key[len(want) : len(want) + 1] == "<"):
                return value
        return None


@record(frozen=True, slots=True)
class ListEntry:
    """One ``* LIST`` line: attributes (as sent, e.g. ``\\HasNoChildren``), delimiter, name."""

    attributes: tuple[str, ...]
    delimiter: str | None
    raw_name: bytes
    name: str
    extended: tuple[Any, ...] = ()

    def has(self, attribute: str) -> bool:
        return attribute.lower() in (a.lower() for a in self.attributes)

    @property
    def selectable(self) -> bool:
        return not (self.has("\\Noselect") or self.has("\\NonExistent"))

    @property
    def special_use(self) -> str | None:
        """The RFC 6154 role (``\\Sent`` ...) if the server gave one."""
        for attr in self.attributes:
            if attr.lower() in _SPECIAL_USE:
                return _SPECIAL_USE[attr.lower()]
        return None


_SPECIAL_USE = {
    a.lower(): a
    for a in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}


@record(frozen=True, slots=True)
class MailboxStatus:
    """``* STATUS name (MESSAGES n UNSEEN n ...)``; item names upper-case."""

    raw_name: bytes
    name: str
    items: dict[str, int]


@record(frozen=True, slots=True)
class ESearch:
    """``* ESEARCH`` (RFC 4731): ALL as a set, MIN/MAX/COUNT/MODSEQ as numbers."""

    tag: str | None
    uid: bool
    all: UIDSet | None = None
    min: int | None = None
    max: int | None = None
    count: int | None = None
    modseq: int | None = None


@record(frozen=True, slots=True)
class Vanished:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162)."""

    earlier: bool
    uids: UIDSet


@record(frozen=True, slots=True)
class Untagged:
    """Any other untagged response.

    ``kind`` is the upper-case keyword (EXISTS, RECENT, EXPUNGE, FETCH, CAPABILITY, FLAGS,
    LIST, LSUB, STATUS, SEARCH, ESEARCH, ENABLED, NAMESPACE, ID, VANISHED, or what the server
    sent); ``number`` is the leading number for EXISTS/RECENT/EXPUNGE/FETCH; ``value`` the
    typed value: FetchData, ListEntry, MailboxStatus, ESearch, Vanished, a tuple of words
    (CAPABILITY, ENABLED, FLAGS), a tuple of ints (SEARCH; ``modseq`` in ``extra``), a dict
    (ID), or the generic value tree.
    """

    kind: str
    number: int | None = None
    value: Any = None
    extra: Any = None


Response = StatusResponse | Continuation | Untagged


# ``fetch_response`` builds the two records of a FETCH response through their slots: the
# records' ``__init__`` sets each field with ``object.__setattr__`` (they are frozen),
# which is most of the cost of a response when thousands of FETCH lines arrive at once.
_new = object.__new__
_set_seq = vars(FetchData)["seq"].__set__
_set_items = vars(FetchData)["items"].__set__
_set_kind = vars(Untagged)["kind"].__set__
_set_number = vars(Untagged)["number"].__set__
_set_value = vars(Untagged)["value"].__set__
_set_extra = vars(Untagged)["extra"].__set__


def fetch_response(seq: int, items: dict[str, Any]) -> Untagged:
    """``Untagged(kind="FETCH", number=seq, value=FetchData(seq=seq, items=items))``, built
    faster (the parser's FETCH fast paths)."""
    fetch = _new(FetchData)
    _set_seq(fetch, seq)
    _set_items(fetch, items)
    response = _new(Untagged)
    _set_kind(response, "FETCH")
    _set_number(response, seq)
    _set_value(response, fetch)
    _set_extra(response, None)
    return response


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def parse_internaldate(text: str) -> _dt.datetime | None:
    """``"17-Jul-1996 02:44:25 -0700"`` -> aware datetime (None when malformed)."""
    import datetime as _dt  # only here: datetime costs start-up time

    try:
        date_part, time_part, zone = text.strip().split()
        day, mon, year = date_part.split("-")
        hh, mm, ss = (int(x) for x in time_part.split(":"))
        sign = -1 if zone[0] == "-" else 1
        offset = _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
        return _dt.datetime(
            int(year), _MONTHS[mon.lower()], int(day), hh, mm, ss, tzinfo=_dt.timezone(offset)
        )
    except (ValueError, KeyError, IndexError):
        return None


def text_of(value: Any) -> str | None:
    """A string value (bytes) as text for people; NIL -> None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return decode_server_text(value)
    return str(value)
