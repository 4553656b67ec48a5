"""The engine's ``Source`` over the project's ``IMAPClient`` (the only I/O of sync).

Folders are opened read-only (EXAMINE) with CONDSTORE, or with QRESYNC parameters when
the server enabled QRESYNC, so a one-way mirror never changes anything on the server;
bodies are fetched with ``BODY.PEEK[]`` (no \\Seen) in pipelined UID FETCH commands
and streamed chunk by chunk into the engine's sink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailtool.errors import ProtocolError
from mailtool.protocol.imap.client import BodyInfo, IMAPClient
from mailtool.protocol.imap.types import FetchData, StreamedLiteral, UIDSet
from mailtool.sync.engine import BodySink, FolderInfo, Selected
from mailtool.sync.plan import Identity, header_message_id

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

#: UIDs per UID FETCH command, and how many such commands are in flight at once.
FETCH_CHUNK = 1000
FETCH_WINDOW = 2
_BODY_ITEMS = ["UID", "FLAGS", "RFC822.SIZE", "BODY.PEEK[]"]


class _Stream:
    """One body literal going into the engine's sink."""

    def __init__(self, sink: BodySink, info: BodyInfo) -> None:
        self.sink = sink
        self.open = True
        sink.begin(info.uid, info.rfc822_size, info.flags)

    def write(self, data: bytes) -> None:
        self.sink.data(data)

    def abort(self) -> None:
        if self.open:
            self.open = False
            self.sink.abort()


class IMAPSource:
    """``engine.Source`` implemented with ``IMAPClient``."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        self.condstore = client.has("CONDSTORE") or client.has("QRESYNC")
        # What the server offers; ENABLE is sent before the first SELECT only, so a run
        # whose folders LIST-STATUS shows unchanged spends no round trip on it. Should the
        # server then not enable QRESYNC, ``select`` says so (``Selected.changed`` None).
        self.qresync = client.has("QRESYNC") and client.has("ENABLE")
        self._enabled = False

    def _enable(self) -> None:
        if self._enabled:
            return
        self._enabled = True
        enabled: set[str] = set()
        if self.client.has("QRESYNC"):
            enabled = self.client.enable("QRESYNC")
        elif self.condstore:
            enabled = self.client.enable("CONDSTORE")
        self.qresync = "QRESYNC" in {e.upper() for e in enabled}

    def folders(self) -> list[FolderInfo]:
        """Every folder; with LIST-STATUS (RFC 5819) also its counters, in the same round
        trip, so the engine skips unchanged folders without selecting them."""
        status: tuple[str, ...] | None = None
        if self.client.has("LIST-STATUS"):
            status = ("UIDVALIDITY", "UIDNEXT", "MESSAGES")
            if self.condstore:
                status += ("HIGHESTMODSEQ",)
        return [
            FolderInfo(box.name, box.delimiter, box.entry.selectable,
                       {k.upper(): v for k, v in box.status.items()} if box.status else None)
            for box in self.client.list_mailboxes("", "*", status=status)
        ]

    def select(self, name: str, qresync: tuple[int, int] | None) -> Selected:
        return self.select_begin(name, qresync)()

    def select_begin(self, name: str, qresync: tuple[int, int] | None, *,
                     on_vanished: Callable[[UIDSet], None] | None = None
                     ) -> Callable[[], Selected]:
        """Send EXAMINE; the returned function waits for and returns its answer.

        ``on_vanished`` gets each VANISHED (EARLIER) set as it is read (QRESYNC only).
        """
        self._enable()
        params = (qresync[0], qresync[1], None) if qresync and self.qresync else None
        finish = self.client.select_begin(name, readonly=True, condstore=self.condstore,
                                          qresync=params,
                                          on_vanished=on_vanished if params else None)

        def selected() -> Selected:
            info = finish()
            if info.uidvalidity is None:
                raise ProtocolError("the server sent no UIDVALIDITY", step=f"EXAMINE {name}")
            sel = Selected(
                uidvalidity=info.uidvalidity,
                uidnext=info.uidnext,
                exists=info.exists,
                highestmodseq=None if info.nomodseq else info.highestmodseq,
            )
            if params is not None:
                sel.vanished = {uid for uids in info.vanished for uid in uids}
                sel.changed = {fd.uid: fd.flags for fd in info.fetches
                               if fd.uid is not None and fd.flags is not None}
            return sel

        return selected

    def search_from(self, first: int) -> list[int]:
        return self.client.uid_search(f"UID {first}:*")

    def search_all(self) -> set[int]:
        return set(self.client.uid_search("ALL"))

    def fetch_flags(self, last: int, changedsince: int | None) -> dict[int, tuple[str, ...]]:
        flags: dict[int, tuple[str, ...]] = {}

        def collect(fd: FetchData) -> None:
            if fd.uid is not None and fd.flags is not None:
                flags[fd.uid] = fd.flags

        self.client.uid_fetch(f"1:{last}", ["UID", "FLAGS"], on_fetch=collect,
                              changedsince=changedsince)
        return flags

    def fetch_identities(self) -> dict[int, Identity]:
        found: dict[int, Identity] = {}

        def collect(fd: FetchData) -> None:
            if fd.uid is None or fd.size is None:
                return
            header = b""
            for key, value in fd.items.items():
                if key.startswith("BODY[HEADER.FIELDS") and isinstance(value, bytes):
                    header = value
            found[fd.uid] = Identity(header_message_id(header), fd.size)

        self.client.uid_fetch(
            "1:*", ["UID", "RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"],
            on_fetch=collect)
        return found

    def fetch_bodies(self, uids: Sequence[int], sink: BodySink) -> None:
        streams: list[_Stream] = []

        def start(info: BodyInfo) -> _Stream:
            stream = _Stream(sink, info)
            streams.append(stream)
            return stream

        def complete(fd: FetchData) -> None:
            body: Any = fd.items.get("BODY[]")
            if not isinstance(body, StreamedLiteral) or not isinstance(body.sink, _Stream):
                return  # an unsolicited FETCH (flags changed by someone else)
            stream = body.sink
            stream.open = False
            if fd.uid is None:
                stream.sink.abort()
                raise ProtocolError("FETCH response without UID", step="UID FETCH")
            sink.end(fd.uid, fd.flags)
            streams.clear()

        chunks = [UIDSet.of(uids[i:i + FETCH_CHUNK]) for i in range(0, len(uids), FETCH_CHUNK)]
        try:
            self.client.uid_fetch_many(chunks, _BODY_ITEMS, window=FETCH_WINDOW, sink=start,
                                       on_fetch=complete)
        except BaseException:
            for stream in streams:
                stream.abort()
            raise
