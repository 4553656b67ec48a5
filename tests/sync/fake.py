"""An in-memory IMAP server behind the engine's ``Source`` protocol (for pure tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from mailtool.sync.engine import BodySink, FolderInfo, Selected
from mailtool.sync.plan import Identity, header_message_id


@dataclass
class FakeFolder:
    uidvalidity: int = 1000
    uidnext: int = 1
    modseq: int = 1
    messages: dict[int, tuple[bytes, set[str], int]] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> modseq of expunge

    def add(self, raw: bytes, flags: Sequence[str] = ()) -> int:
        uid = self.uidnext
        self.uidnext += 1
        self.modseq += 1
        self.messages[uid] = (raw, set(flags), self.modseq)
        return uid

    def set_flags(self, uid: int, flags: Sequence[str]) -> None:
        self.modseq += 1
        raw, _, _ = self.messages[uid]
        self.messages[uid] = (raw, set(flags), self.modseq)

    def expunge(self, uid: int) -> None:
        self.modseq += 1
        del self.messages[uid]
        self.expunged[uid] = self.modseq

    def recreate(self) -> None:
        """Delete and recreate: new UIDVALIDITY, same messages renumbered from 1."""
        old = sorted(self.messages.items())
        self.uidvalidity += 1
        self.uidnext = 1
        self.messages = {}
        self.expunged = {}
        for _, (raw, flags, _) in old:
            self.add(raw, sorted(flags))


class FakeSource:
    def __init__(self, *, condstore: bool = True, qresync: bool = True,
                 delimiter: str = "/") -> None:
        self.condstore = condstore
        self.qresync = qresync
        self.delimiter = delimiter
        self.tree: dict[str, FakeFolder] = {"INBOX": FakeFolder()}
        self.current: FakeFolder | None = None
        self.calls: list[str] = []
        self.fail_after: int | None = None  # raise after this many bodies (crash simulation)
        self.vanished_sets = 1  # VANISHED sets per answer
        self.vanished_calls = 0  # answers whose VANISHED went to an on_vanished callback

    def folders(self) -> list[FolderInfo]:
        return [FolderInfo(name, self.delimiter) for name in self.tree]

    def select(self, name: str, qresync: tuple[int, int] | None) -> Selected:
        self.calls.append(f"select {name} {qresync}")
        f = self.current = self.tree[name]
        sel = Selected(uidvalidity=f.uidvalidity, uidnext=f.uidnext, exists=len(f.messages),
                       highestmodseq=f.modseq if self.condstore else None)
        if qresync is not None and qresync[0] == f.uidvalidity:
            assert self.qresync
            since = qresync[1]
            sel.vanished = {u for u, m in f.expunged.items() if m > since}
            sel.changed = {u: tuple(fl) for u, (_, fl, m) in f.messages.items() if m > since}
        return sel

    def select_begin(self, name: str, qresync: tuple[int, int] | None, *,
                     on_vanished: Callable[[Iterable[int]], None] | None = None
                     ) -> Callable[[], Selected]:
        sel = self.select(name, qresync)

        def finish() -> Selected:
            # As a server would send it: the VANISHED sets while the answer is read,
            # in ``vanished_sets`` pieces.
            if on_vanished is not None and sel.vanished:
                self.vanished_calls += 1
                uids = sorted(sel.vanished)
                step = -(-len(uids) // self.vanished_sets)
                for i in range(0, len(uids), step):
                    on_vanished(uids[i:i + step])
            return sel

        return finish

    def search_from(self, first: int) -> list[int]:
        self.calls.append(f"search {first}:*")
        assert self.current is not None
        uids = sorted(u for u in self.current.messages if u >= first)
        return uids or ([max(self.current.messages)] if self.current.messages else [])

    def search_all(self) -> set[int]:
        self.calls.append("search all")
        assert self.current is not None
        return set(self.current.messages)

    def fetch_flags(self, last: int, changedsince: int | None) -> dict[int, tuple[str, ...]]:
        self.calls.append(f"flags 1:{last} {changedsince}")
        assert self.current is not None
        return {u: tuple(fl) for u, (_, fl, m) in self.current.messages.items()
                if u <= last and (changedsince is None or m > changedsince)}

    def fetch_identities(self) -> dict[int, Identity]:
        self.calls.append("identities")
        assert self.current is not None
        out = {}
        for uid, (raw, _, _) in self.current.messages.items():
            head = raw.split(b"\r\n\r\n", 1)[0]
            out[uid] = Identity(header_message_id(head), len(raw))
        return out

    def fetch_bodies(self, uids: Sequence[int], sink: BodySink) -> None:
        self.calls.append(f"bodies {len(uids)}")
        assert self.current is not None
        for n, uid in enumerate(uids):
            if uid not in self.current.messages:
                continue
            if self.fail_after is not None and n >= self.fail_after:
                raise ConnectionResetError("simulated crash")
            raw, flags, _ = self.current.messages[uid]
            sink.begin(uid, len(raw), tuple(flags))
            for i in range(0, len(raw), 7):
                sink.data(raw[i:i + 7])
            sink.end(uid, None)


def message(n: int, *, msgid: str | None = None, body: bytes = b"") -> bytes:
    mid = msgid if msgid is not None else f"<m{n}@example.test>"
    head = f"From: a@example.test\r\nSubject: message {n}\r\n"
    if mid:
        head += f"Message-ID: {mid}\r\n"
    return head.encode() + b"\r\n" + (body or f"body {n}\r\n".encode())
