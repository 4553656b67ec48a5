"""Advisory locks (``fcntl.flock``) for the outbox.

Two locks:

* the run lock (``outbox/run.lock``): one ``queue run`` at a time walks the spool; a second
  one started by cron while the first still works finds it taken and leaves quietly;
* an entry lock on each entry's ``message`` file (written once, never replaced, so the lock
  stays on the same inode for the entry's whole life): whoever delivers, drops or reports an
  entry holds it, so no message is ever sent by two processes at once. ``queue flush`` and
  a run started while another holds the run lock still cannot collide on an entry.

``flock`` locks belong to the open file and are released by the kernel when the process
dies (kill -9 included): a crashed runner never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os

# Not ``typing.TYPE_CHECKING``: nothing here is needed at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType


class Lock:
    """An exclusive lock on ``path`` (created when missing, mode 0600)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = path
        self.create = create
        self.fd: int | None = None

    def acquire(self, *, blocking: bool = False) -> bool:
        """Take the lock; False when another process holds it (``blocking=False``).

        Raises:
            FileNotFoundError: ``path`` is gone and ``create`` is False.
        """
        flags = os.O_RDWR | (os.O_CREAT if self.create else 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
