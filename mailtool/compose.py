"""Messages to send: built from command-line words, or read as given; and their envelope.

Two ways in:

* ``build_message`` makes an RFC 5322 message with the stdlib ``email`` package
  (``policy.SMTP``, or ``policy.SMTPUTF8`` when an address is not ASCII): From/To/Cc,
  Subject, Date, Message-ID, a text body, an HTML alternative, attachments, extra headers.
  Every value from the command line is checked for CR, LF and other control characters
  first (header injection): refused with exit 65. Bcc never becomes a header.
* ``MessageSource.read`` takes a message from a byte stream and keeps it as given, only line
  ends made CRLF; it is spooled (memory, then a temporary file past ``SPOOL_MEMORY``) so it can
  be sent several times (one copy per MX route) without being held whole in memory.
  ``strip_bcc`` removes Bcc/Resent-Bcc fields from the raw header block without
  re-serialising anything else; ``header_recipients`` gives To/Cc/Bcc for sendmail's ``-t``.

The ``email`` package is imported inside the functions that need it: the sendmail entry
point reads raw messages and must start fast.
"""

from __future__ import annotations

import os

from mailtool.errors import DataError, NoInputError
from mailtool.protocol.wire import CHUNK, CRLFNormalizer, guard_argument
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from email.message import EmailMessage
    from typing import IO

#: Messages up to this size stay in memory; bigger ones spill into a temporary file.
SPOOL_MEMORY = 8 * 1024 * 1024

#: Longest header block we parse for ``-t`` and Bcc removal; headers beyond are not
#: looked at (a header block this long is hostile or broken).
MAX_HEADER_BLOCK = 1024 * 1024


@record
class Envelope:
    """SMTP envelope: reverse-path and forward-paths, plus what the content needs."""

    sender: str
    recipients: list[str] = field(default_factory=list)

    def needs_smtputf8(self) -> bool:
        return not (self.sender.isascii() and "".join(self.recipients).isascii())


class MessageSource:
    """A message as CRLF bytes, restartable: ``chunks()`` may be called once per route."""

    def __init__(self, head: bytes, spool: IO[bytes] | None, body_offset: int, size: int,
                 eight_bit: bool, utf8_headers: bool = False) -> None:
        self._head = head  # header block as it goes out (Bcc removed), with the blank line
        self._head_end = -1 if spool is None else len(head)  # -1: not looked for yet
        self._fields: dict[str, list[tuple[str, str]]] | None = None  # parsed once, on use
        self._spool = spool  # the whole original message (CRLF), when not in memory
        self._body_offset = body_offset  # where the body starts in the original
        self.size = size  # octets as sent (CRLF, before dot-stuffing)
        self.eight_bit = eight_bit
        self.utf8_headers = utf8_headers

    @classmethod
    def from_bytes(cls, data: bytes) -> MessageSource:
        """A message held in memory (composed ones); line ends are made CRLF."""
        norm = CRLFNormalizer()
        data = norm.feed(data) + norm.finish()
        head = data[: _header_end(data)]
        return cls(data, None, len(data), len(data), not data.isascii(), not head.isascii())

    @classmethod
    def read(cls, stream: IO[bytes], *, limit: int | None = None) -> MessageSource:
        """Read a message from ``stream`` (stdin) into a spool; line ends made CRLF.

        Raises:
            DataError: the message is empty, or bigger than ``limit``.
        """
        import io

        norm = CRLFNormalizer()
        spool: IO[bytes] = io.BytesIO()
        in_memory = True
        size = 0
        eight_bit = False
        head_buf = bytearray()
        head_end = -1
        while True:
            raw = stream.read(CHUNK)
            piece = norm.feed(raw) if raw else norm.finish()
            if piece:
                if not eight_bit and not piece.isascii():
                    eight_bit = True
                if head_end < 0 and len(head_buf) < MAX_HEADER_BLOCK:
                    head_buf += piece
                    found = _header_end(bytes(head_buf), complete=False)
                    if found >= 0:
                        head_end = found
                if in_memory and size + len(piece) > SPOOL_MEMORY:
                    import tempfile  # only big messages pay for it

                    disk = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
                    disk.write(spool.getvalue())  # type: ignore[attr-defined]
                    spool, in_memory = disk, False
                spool.write(piece)
                size += len(piece)
                if limit is not None and size > limit:
                    raise DataError(f"message larger than {limit} octets")
            if not raw:
                break
        if size == 0:
            raise DataError("empty message on standard input", step="reading message")
        if head_end < 0:
            head_end = min(len(head_buf), size)
        spool.seek(0)
        head = bytes(head_buf[:head_end])
        return cls(head, spool, head_end, size, eight_bit, not head.isascii())

    @property
    def header_block(self) -> bytes:
        """The header fields as they will go out (ending with the empty line, if any)."""
        if self._head_end < 0:
            self._head_end = _header_end(self._head)
        if self._spool is None:
            return self._head[: self._head_end]
        return self._head

    def _set_head(self, head: bytes) -> None:
        self._head = head
        self._head_end = -1 if self._spool is None else len(head)
        self._fields = None

    def fields(self) -> dict[str, list[tuple[str, str]]]:
        """Every header field, by lower-case name: [(name as written, unfolded value)] in
        order. Parsed once (the header block is read for -t, Bcc and Message-ID)."""
        if self._fields is None:
            self._fields = parse_fields(self.header_block)
        return self._fields

    def chunks(self) -> Iterator[bytes]:
        """The message as it goes out, in chunks of at most ``CHUNK``."""
        if self._spool is None:
            data = self._head
            for start in range(0, len(data), CHUNK):
                yield data[start : start + CHUNK]
            return
        yield self._head
        self._spool.seek(self._body_offset)
        while True:
            piece = self._spool.read(CHUNK)
            if not piece:
                return
            yield piece

    def strip_bcc(self) -> list[str]:
        """Remove Bcc and Resent-Bcc fields from the header block; return their values."""
        fields = self.fields()
        if "bcc" not in fields and "resent-bcc" not in fields:
            return []
        head = self.header_block
        kept, removed = split_fields(head, drop=("bcc", "resent-bcc"))
        if self._spool is None:
            self._set_head(kept + self._head[len(head) :])
        else:
            self._set_head(kept)
        self.size -= len(head) - len(kept)
        return [value for _name, value in removed]

    @classmethod
    def from_file(cls, handle: IO[bytes], start: int = 0) -> MessageSource:
        """A message already stored with CRLF line ends (the outbox spool), read in place
        from offset ``start`` to the end: only the header block is held in memory;
        ``handle`` is closed by ``close()``."""
        handle.seek(0, os.SEEK_END)
        size = handle.tell() - start
        handle.seek(start)
        head_buf = bytearray()
        head_end = -1
        eight_bit = False
        while True:
            piece = handle.read(CHUNK)
            if not piece:
                break
            if not eight_bit and not piece.isascii():
                eight_bit = True
            if head_end < 0 and len(head_buf) < MAX_HEADER_BLOCK:
                head_buf += piece
                head_end = _header_end(bytes(head_buf), complete=False)
            if head_end >= 0 and eight_bit:
                break
        if head_end < 0:
            head_end = min(len(head_buf), size)
        handle.seek(start)
        head = bytes(head_buf[:head_end])
        return cls(head, handle, start + head_end, size, eight_bit, not head.isascii())

    def set_header(self, name: str, value: str) -> None:
        """Replace every ``name`` field with one ``name: value`` (added at the end of the
        header block when missing); the other fields are not touched.

        Raises:
            DataError: ``value`` holds a control character (header injection).
        """
        guard_argument(value, f"{name} header")
        head = self.header_block
        line = f"{name}: {value}\r\n".encode()
        out = bytearray()
        placed = skipping = False
        for raw in head.splitlines(keepends=True):
            if raw[:1] in (b" ", b"\t") and raw.strip():
                if not skipping:
                    out += raw
                continue
            field_name, sep, _rest = raw.partition(b":")
            skipping = bool(sep) and field_name.strip().decode("latin-1").lower() == name.lower()
            if skipping:
                if not placed:  # the first one is replaced where it stands
                    out += line
                    placed = True
                continue
            if not placed and raw.strip() == b"":  # the blank line: add before it
                out += line
                placed = True
            out += raw
        if not placed:
            if out and not out.endswith(b"\n"):
                out += b"\r\n"
            out += line
        new_head = bytes(out)
        if self._spool is None:
            self._set_head(new_head + self._head[len(head) :])
        else:
            self._set_head(new_head)
        self.size += len(new_head) - len(head)
        if not new_head.isascii():
            self.utf8_headers = True
            self.eight_bit = True

    def header_values(self, name: str) -> list[str]:
        """Unfolded values of every field called ``name`` (case-insensitive)."""
        return [value for _name, value in self.fields().get(name.lower(), ())]

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _header_end(data: bytes, *, complete: bool = True) -> int:
    """Offset just past the empty line ending the header block.

    With ``complete`` (the whole message is in ``data``) a message without an empty line is
    all header; otherwise -1 means "not seen yet".
    """
    if data.startswith(b"\r\n"):
        return 2
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return idx + 4
    return len(data) if complete else -1


def split_fields(head: bytes, *, drop: Sequence[str]) -> tuple[bytes, list[tuple[str, str]]]:
    """Split a raw header block: (block without the ``drop`` fields, the dropped (name, value))

    Works on raw bytes: kept fields, folding and order are not touched.
    """
    lower = head.lower()
    if not any(name.encode("latin-1") in lower for name in drop):
        return head, []  # none of those names anywhere: nothing to split (the usual case)
    kept = bytearray()
    removed: list[tuple[str, str]] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and line.strip():
            if dropping:
                name, value = removed[-1]
                removed[-1] = (name, value + " " + _text(line).strip())
                continue
            kept += line
            continue
        raw_name, sep, raw_value = line.partition(b":")
        field_name = raw_name.strip().decode("latin-1")
        dropping = bool(sep) and field_name.lower() in drop
        if dropping:
            removed.append((field_name, _text(raw_value).strip()))
        else:
            kept += line
    return bytes(kept), removed


def parse_fields(head: bytes) -> dict[str, list[tuple[str, str]]]:
    """Every field of a raw header block by lower-case name, as ``split_fields`` reads
    them: [(name as written, unfolded value)], in order."""
    fields: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None  # the list holding the field being read
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and line.strip():
            if current is not None:
                name, value = current[-1]
                current[-1] = (name, value + " " + _text(line).strip())
            continue
        raw_name, sep, raw_value = line.partition(b":")
        if not sep:
            current = None
            continue
        field_name = raw_name.strip().decode("latin-1")
        current = fields.setdefault(field_name.lower(), [])
        current.append((field_name, _text(raw_value).strip()))
    return fields


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def parse_addresses(values: Iterable[str]) -> list[tuple[str, str]]:
    """``"Ann <a@x>, b@y"`` (many values, comma lists) -> [(display name, addr-spec)]."""
    values = list(values)
    simple = [_simple_address(v) for v in values]
    if all(simple):
        return [p for p in simple if p]  # the common forms, without the email package
    from email.utils import getaddresses

    pairs = []
    for name, addr in getaddresses(values):
        if addr:
            pairs.append((name, addr))
    return pairs


_SIMPLE_ADDRESS = None


def _simple_address(value: str) -> tuple[str, str] | None:
    """``a@b.example`` or ``Ann Example <a@b.example>`` (plain words, dot-atom address):
    what ``email.utils.getaddresses`` gives for them; None for anything else (which goes
    to the email package)."""
    global _SIMPLE_ADDRESS
    if _SIMPLE_ADDRESS is None:
        import re

        atom = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
        addr = rf"{atom}(?:\.{atom})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
        _SIMPLE_ADDRESS = re.compile(
            rf"[ \t]*(?:({addr})|((?:[A-Za-z0-9_-]+(?: [A-Za-z0-9_-]+)*)?) ?<({addr})>)[ \t]*")
    match = _SIMPLE_ADDRESS.fullmatch(value)
    if match is None:
        return None
    if match.group(1):
        return "", match.group(1)
    return match.group(2) or "", match.group(3)


def header_recipients(source: MessageSource) -> list[str]:
    """Addresses of To, Cc and Bcc (sendmail ``-t``), in order, without duplicates."""
    fields = source.fields()
    values = [value for want in ("to", "cc", "bcc") for _name, value in fields.get(want, ())]
    return unique([addr for _n, addr in parse_addresses(values)])


def unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


# --- composing ------------------------------------------------------------------------


@record
class Attachment:
    filename: str
    data: bytes
    content_type: str | None = None


@record
class ComposeSpec:
    """What the command line says about a message to build."""

    sender: str
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str | None = None
    body: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)


def split_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> (name, value), both checked.

    Raises:
        DataError: no colon, a bad field name, or a control character anywhere.
    """
    guard_argument(text, "--header")
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
        raise DataError(f"bad header {text!r}: expected 'Name: value'")
    return name, value.strip()


def build_message(spec: ComposeSpec) -> tuple[MessageSource, Envelope, str]:
    """Build the message; return (source, envelope, Message-ID).

    Raises:
        DataError: header injection, bad address, unreadable body text.
    """
    from email import policy
    from email.message import EmailMessage
    from email.utils import formataddr, formatdate, make_msgid

    for value in [spec.sender, *spec.to, *spec.cc, *spec.bcc, spec.subject or ""]:
        guard_argument(value, "header value")
    sender_pairs = parse_addresses([spec.sender])
    if len(sender_pairs) != 1:
        raise DataError(f"bad --from address {spec.sender!r}")
    to = parse_addresses(spec.to)
    cc = parse_addresses(spec.cc)
    bcc = parse_addresses(spec.bcc)
    every = [sender_pairs[0], *to, *cc, *bcc]
    for _name, addr in every:
        if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
            raise DataError(f"bad address {addr!r}: expected local@domain")
    utf8 = not all(addr.isascii() for _n, addr in every)
    pol = policy.SMTPUTF8 if utf8 else policy.SMTP
    msg = EmailMessage(policy=pol)
    sender_addr = sender_pairs[0][1]
    try:
        msg["From"] = formataddr(sender_pairs[0]) if sender_pairs[0][0] else sender_addr
        if to:
            msg["To"] = ", ".join(_fmt(p) for p in to)
        if cc:
            msg["Cc"] = ", ".join(_fmt(p) for p in cc)
        if not to and not cc:
            msg["To"] = "undisclosed-recipients:;"
        if spec.subject is not None:
            msg["Subject"] = spec.subject
        msg["Date"] = formatdate(localtime=True)
        domain = sender_addr.rsplit("@", 1)[1]
        message_id = make_msgid(domain=domain.encode("idna").decode() if not domain.isascii()
                                else domain)
        msg["Message-ID"] = message_id
        reserved = {"from", "to", "cc", "bcc", "subject", "date", "message-id"}
        for text in spec.headers:
            name, value = split_header(text)
            if name.lower() in reserved and name.lower() in ("date", "message-id"):
                del msg[name]
            msg[name] = value
        _set_body(msg, spec)
        data = msg.as_bytes(policy=pol)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise DataError(f"cannot build the message: {exc}", step="composing") from exc
    envelope = Envelope(sender=sender_addr,
                        recipients=unique([a for _n, a in [*to, *cc, *bcc]]))
    return MessageSource.from_bytes(data), envelope, message_id


def _fmt(pair: tuple[str, str]) -> str:
    from email.utils import formataddr

    return formataddr(pair) if pair[0] else pair[1]


def _set_body(msg: EmailMessage, spec: ComposeSpec) -> None:
    text = spec.body if spec.body is not None else ""
    msg.set_content(text)
    if spec.html is not None:
        msg.add_alternative(spec.html, subtype="html")
    for att in spec.attachments:
        guard_argument(att.filename, "attachment name")
        ctype = att.content_type or _guess_type(att.filename)
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=os.path.basename(att.filename) or "attachment")


def _guess_type(filename: str) -> str:
    import mimetypes

    ctype, encoding = mimetypes.guess_type(filename)
    if ctype is None or encoding is not None:
        return "application/octet-stream"
    return ctype


def read_file(path: str, stdin: IO[bytes] | None = None) -> bytes:
    """Bytes of ``path`` (``-`` is standard input).

    Raises:
        NoInputError: missing or unreadable (exit 66).
    """
    if path == "-":
        import sys

        return (stdin or sys.stdin.buffer).read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise NoInputError(f"cannot read {path}: {exc.strerror}", step="reading input") from exc


def decode_text(data: bytes, what: str) -> str:
    """A text body from a file: UTF-8 or refused (exit 65)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} is not UTF-8 text", step="composing",
                        hint="attach it with --attach instead") from exc
