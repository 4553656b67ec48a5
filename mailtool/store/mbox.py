"""mbox writer in the mboxrd dialect, locked and durable.

Theory: each message is appended as a ``From `` separator line, the message with every line
matching ``>*From `` given one more ``>`` (mboxrd: reversible, unlike mboxo), a final line
end if missing, and one empty line. Writers exclude each other with a dot-lock
(``FILE.lock``, created with ``O_EXCL``; the convention of procmail and mutt, also honoured
over NFS) and an ``fcntl`` lock on the file itself. After the append the file is fsynced; if
anything fails in the middle, the file is truncated back to where the message began, so a
reader never sees half a message.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from mailtool.errors import CantCreateError, LocalIOError, TempFailError

# Paths are ``str`` (no pathlib at start-up); the From_ regex is compiled at first use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable
    from pathlib import Path
    from types import TracebackType

#: A dot-lock older than this is taken to be left by a dead process and removed.
STALE_DOTLOCK = 300.0

#: How long we wait for another writer's lock before giving up (exit 75: try later).
LOCK_WAIT = 30.0

#: A partial line at a chunk boundary is held back while it could still become a
#: ``>*From `` line; beyond this length it is written unquoted (bounded memory).
MAX_HELD = 64 * 1024

_FROM_LINE: re.Pattern[bytes] | None = None


def _quote_from(data: bytes) -> bytes:
    """``>``-quote every line of ``data`` that starts with ``>*From `` (mboxrd)."""
    global _FROM_LINE
    if b"From " not in data:
        return data  # the usual chunk: nothing to quote, no regex needed
    if _FROM_LINE is None:
        import re

        _FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)
    return _FROM_LINE.sub(rb">\1", data)


def _prefix_of_from(tail: bytes) -> bool:
    rest = tail.lstrip(b">")
    return len(rest) < 5 and b"From "[: len(rest)] == rest


class MboxrdQuoter:
    """Incremental mboxrd quoting of a message with LF line ends."""

    def __init__(self) -> None:
        self._held = b""
        self._at_line_start = True
        self.last_byte = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk if self._held else chunk
        self._held = b""
        if not data:
            return b""
        head = b""
        if not self._at_line_start:
            nl = data.find(b"\n")
            if nl < 0:
                self.last_byte = data[-1:]
                return data
            head, data = data[: nl + 1], data[nl + 1 :]
        last_nl = data.rfind(b"\n")
        complete, tail = data[: last_nl + 1], data[last_nl + 1 :]
        out = head + _quote_from(complete)
        if tail and _prefix_of_from(tail) and len(tail) <= MAX_HELD:
            self._held = tail
            self._at_line_start = True
        elif tail:
            out += _quote_from(tail)
            self._at_line_start = False
        else:
            self._at_line_start = True
        if out:
            self.last_byte = out[-1:]
        return out

    def finish(self) -> bytes:
        """The held tail, a final LF if the message lacks one, and the separating blank line."""
        out = self._held
        self._held = b""
        if out:
            self.last_byte = out[-1:]
        if self.last_byte not in (b"\n", b""):
            out += b"\n"
        return out + b"\n"


def quote_mboxrd(message: bytes) -> bytes:
    """Whole-message form of ``MboxrdQuoter`` (tests)."""
    quoter = MboxrdQuoter()
    return quoter.feed(message) + quoter.finish()


def from_line(sender: str = "MAILER-DAEMON", when: float | None = None) -> bytes:
    """``From sender Thu Jan  1 00:00:00 1970`` (asctime format, UTC)."""
    stamp = time.asctime(time.gmtime(when if when is not None else time.time()))
    safe = "".join(c for c in sender if 0x21 <= ord(c) < 0x7F) or "MAILER-DAEMON"
    return f"From {safe} {stamp}\n".encode("ascii")


class _Locked:
    """The context manager ``Mbox.locked`` returns (contextlib-free)."""

    def __init__(self, mbox: Mbox, wait: float) -> None:
        self.mbox = mbox
        self.wait = wait

    def __enter__(self) -> Mbox:
        mbox = self.mbox
        mbox._take_dotlock(self.wait)
        try:
            try:
                fd = os.open(mbox.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise CantCreateError(f"cannot open mbox {mbox.path}: {exc.strerror}") from exc
            try:
                mbox._lock_fd(fd, self.wait)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            mbox._drop_dotlock()
            raise
        mbox._fd = fd
        return mbox

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        mbox = self.mbox
        fd, mbox._fd = mbox._fd, None
        try:
            if fd is not None:
                os.close(fd)  # releases the fcntl lock
        finally:
            mbox._drop_dotlock()


class Mbox:
    """One mbox file. Use ``with mbox.locked():`` around ``append`` calls.

    Attributes:
        path: the file, as a ``str``.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None
        self._dotlock: str | None = None

    def locked(self, *, wait: float = LOCK_WAIT) -> _Locked:
        """Hold the dot-lock and the fcntl lock (in that order) for a series of appends."""
        return _Locked(self, wait)

    def _take_dotlock(self, wait: float) -> None:
        lock = self.path + ".lock"
        deadline = time.monotonic() + wait
        parent = os.path.dirname(self.path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise CantCreateError(f"cannot create {parent}: {exc.strerror}") from exc
        while True:
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                try:
                    age = time.time() - os.stat(lock).st_mtime
                except FileNotFoundError:
                    continue
                if age > STALE_DOTLOCK:
                    try:
                        os.unlink(lock)
                    except FileNotFoundError:
                        pass
                    continue
                if time.monotonic() > deadline:
                    raise TempFailError(
                        f"mbox {self.path} is locked ({lock} exists)", step="locking mbox"
                    ) from None
                time.sleep(0.1)  # polling another process's lock: there is no event
                continue
            except OSError as exc:
                raise CantCreateError(f"cannot create {lock}: {exc.strerror}") from exc
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            self._dotlock = lock
            return

    def _drop_dotlock(self) -> None:
        if self._dotlock is not None:
            try:
                os.unlink(self._dotlock)
            except OSError:
                pass
            self._dotlock = None

    def _lock_fd(self, fd: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise LocalIOError(f"cannot lock {self.path}: {exc.strerror}") from exc
                if time.monotonic() > deadline:
                    raise TempFailError(
                        f"mbox {self.path} is locked by another process", step="locking mbox"
                    ) from exc
                time.sleep(0.1)

    def size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def append(
        self,
        chunks: Iterable[bytes],
        *,
        sender: str = "MAILER-DAEMON",
        when: float | None = None,
        fsync: bool = True,
    ) -> int:
        """Append one message (LF line ends); return the offset where it starts.

        Raises:
            LocalIOError: writing failed; the file is truncated back to its old size.
        """
        if self._fd is None:
            raise RuntimeError("Mbox.append outside locked()")
        fd = self._fd
        start = os.fstat(fd).st_size
        quoter = MboxrdQuoter()
        try:
            self._write(fd, from_line(sender, when))
            for chunk in chunks:
                self._write(fd, quoter.feed(chunk))
            self._write(fd, quoter.finish())
            if fsync:
                os.fsync(fd)
        except BaseException as exc:
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise LocalIOError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            raise
        return start

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (crash recovery; under the lock)."""
        if self._fd is None:
            raise RuntimeError("Mbox.truncate outside locked()")
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def count_from_lines(path: Path | str, offset: int, chunk: int = 1 << 20
                     ) -> tuple[bool, int]:
    """(starts with a From_ line at ``offset``, number of From_ lines from there to EOF).

    Streams the file; used to decide whether an unrecorded append can be rolled back.
    """
    starts = False
    count = 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        first = handle.read(5)
        starts = first == b"From "
        if starts:
            count = 1
        prev = first[-1:] if first else b""
        carry = prev
        while True:
            data = handle.read(chunk)
            if not data:
                break
            block = carry + data
            count += block.count(b"\nFrom ")
            carry = block[-5:]
    return starts, count
