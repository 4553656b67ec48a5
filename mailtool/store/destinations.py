"""Where fetched messages go: a Maildir, an mbox, an MDA command or standard output.

Theory: a ``Destination`` takes one message at a time (``store``, the bytes as the server
sent them, CRLF line ends) and makes it as durable as it can; ``commit`` ends a batch (only
after it returns may the caller record the batch as stored and, for POP3, delete it on the
server). The caller's ``Journal`` (the fetch state) is passed to ``begin`` for the
destinations that need it for crash recovery:

* Maildir: files are written to ``tmp/`` and made durable per batch (``MaildirBatch``:
  fsync or syncfs, rename into ``new/``, fsync the directory). File names carry the
  caller's stable ``key``, so a rerun after a kill -9 recognises what is already stored
  (``known_keys``) and removes the partial files of a killed run (``clean_tmp``).
* mbox: locked for the whole run, each append fsynced; before an append the journal notes
  its offset, so a rerun rolls an unrecorded append back (truncate).
* MDA: one process per message; only exit 0 counts as delivered, 75 defers.
* stdout: the message as is, or an mboxrd stream.

Heavy modules (subprocess for the MDA, the mbox writer) are imported only by the
destination that needs them: ``pop-fetch`` with a Maildir starts faster.
"""

from __future__ import annotations

import os
import sys

from mailtool.store.lineends import to_lf
from mailtool.store.maildir import Maildir, MaildirBatch, begin_message

# The protocols below are for the type checker; at run time they are plain classes, so
# importing this module costs neither typing nor pathlib.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import IO, Any, Protocol

    from mailtool.store.mbox import Mbox
else:
    Protocol = object

#: Leftover ``tmp/`` files with a message key that cannot be attributed to the running
#: account are removed once older than this (a killed run's partial writes).
STALE_TMP = 3600.0

#: A message key as ``retrieve.message_key`` makes it: ``U`` + 32 lower-case hex digits.
KEY_LENGTH = 33
_HEX = frozenset("0123456789abcdef")


class Journal(Protocol):
    """What a destination may use of the fetch state (``retrieve.UIDLState``)."""

    pending: dict[str, Any] | None

    def record(self, uidl: str, *, headers_only: bool = False, when: float | None = None
               ) -> None: ...
    def save(self, *, keep: set[str] | None = None, force: bool = True) -> None: ...


class Destination(Protocol):
    """Where fetched messages go (see the module docstring)."""

    label: str
    #: Largest number of stored-but-unrecorded messages allowed (1: record each one).
    batch_limit: int
    #: True when ``store`` uses the ``key`` (the caller computes keys only then).
    uses_keys: bool

    def begin(self, state: Journal) -> None: ...
    def known_keys(self) -> set[str]: ...
    def store(self, chunks: Iterable[bytes], *, key: str | None, uidl: str | None) -> str: ...
    def commit(self) -> None: ...
    def end(self) -> None: ...


def is_key(text: str) -> bool:
    """True for ``U`` followed by 32 lower-case hex digits (``retrieve.message_key``)."""
    return len(text) == KEY_LENGTH and text[0] == "U" and _HEX.issuperset(text[1:])


def _key_of(name: str) -> str | None:
    parts = name.split(".", 2)
    if len(parts) >= 3 and is_key(parts[1]):
        return parts[1]
    return None


class MaildirDestination:
    """Maildir: each message written to tmp/; per batch, every file fsynced (one syncfs),
    then renamed into new/, then the directory fsynced (``store.maildir.MaildirBatch``)."""

    batch_limit = 1 << 30  # the caller's batch size decides
    uses_keys = True

    def __init__(self, path: Path | str) -> None:
        self.maildir = Maildir(path)
        self.label = f"maildir:{self.maildir.dir}"
        self.batch = MaildirBatch(self.maildir)
        self._new = self.maildir.sub("new") + os.sep

    def begin(self, state: Journal) -> None:
        return None

    def tmp_leftovers(self) -> list[tuple[str, str, float]]:
        """``(key, path, mtime)`` of every keyed file in ``tmp/`` (a killed run's writes)."""
        found: list[tuple[str, str, float]] = []
        for entry in os.scandir(self.maildir.sub("tmp")):
            key = _key_of(entry.name)
            if key is not None:
                try:
                    found.append((key, entry.path, entry.stat().st_mtime))
                except OSError:
                    pass
        return found

    def clean_tmp(self, ours: set[str], *, now: float | None = None) -> int:
        """Remove partial files of killed runs from ``tmp/``; return how many.

        A file whose key is in ``ours`` belongs to the caller's account, and the caller
        holds that account's lock, so no run can be writing it: it goes at once. Any other
        keyed file may be another account's run in progress (same Maildir, other mailbox):
        it goes only once older than ``STALE_TMP``. Files without our key pattern (another
        program's) are never touched.
        """
        if now is None:
            import time

            now = time.time()
        removed = 0
        for key, path, mtime in self.tmp_leftovers():
            if key in ours or now - mtime > STALE_TMP:
                try:
                    os.unlink(path)
                    removed += 1
                except OSError:
                    pass
        return removed

    def known_keys(self) -> set[str]:
        keys: set[str] = set()
        for sub in ("new", "cur"):
            for entry in os.scandir(self.maildir.sub(sub)):
                key = _key_of(entry.name)
                if key is not None:
                    keys.add(key)
        return keys

    def store(self, chunks: Iterable[bytes], *, key: str | None, uidl: str | None) -> str:
        pending = begin_message(self.maildir, key=key)
        try:
            for chunk in to_lf(chunks):
                pending.write(chunk)
        except BaseException:
            pending.abort()  # a lost connection mid-body: nothing half-stored
            raise
        self.batch.add(pending)
        return self._new + pending.name

    def commit(self) -> None:
        """fsync the batch's files, move them into ``new/``, fsync the directory."""
        self.batch.commit_names()

    def abort(self) -> None:
        self.batch.abort()

    def end(self) -> None:
        self.commit()


class MboxDestination:
    """mbox (mboxrd), locked for the whole run; each append fsynced."""

    batch_limit = 1
    uses_keys = False

    def __init__(self, path: Path | str) -> None:
        from mailtool.store.mbox import Mbox

        self.mbox: Mbox = Mbox(path)
        self.label = f"mbox:{self.mbox.path}"
        self._ctx: Any = None
        self._state: Journal | None = None

    def begin(self, state: Journal) -> None:
        self._ctx = self.mbox.locked()
        self._ctx.__enter__()
        self._state = state
        pending = state.pending
        if pending and pending.get("mbox") == os.path.realpath(self.mbox.path):
            self._recover(state, pending)
        state.pending = None

    def _recover(self, state: Journal, pending: dict[str, Any]) -> None:
        from mailtool.store.mbox import count_from_lines

        offset = int(pending.get("offset", -1))
        uidl = pending.get("uidl")
        size = self.mbox.size()
        if offset < 0 or size <= offset:
            return  # nothing was written
        starts, count = count_from_lines(self.mbox.path, offset)
        if starts and count == 1:
            # Our unrecorded append (complete or not) is the last thing in the file.
            self.mbox.truncate(offset)
        elif starts and count > 1 and isinstance(uidl, str):
            # Someone appended after it, so ours was complete: keep it, record it.
            state.record(uidl)

    def known_keys(self) -> set[str]:
        return set()

    def store(self, chunks: Iterable[bytes], *, key: str | None, uidl: str | None) -> str:
        assert self._state is not None
        if uidl is not None:
            self._state.pending = {
                "mbox": os.path.realpath(self.mbox.path),
                "offset": self.mbox.size(),
                "uidl": uidl,
            }
            self._state.save()
        offset = self.mbox.append(to_lf(chunks))
        return f"{self.mbox.path}@{offset}"

    def commit(self) -> None:
        if self._state is not None:
            self._state.pending = None

    def end(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)


class MDADestination:
    """An MDA command per message; only exit 0 counts as delivered."""

    batch_limit = 1
    uses_keys = False

    def __init__(self, command: str) -> None:
        from mailtool.store.mda import split_command

        self.argv = split_command(command)
        self.label = f"mda:{self.argv[0]}"

    def begin(self, state: Journal) -> None:
        return None

    def known_keys(self) -> set[str]:
        return set()

    def store(self, chunks: Iterable[bytes], *, key: str | None, uidl: str | None) -> str:
        from mailtool.store.mda import run_mda

        run_mda(self.argv, to_lf(chunks), env={"MAILTOOL_UIDL": uidl or ""})
        return self.label

    def commit(self) -> None:
        return None

    def end(self) -> None:
        return None


class StdoutDestination:
    """Standard output: one message as is, or an mboxrd stream when ``as_mbox``."""

    batch_limit = 1
    uses_keys = False

    def __init__(self, stream: IO[bytes] | None = None, *, as_mbox: bool = True) -> None:
        self.stream = stream or sys.stdout.buffer
        self.as_mbox = as_mbox
        self.label = "stdout"

    def begin(self, state: Journal) -> None:
        return None

    def known_keys(self) -> set[str]:
        return set()

    def store(self, chunks: Iterable[bytes], *, key: str | None, uidl: str | None) -> str:
        from mailtool.errors import LocalIOError

        try:
            if self.as_mbox:
                from mailtool.store.mbox import MboxrdQuoter, from_line

                quoter = MboxrdQuoter()
                self.stream.write(from_line())
                for chunk in to_lf(chunks):
                    self.stream.write(quoter.feed(chunk))
                self.stream.write(quoter.finish())
            else:
                for chunk in to_lf(chunks):
                    self.stream.write(chunk)
            self.stream.flush()
        except BrokenPipeError as exc:
            raise LocalIOError("standard output closed") from exc
        return self.label

    def commit(self) -> None:
        return None

    def end(self) -> None:
        return None
