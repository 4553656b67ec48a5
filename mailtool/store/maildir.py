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
from collections.abc import Iterable
from pathlib import Path

from mailtool.errors import CantCreateError, LocalIOError
from mailtool.store.atomic import fsync_dir

_counter = itertools.count()
_SUBDIRS = ("tmp", "new", "cur")

#: Maildir info flags in the order the spec requires (ASCII order).
FLAG_ORDER = "DFPRST"


def _hostname() -> str:
    host = os.uname().nodename or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072")


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
    """One Maildir folder (``cur``, ``new``, ``tmp``)."""

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        self.path = Path(path)
        if create:
            self.create()

    def create(self) -> None:
        try:
            for sub in _SUBDIRS:
                (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise CantCreateError(f"cannot create Maildir {self.path}: {exc.strerror}") from exc

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
        name = unique_name(key)
        tmp = self.path / "tmp" / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            os.unlink(tmp)  # a leftover of an interrupted run with the same key
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise LocalIOError(f"cannot create {tmp}: {exc.strerror}") from exc
        try:
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise LocalIOError(f"cannot write {tmp}: {exc.strerror or exc}") from exc
            raise
        if flags is None:
            final = self.path / "new" / name
        else:
            final = self.path / "cur" / (name + flags_suffix(flags))
        try:
            os.rename(tmp, final)
            if sync_dir:
                fsync_dir(final.parent)
        except OSError as exc:
            raise LocalIOError(f"cannot move {tmp} into place: {exc.strerror}") from exc
        return final

    def sync(self) -> None:
        """fsync ``new/`` and ``cur/`` (after a batch delivered with ``sync_dir=False``)."""
        for sub in ("new", "cur"):
            fsync_dir(self.path / sub)

    def messages(self) -> Iterable[Path]:
        """Every message file in ``new/`` and ``cur/``."""
        for sub in ("new", "cur"):
            for entry in os.scandir(self.path / sub):
                if entry.is_file() and not entry.name.startswith("."):
                    yield Path(entry.path)


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
        self.tmp = maildir.path / "tmp" / name
        try:
            self._fd: int | None = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            os.unlink(self.tmp)  # a leftover of an interrupted run with the same key
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise LocalIOError(f"cannot create {self.tmp}: {exc.strerror}") from exc

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None, "message already committed or aborted"
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.abort()
            raise LocalIOError(f"cannot write {self.tmp}: {exc.strerror or exc}") from exc
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
            raise LocalIOError(f"cannot store {self.tmp}: {exc.strerror or exc}") from exc

    def publish(self, *, sync_dir: bool = True) -> Path:
        """Rename the finished (and durable) file into ``new/`` or ``cur/``."""
        if self.flags is None:
            final = self.maildir.path / "new" / self.name
        else:
            final = self.maildir.path / "cur" / (self.name + flags_suffix(self.flags))
        try:
            os.rename(self.tmp, final)
            if sync_dir:
                fsync_dir(final.parent)
        except OSError as exc:
            self.abort()
            raise LocalIOError(f"cannot store {self.tmp}: {exc.strerror or exc}") from exc
        return final

    def abort(self) -> None:
        """Drop the partial message (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def begin_message(maildir: Maildir, *, key: str | None = None, flags: str | None = None
                  ) -> PendingMessage:
    """Start a message in ``maildir`` (``unique_name(key)``); see ``PendingMessage``."""
    return PendingMessage(maildir, unique_name(key), flags)
