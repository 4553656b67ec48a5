"""Per-folder sync state: what we hold of a server folder, durable across crashes.

Theory of operation (the shape of mbsync's ``.mbsyncstate`` plus ``.journal``): the
state of one folder is a snapshot file replaced atomically (``mailtool.store.atomic``)
plus a journal of changes made since. Each batch of work first makes the Maildir
changes durable (message files fsynced, directories fsynced), then appends one journal
line per change and fsyncs the journal once. At the end of a folder (and every
``SNAPSHOT_EVERY`` journal lines) the whole state is written as a new snapshot and the
journal is removed. Loading reads the snapshot and replays the journal; the last line
may be torn by a crash and is dropped (its changes are then redone, see below).

Every journal line *sets* a value (a record, a flag set, a counter) rather than
describing a delta, so replaying a journal over a snapshot that already contains it
(a crash between writing the snapshot and removing the journal) gives the same state.

A crash between storing a message and journalling it leaves a file nobody recorded.
Its name carries the key ``V<uidvalidity>U<uid>`` (see ``message_key``), so the next
run finds it by key instead of fetching the message a second time.

The state is keyed on UIDVALIDITY. Each record keeps the Maildir flags as last
synced on *both* sides and the file's path: a two-way sync compares the current local
file flags and the server flags against them to see which side changed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailtool.errors import ConfigError, LocalIOError
from mailtool.record import field, record
from mailtool.store.atomic import fsync_dir, read_json, write_json

STATE_FILE = "mailtool-sync.state"
JOURNAL_FILE = "mailtool-sync.journal"
STATE_VERSION = 1
#: Rewrite the snapshot after this many journal lines, so replay stays short.
SNAPSHOT_EVERY = 20_000

_KEY_RE = re.compile(r"^\d+\.V(\d+)U(\d+)\.")


def message_key(uidvalidity: int, uid: int) -> str:
    """The stable part of a stored message's Maildir name."""
    return f"V{uidvalidity}U{uid}"


def parse_key(filename: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) from a Maildir file name we wrote, or None."""
    match = _KEY_RE.match(filename)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


@record
class Record:
    """One message we hold: where its file is and the flags as last synced."""

    path: str  # relative to the folder directory: "new/NAME" or "cur/NAME:2,FS"
    flags: str  # Maildir flags (sorted) as last synced
    size: int | None = None  # RFC822.SIZE, for re-matching after a UIDVALIDITY change
    gone: bool = False  # expunged on the server but kept here (--keep-deleted)


@record
class FolderState:
    """The sync state of one folder."""

    folder: str
    uidvalidity: int | None = None
    #: Every UID below this has been dealt with (stored, or seen to be gone).
    uidnext: int = 1
    #: HIGHESTMODSEQ up to which every change has been applied (None: unknown / no CONDSTORE).
    highestmodseq: int | None = None
    records: dict[int, Record] = field(default_factory=dict)

    def live_uids(self) -> set[int]:
        return {uid for uid, rec in self.records.items() if not rec.gone}

    def reset(self, uidvalidity: int) -> None:
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.highestmodseq = None
        self.records = {}

    # -- (de)serialisation ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "folder": self.folder,
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
            "highestmodseq": self.highestmodseq,
            "messages": {
                str(uid): [rec.path, rec.flags, rec.size, rec.gone]
                for uid, rec in sorted(self.records.items())
            },
        }

    @classmethod
    def from_json(cls, folder: str, data: Any, where: Path) -> FolderState:
        try:
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            state = cls(
                folder=folder,
                uidvalidity=data["uidvalidity"],
                uidnext=int(data["uidnext"]),
                highestmodseq=data.get("highestmodseq"),
            )
            for uid, (path, flags, size, gone) in data["messages"].items():
                state.records[int(uid)] = Record(str(path), str(flags), size, bool(gone))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"sync state {where} is corrupt ({exc}); move it away to "
                              "rebuild it from the Maildir") from exc
        return state

    def apply(self, op: list[Any]) -> None:
        """Apply one journal operation (see ``Journal``)."""
        kind = op[0]
        if kind == "+":
            _, uid, path, flags, size = op
            self.records[int(uid)] = Record(path, flags, size)
        elif kind == "*":
            _, uid, path, flags = op
            rec = self.records.get(int(uid))
            if rec is not None:
                rec.path, rec.flags = path, flags
        elif kind == "-":
            self.records.pop(int(op[1]), None)
        elif kind == "g":
            rec = self.records.get(int(op[1]))
            if rec is not None:
                rec.gone = True
        elif kind == "n":
            self.uidnext = max(self.uidnext, int(op[1]))
        elif kind == "m":
            self.highestmodseq = op[1]
        else:
            raise ValueError(f"unknown journal operation {kind!r}")


class StateStore:
    """The snapshot and journal of one folder, in the folder's directory.

    Use: ``state = store.load()``; for each batch, make the Maildir durable, then
    ``store.record(op...)`` for each change and ``store.commit()``; at the end
    ``store.snapshot(state)``. ``record`` also applies the op to the loaded state.
    """

    def __init__(self, directory: Path, folder: str) -> None:
        self.directory = directory
        self.folder = folder
        self.state_path = directory / STATE_FILE
        self.journal_path = directory / JOURNAL_FILE
        self.state: FolderState | None = None
        self._pending: list[str] = []
        self._journal_lines = 0
        self._fd: int | None = None

    def exists(self) -> bool:
        return self.state_path.exists() or self.journal_path.exists()

    def load(self) -> FolderState:
        """Read the snapshot and replay the journal (dropping a torn last line).

        Raises:
            ConfigError: the snapshot or a complete journal line is corrupt.
        """
        data = read_json(self.state_path)
        if data is None:
            state = FolderState(folder=self.folder)
        else:
            state = FolderState.from_json(self.folder, data, self.state_path)
        self._journal_lines = 0
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as exc:
            raise LocalIOError(f"cannot read {self.journal_path}: {exc.strerror}") from exc
        good = 0
        lines = raw.split(b"\n")
        for index, line in enumerate(lines):
            last = index == len(lines) - 1
            if last:
                break  # an unterminated tail (empty after a clean last newline)
            try:
                op = json.loads(line)
                state.apply(op)
            except (ValueError, TypeError, IndexError) as exc:
                if index == len(lines) - 2 and not lines[-1]:
                    # only the final complete line may be damaged by a crash
                    break
                raise ConfigError(f"sync journal {self.journal_path} is corrupt at line "
                                  f"{index + 1}: {exc}") from exc
            good += len(line) + 1
            self._journal_lines += 1
        if good != len(raw):
            # Cut a torn tail so new lines are not appended to half a line.
            try:
                with open(self.journal_path, "r+b") as handle:
                    handle.truncate(good)
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise LocalIOError(f"cannot repair {self.journal_path}: {exc.strerror}") from exc
        self.state = state
        return state

    def record(self, *op: Any) -> None:
        """Queue one journal operation and apply it to the in-memory state."""
        assert self.state is not None, "load() first"
        self.state.apply(list(op))
        self._pending.append(json.dumps(list(op), ensure_ascii=False, separators=(",", ":")))

    def commit(self) -> None:
        """Append the queued operations to the journal and fsync it (one fsync per batch)."""
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode("utf-8")
        self._pending.clear()
        try:
            if self._fd is None:
                created = not self.journal_path.exists()
                self._fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                   0o600)
                if created:
                    fsync_dir(self.directory)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.journal_path}: {exc.strerror}") from exc
        self._journal_lines += data.count(b"\n")
        if self._journal_lines >= SNAPSHOT_EVERY and self.state is not None:
            self.snapshot()

    def snapshot(self, state: FolderState | None = None) -> None:
        """Write the whole state atomically, then drop the journal it contains."""
        if state is not None:
            self.state = state
        assert self.state is not None
        self._pending.clear()  # already applied to the state written below
        write_json(self.state_path, self.state.to_json())
        self.close()
        try:
            self.journal_path.unlink()
            fsync_dir(self.directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LocalIOError(f"cannot remove {self.journal_path}: {exc.strerror}") from exc
        self._journal_lines = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Forget the folder's state entirely (the folder is gone)."""
        self.close()
        for path in (self.state_path, self.journal_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def scan_keys(folder_dir: Path, uidvalidity: int, uids: Iterable[int] | None = None
              ) -> dict[int, str]:
    """Files in ``new/`` and ``cur/`` whose name carries ``V<uidvalidity>U<uid>``.

    Returns uid -> path relative to ``folder_dir``; restricted to ``uids`` when given.
    """
    wanted = None if uids is None else set(uids)
    found: dict[int, str] = {}
    for sub in ("new", "cur"):
        try:
            entries = os.scandir(folder_dir / sub)
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                parsed = parse_key(entry.name)
                if parsed is None or parsed[0] != uidvalidity:
                    continue
                if wanted is None or parsed[1] in wanted:
                    found[parsed[1]] = f"{sub}/{entry.name}"
    return found
