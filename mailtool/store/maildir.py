"""Maildir writer (https://cr.yp.to/proto/maildir.html), durable by construction.

A message is written to ``tmp/`` with ``O_EXCL``, fsynced, renamed into ``new/`` (or ``cur/``
with flags) and the directory fsynced: once ``deliver`` returns, the message survives a
crash. Unique names are ``time.M<usec>P<pid>Q<n>.<host>`` unless the caller supplies a
stable key (a POP3 UIDL digest, an IMAP UIDVALIDITY/UID) so a rerun after a crash can
recognise what it already stored. Names never contain ``/`` or ``:`` (the host part is
escaped as the spec says) and never start with a dot.
"""

from __future__ import annotations

import itertools
import os
import time

from mailtool.errors import CantCreateError, LocalIOError
from mailtool.store.atomic import fsync_dir, fsync_file

# Paths are ``str`` inside (pathlib costs a start-up ~7 ms here); the public API still
# hands out ``Path`` objects where it always did, building them only when asked.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path
    from typing import Any

_counter = itertools.count()
_SUBDIRS = ("tmp", "new", "cur")

#: Maildir info flags in the order the spec requires (ASCII order).
FLAG_ORDER = "DFPRST"


_HOSTNAME: str | None = None


def _hostname() -> str:
    global _HOSTNAME
    if _HOSTNAME is None:
        host = os.uname().nodename or "localhost"
        _HOSTNAME = host.replace("/", "\\057").replace(":", "\\072")
    return _HOSTNAME


def _path(name: str) -> Path:
    from pathlib import Path

    return Path(name)


def unique_name(key: str | None = None) -> str:
    """A fresh Maildir base name; ``key`` (safe characters only) replaces the random part."""
    now = time.time()
    secs = int(now)
    usec = int((now - secs) * 1_000_000)
    middle = f"M{usec}P{os.getpid()}Q{next(_counter)}"
    if key is not None:
        check_key(key)
        middle = key
    return f"{secs}.{middle}.{_hostname()}"


def check_key(key: str) -> None:
    if not key or key[0] == "." or any(c in key for c in "/:\0") or not key.isprintable():
        raise ValueError(f"unsafe Maildir key {key!r}")


def flags_suffix(flags: str) -> str:
    """``":2,FS"`` for flags ``"SF"`` (sorted, deduplicated)."""
    return ":2," + "".join(sorted(set(flags) & set(FLAG_ORDER)))


class Maildir:
    """One Maildir folder (``cur``, ``new``, ``tmp``).

    Attributes:
        dir: the folder as a ``str``; ``path`` gives it as a ``Path``.
    """

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.dir = os.fspath(path)
        if create:
            self.create()

    @property
    def path(self) -> Path:
        return _path(self.dir)

    def sub(self, name: str) -> str:
        """``<dir>/<name>`` as a ``str`` (``tmp``, ``new`` or ``cur``)."""
        return os.path.join(self.dir, name)

    def create(self) -> None:
        try:
            for sub in _SUBDIRS:
                name = os.path.join(self.dir, sub)
                if not os.path.isdir(name):
                    os.makedirs(name, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise CantCreateError(f"cannot create Maildir {self.dir}: {exc.strerror}") from exc

    def deliver(
        self,
        chunks: Iterable[bytes],
        *,
        key: str | None = None,
        flags: str | None = None,
        fsync: bool = True,
        sync_dir: bool = True,
    ) -> Path:
        """Store one message; return its final path.

        Args:
            chunks: the raw message bytes, in pieces (never joined in memory).
            key: stable unique part of the name (see module doc).
            flags: Maildir flags; when given (even empty) the message goes to ``cur/``.
            fsync: fsync the file before the rename (the durability promise).
            sync_dir: fsync the target directory now; pass False and call ``sync()``
                once per batch to amortise the cost.

        Raises:
            LocalIOError: writing failed (nothing is left in ``new``/``cur``); the exception
                raised by ``chunks`` itself propagates unchanged after cleanup.
        """
        pending = begin_message(self, key=key, flags=flags)
        try:
            for chunk in chunks:
                pending.write(chunk)
        except BaseException:
            # An error of the source (a lost connection, a bad body) propagates unchanged;
            # only our own file operations become LocalIOError (inside ``write``).
            pending.abort()
            raise
        return pending.commit(fsync=fsync, sync_dir=sync_dir)

    def sync(self) -> None:
        """fsync ``new/`` and ``cur/`` (after a batch delivered with ``sync_dir=False``)."""
        for sub in ("new", "cur"):
            fsync_dir(os.path.join(self.dir, sub))

    def messages(self) -> Iterator[Path]:
        """Every message file in ``new/`` and ``cur/``."""
        for sub in ("new", "cur"):
            for entry in os.scandir(os.path.join(self.dir, sub)):
                if entry.is_file() and not entry.name.startswith("."):
                    yield _path(entry.path)


class MaildirBatch:
    """Messages written to ``tmp/`` and made durable together, then published together.

    The order is the durability promise of ``deliver`` amortised over a batch: every file
    is fsynced (one ``syncfs`` of the file system when available and the batch is big
    enough, else one fsync per file) before any of them is renamed into ``new/``/``cur/``,
    and the directories are fsynced once after the renames. Only after ``commit`` returns
    may a caller record the messages as stored (and, for POP3, delete them on the server).
    """

    #: Below this many files, per-file fsyncs are cheaper than a whole-filesystem syncfs.
    SYNCFS_MIN = 4

    def __init__(self, maildir: Maildir) -> None:
        self.maildir = maildir
        self.pending: list[PendingMessage] = []
        self.bytes = 0

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, message: PendingMessage) -> None:
        """Take a message whose bytes are all written (it is closed here, not fsynced)."""
        message.finish(fsync=False)
        self.pending.append(message)
        self.bytes += message.size

    def commit(self) -> list[Path]:
        """Make every message durable, publish them, fsync the directories; return paths."""
        return [_path(name) for name in self.commit_names()]

    def commit_names(self) -> list[str]:
        """``commit``, returning the final paths as ``str``."""
        if not self.pending:
            return []
        if len(self.pending) < self.SYNCFS_MIN or not _syncfs(self.maildir.sub("tmp")):
            for message in self.pending:
                _fsync_path(message.tmp_name)
        paths = [message.publish_name(sync_dir=False) for message in self.pending]
        self.maildir.sync()
        self.pending = []
        self.bytes = 0
        return paths

    def commit_names_fsync_each(self, threads: int = 8) -> list[str]:
        """``commit_names`` with one fsync per file, ``threads`` files at a time.

        For small batches on a busy machine: ``syncfs`` also waits for everything else
        the file system holds unwritten, so its cost is anyone's guess; fsyncs of our own
        files are bounded by them, and concurrent ones share the file system's journal
        commits. (Added for imap-sync; same promise as ``commit_names``.)
        """
        if not self.pending:
            return []
        names = [message.tmp_name for message in self.pending]
        if len(names) < self.SYNCFS_MIN or threads <= 1:
            for name in names:
                _fsync_path(name)
        else:
            import threading

            errors: list[BaseException] = []

            def work(part: list[str]) -> None:
                try:
                    for name in part:
                        _fsync_path(name)
                except BaseException as exc:  # re-raised below, in the caller's thread
                    errors.append(exc)

            workers = [threading.Thread(target=work, args=(names[i::threads],), daemon=True)
                       for i in range(min(threads, len(names)))]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if errors:
                raise errors[0]
        paths = [message.publish_name(sync_dir=False) for message in self.pending]
        self.maildir.sync()
        self.pending = []
        self.bytes = 0
        return paths

    def abort(self) -> None:
        for message in self.pending:
            message.abort()
        self.pending = []
        self.bytes = 0


def _fsync_path(path: str) -> None:
    try:
        fsync_file(path)
    except OSError as exc:
        raise LocalIOError(f"cannot store {path}: {exc.strerror or exc}") from exc


def _syncfs(path: str) -> bool:
    """Flush the whole file system holding ``path`` (Linux ``syncfs``); False if unavailable.

    One syncfs replaces N fsyncs for a batch; it is what mbsync-style batching needs.
    """
    import ctypes
    import ctypes.util

    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        except OSError:
            _LIBC = False
    if _LIBC is False or not hasattr(_LIBC, "syncfs"):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC.syncfs(fd) != 0:
            raise LocalIOError(f"syncfs {path} failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return True


_LIBC: Any = None


class PendingMessage:
    """A message being written into ``tmp/`` piece by piece (for push-style streams).

    ``Maildir.deliver`` pulls chunks from an iterable; a protocol client that pushes body
    chunks to a sink uses this instead: ``write`` each chunk, then ``commit`` (same
    durability promise as ``deliver``) or ``abort`` (nothing is left behind).
    """

    def __init__(self, maildir: Maildir, name: str, flags: str | None) -> None:
        self.maildir = maildir
        self.name = name
        self.flags = flags
        self.size = 0
        self.tmp_name = os.path.join(maildir.dir, "tmp", name)
        try:
            self._fd: int | None = os.open(
                self.tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
            )
        except FileExistsError:
            os.unlink(self.tmp_name)  # a leftover of an interrupted run with the same key
            self._fd = os.open(self.tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise LocalIOError(f"cannot create {self.tmp_name}: {exc.strerror}") from exc

    @property
    def tmp(self) -> Path:
        """The file in ``tmp/`` (``tmp_name`` as a ``Path``)."""
        return _path(self.tmp_name)

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None, "message already committed or aborted"
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.abort()
            raise LocalIOError(f"cannot write {self.tmp_name}: {exc.strerror or exc}") from exc
        self.size += len(chunk)

    def commit(self, *, fsync: bool = True, sync_dir: bool = True) -> Path:
        """fsync, rename into ``new/`` (or ``cur/`` with flags); return the final path."""
        self.finish(fsync=fsync)
        return self.publish(sync_dir=sync_dir)

    def finish(self, *, fsync: bool = True) -> None:
        """Close the file in ``tmp/`` (fsynced unless the caller syncs a whole batch)."""
        assert self._fd is not None, "message already finished or aborted"
        fd, self._fd = self._fd, None
        try:
            try:
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.abort()
            raise LocalIOError(f"cannot store {self.tmp_name}: {exc.strerror or exc}") from exc

    def publish(self, *, sync_dir: bool = True) -> Path:
        """Rename the finished (and durable) file into ``new/`` or ``cur/``."""
        return _path(self.publish_name(sync_dir=sync_dir))

    def publish_name(self, *, sync_dir: bool = True) -> str:
        """``publish``, returning the final path as a ``str``."""
        if self.flags is None:
            folder = os.path.join(self.maildir.dir, "new")
            final = os.path.join(folder, self.name)
        else:
            folder = os.path.join(self.maildir.dir, "cur")
            final = os.path.join(folder, self.name + flags_suffix(self.flags))
        try:
            os.rename(self.tmp_name, final)
            if sync_dir:
                fsync_dir(folder)
        except OSError as exc:
            self.abort()
            raise LocalIOError(f"cannot store {self.tmp_name}: {exc.strerror or exc}") from exc
        return final

    def abort(self) -> None:
        """Drop the partial message (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.tmp_name)
        except OSError:
            pass


def begin_message(maildir: Maildir, *, key: str | None = None, flags: str | None = None
                  ) -> PendingMessage:
    """Start a message in ``maildir`` (``unique_name(key)``); see ``PendingMessage``."""
    return PendingMessage(maildir, unique_name(key), flags)
