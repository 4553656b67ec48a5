"""Browsing an IMAP account: the library behind ``imap-list`` and ``imap-show``.

Listing a folder costs one EXAMINE, one UID SEARCH (ESEARCH ranges when offered, so a
100,000-message folder answers in a few bytes) and one UID FETCH of ENVELOPE/FLAGS/SIZE for
just the rows shown. Showing a message fetches its BODYSTRUCTURE and header first, then only
the parts needed; parts stream through a transfer decoder to their destination. Everything
uses BODY.PEEK, and folders are EXAMINEd (read-only), so nothing sets ``\\Seen`` unless the
caller asks for it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import os
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mailtool.errors import CantCreateError, UnavailableError, UsageError
from mailtool.protocol.imap.client import BodyInfo, IMAPClient
from mailtool.protocol.imap.session import Raw
from mailtool.protocol.imap.types import BodyStructure, FetchData, UIDSet
from mailtool.record import record

LIST_ITEMS = ("UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --- listing folders --------------------------------------------------------------------


def list_folders(client: IMAPClient) -> list[dict[str, Any]]:
    """Every folder with its special-use role and counts, sorted as a tree (INBOX first)."""
    boxes = client.list_mailboxes("", "*", special_use=True, status=("MESSAGES", "UNSEEN"))
    rows = []
    for box in boxes:
        delim = box.delimiter
        depth = box.name.count(delim) if delim else 0
        status = box.status or {}
        rows.append(
            {
                "name": box.name,
                "delimiter": delim,
                "depth": depth,
                "special_use": box.special_use,
                "attributes": list(box.entry.attributes),
                "selectable": box.entry.selectable,
                "messages": status.get("MESSAGES"),
                "unseen": status.get("UNSEEN"),
            }
        )

    def key(row: dict[str, Any]) -> tuple[int, list[str]]:
        name = row["name"]
        parts = name.split(row["delimiter"]) if row["delimiter"] else [name]
        return (0 if name.upper() == "INBOX" else 1, [p.lower() for p in parts])

    rows.sort(key=key)
    return rows


# --- listing messages -------------------------------------------------------------------


def imap_date(text: str) -> str:
    """``2024-01-31`` or ``31-Jan-2024`` -> IMAP ``date`` (``31-Jan-2024``).

    Raises:
        UsageError: neither form.
    """
    text = text.strip()
    try:
        day = _dt.date.fromisoformat(text)
    except ValueError:
        m = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})", text)
        if not m or m.group(2).title() not in _MONTHS:
            raise UsageError(f"bad date {text!r}: use YYYY-MM-DD or 31-Jan-2024") from None
        return f"{int(m.group(1))}-{m.group(2).title()}-{m.group(3)}"
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def search_criteria(
    *,
    unseen: bool = False,
    flagged: bool = False,
    sender: str | None = None,
    to: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    before: str | None = None,
    larger: int | None = None,
    raw: str | None = None,
) -> list[Any]:
    """The UID SEARCH arguments for the filters (ANDed); ``ALL`` when none."""
    args: list[Any] = []
    if unseen:
        args.append(Raw("UNSEEN"))
    if flagged:
        args.append(Raw("FLAGGED"))
    for key, value in (("FROM", sender), ("TO", to), ("SUBJECT", subject)):
        if value is not None:
            args += [Raw(key), value]
    if since:
        args += [Raw("SINCE"), Raw(imap_date(since))]
    if before:
        args += [Raw("BEFORE"), Raw(imap_date(before))]
    if larger is not None:
        args += [Raw("LARGER"), larger]
    if raw:
        args.append(Raw(raw))
    return args or [Raw("ALL")]


def decode_words(text: str | None) -> str:
    """RFC 2047 encoded words -> text (malformed ones are shown as they are)."""
    if not text:
        return ""
    if "=?" not in text:
        return text
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


@record(frozen=True)
class MessageRow:
    uid: int
    date: str | None
    sender: str
    sender_address: str
    subject: str
    size: int | None
    flags: tuple[str, ...]
    message_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "date": self.date,
            "from": self.sender,
            "from_address": self.sender_address,
            "subject": self.subject,
            "size": self.size,
            "flags": list(self.flags),
            "message_id": self.message_id,
        }


def _row(fetch: FetchData) -> MessageRow:
    env = fetch.envelope
    when: _dt.datetime | None = None
    if env is not None and env.date:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(env.date)
        except (TypeError, ValueError, IndexError):
            when = None
    if when is None:
        when = fetch.internaldate_dt
    sender = address = ""
    if env is not None and env.from_:
        first = env.from_[0]
        address = first.email
        sender = decode_words(first.name) or address
    return MessageRow(
        uid=fetch.uid or 0,
        date=when.isoformat() if when else None,
        sender=sender,
        sender_address=address,
        subject=decode_words(env.subject if env else None),
        size=fetch.size,
        flags=tuple(f for f in fetch.flags or () if f.lower() != "\\recent"),
        message_id=env.message_id if env else None,
    )


@record(frozen=True)
class Listing:
    folder: str
    uidvalidity: int | None
    exists: int
    matched: int
    rows: list[MessageRow]


def list_messages(
    client: IMAPClient, folder: str, criteria: list[Any], limit: int
) -> Listing:
    """The newest ``limit`` messages matching ``criteria``: one SEARCH, one FETCH."""
    info = client.examine(folder)
    found = client.uid_search_set(criteria)
    uids = found.last(limit)
    rows: list[MessageRow] = []
    if uids:
        fetches = client.uid_fetch(UIDSet.of(uids), LIST_ITEMS)
        rows = sorted((_row(f) for f in fetches if f.uid in set(uids)), key=lambda r: -r.uid)
    return Listing(folder, info.uidvalidity, info.exists, len(found), rows)


# --- showing a message ------------------------------------------------------------------

SHOW_ITEMS = ("UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE")


def fetch_summary(client: IMAPClient, uid: int, *, header: bool = True) -> FetchData:
    """ENVELOPE, BODYSTRUCTURE, FLAGS, size and (peeked) header of one message.

    Raises:
        UnavailableError: no message with that UID.
    """
    items = list(SHOW_ITEMS) + (["BODY.PEEK[HEADER]"] if header else [])
    for fetch in client.uid_fetch([uid], items):
        if fetch.uid == uid:
            return fetch
    folder = client.selected.name if client.selected else "the folder"
    raise UnavailableError(f"no message with UID {uid} in {folder}", step="UID FETCH")


def _leaves(bs: BodyStructure) -> list[BodyStructure]:
    return [p for p in bs.walk() if not p.is_multipart]


def text_part(bs: BodyStructure) -> BodyStructure | None:
    """The part a person reads: the first inline text/plain, else the first text/html."""
    leaves = [p for p in _leaves(bs) if p.disposition != "attachment"]
    for wanted in ("plain", "html"):
        for part in leaves:
            if part.type == "text" and part.subtype == wanted:
                return part
    return None


def attachments(bs: BodyStructure, shown: BodyStructure | None) -> list[BodyStructure]:
    """Leaf parts other than the shown text: attachments, inline images, alternatives."""
    out = []
    for part in _leaves(bs):
        if part is shown:
            continue
        if part.type == "text" and not part_filename(part) and part.disposition != "attachment":
            continue  # the other half of a multipart/alternative
        out.append(part)
    return out


def part_filename(part: BodyStructure) -> str | None:
    """The part's file name: RFC 2231 ``filename*`` or plain, RFC 2047 decoded."""
    for params in (part.disposition_params, part.params):
        for key in ("filename*", "name*"):
            value = params.get(key)
            if value and value.count("'") >= 2:
                charset, _lang, encoded = value.split("'", 2)
                try:
                    return urllib.parse.unquote(encoded, encoding=charset or "utf-8")
                except LookupError:
                    return urllib.parse.unquote(encoded)
        for key in ("filename", "name"):
            if params.get(key):
                return decode_words(params[key])
    return None


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
MAX_NAME = 200


def safe_filename(name: str | None, part_id: str, mime_type: str = "") -> str:
    """A file name that cannot escape its directory or surprise a shell user.

    Only the last path component is kept; control characters, path separators and
    characters Windows refuses become ``_``; leading dots and spaces go; at most
    ``MAX_NAME`` characters; empty or reserved results become ``part-<id>.bin``.
    """
    fallback = f"part-{part_id or '1'}.{_extension(mime_type)}"
    if not name:
        return fallback
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(". ")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 10 else name[:MAX_NAME]
    if not name or name in (".", "..") or name.split(".")[0].upper() in _RESERVED:
        return fallback
    return name


_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {
    f"LPT{i}" for i in range(10)
}


def _extension(mime_type: str) -> str:
    return {"text/plain": "txt", "text/html": "html", "message/rfc822": "eml"}.get(
        mime_type, "bin"
    )


class TransferDecoder:
    """Undo a Content-Transfer-Encoding chunk by chunk (base64, quoted-printable, else as is)."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = (encoding or "").upper()
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "BASE64":
            data = self._pending + bytes(c for c in data if c not in b" \t\r\n")
            cut = len(data) - len(data) % 4
            self._pending = data[cut:]
            try:
                return base64.b64decode(data[:cut])
            except (binascii.Error, ValueError):
                return b""
        if self.encoding == "QUOTED-PRINTABLE":
            data = self._pending + data
            cut = data.rfind(b"\n") + 1
            self._pending = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if self.encoding == "BASE64" and rest:
            try:
                return base64.b64decode(rest + b"=" * (-len(rest) % 4))
            except (binascii.Error, ValueError):
                return b""
        if self.encoding == "QUOTED-PRINTABLE":
            return binascii.a2b_qp(rest)
        return rest


class _DecodingSink:
    def __init__(self, decoder: TransferDecoder | None, write: Callable[[bytes], Any]) -> None:
        self.decoder = decoder
        self._write = write
        self.size = 0

    def write(self, data: bytes) -> None:
        out = self.decoder.feed(data) if self.decoder else data
        if out:
            self.size += len(out)
            self._write(out)

    def done(self) -> None:
        if self.decoder:
            out = self.decoder.finish()
            if out:
                self.size += len(out)
                self._write(out)


def stream_section(
    client: IMAPClient,
    uid: int,
    section: str,
    write: Callable[[bytes], Any],
    *,
    encoding: str | None = None,
    peek: bool = True,
) -> int:
    """Stream ``BODY[section]`` of one message to ``write``, decoding ``encoding``.

    Returns the number of bytes written.

    Raises:
        UnavailableError: the server sent no such body (wrong UID or section).
    """
    sinks: list[_DecodingSink] = []

    def factory(info: BodyInfo) -> _DecodingSink:
        sink = _DecodingSink(TransferDecoder(encoding) if encoding else None, write)
        sinks.append(sink)
        return sink

    item = f"BODY.PEEK[{section}]" if peek else f"BODY[{section}]"
    client.uid_fetch([uid], ["UID", item], sink=factory)
    if not sinks:
        raise UnavailableError(f"no message with UID {uid} (or no part {section or 'body'})",
                               step="UID FETCH")
    return sum(s.size for s in sinks)


def fetch_text(client: IMAPClient, uid: int, part: BodyStructure, *, peek: bool = True) -> str:
    """The decoded text of a text part."""
    chunks: list[bytes] = []
    stream_section(client, uid, part.part_id or "1", chunks.append, encoding=part.encoding,
                   peek=peek)
    raw = b"".join(chunks)
    charset = part.params.get("charset") or "utf-8"
    try:
        text = raw.decode(charset, "replace")
    except LookupError:
        text = raw.decode("utf-8", "replace")
    if part.subtype == "html":
        text = _strip_html(text)
    return text


def _strip_html(html: str) -> str:
    """A readable approximation of an HTML part (no rendering engine here)."""
    import html as html_mod

    html = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</h\d>", "\n", html)
    text = re.sub(r"<[^>]+>", "", html)
    text = html_mod.unescape(text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def save_part(
    client: IMAPClient, uid: int, part: BodyStructure, directory: Path, *, peek: bool = True
) -> Path:
    """Stream one decoded part into ``directory`` under a safe, fresh file name.

    Raises:
        CantCreateError: the directory or file cannot be written.
    """
    name = safe_filename(part_filename(part), part.part_id, part.mime_type)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CantCreateError(f"cannot create {directory}: {exc.strerror}") from exc
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    for attempt in range(1000):
        candidate = name if attempt == 0 else f"{stem} ({attempt}){dot}{ext}"
        path = directory / candidate
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise CantCreateError(f"cannot create {path}: {exc.strerror}") from exc
    else:
        raise CantCreateError(f"too many files named like {name} in {directory}")
    handle: IO[bytes] = os.fdopen(fd, "wb")
    try:
        with handle:
            stream_section(client, uid, part.part_id or "1", handle.write,
                           encoding=part.encoding, peek=peek)
    except BaseException:
        try:
            path.unlink()
        except OSError:
            pass
        raise
    return path
