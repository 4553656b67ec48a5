"""The outbox spool: one file per queued message, plus its state once it has changed.

Layout (mode 0700)::

    outbox/
      run.lock             held by ``queue run`` (see lock.py)
      tmp/ID               an entry being written
      queue/ID             one line of JSON (the entry's first state: envelope, recipients,
                           route), then the message as it goes out (CRLF, Bcc removed,
                           rewritten); written once, never changed; its flock is the entry
                           lock
      queue/ID.state       the entry's current state (per-recipient status, attempt
                           history, next attempt) once it differs from the first one

An entry is written in ``tmp/``, fsynced, renamed into ``queue/`` and ``queue/`` fsynced:
one fsync of the file and one of the directory, the whole cost of spooling a message
before its first attempt (``mailtool-sendmail``). A reader never sees half an entry; a
crash leaves at most a file in ``tmp/`` that is cleaned up later (after 36 hours, as
Maildir does, because a slow writer may still be at work).

``ID.state`` is replaced atomically (temp file, fsync, rename, directory fsync) after
every transaction that leaves something to remember, so a crash at any moment leaves the
old state or the new one. Each recipient is ``pending``, ``accepted``, ``rejected`` or
``expired``; only ``pending`` ones are ever sent to again. A transaction that settles the
last pending recipients with nothing left to report removes the entry instead (one
unlink: atomic, and a kill -9 after it cannot resurrect the entry). That removal is not
fsynced: after a power cut (not a kill) it may be undone, and the message is then sent
again: a duplicate, never a loss.

The window: between the server's final ``250`` arriving on the socket and the unlink of
the entry (or the rename of the new state) there is at most one small write and two
fsyncs (milliseconds). A kill -9 inside exactly that window makes the next run send again
to the recipients of that one transaction: the duplicate RFC 1047 describes, which no SMTP
client can rule out without server help. Everything is done to keep the window that
small: the state is written from the delivery's per-transaction hook, before QUIT and
before the next transaction or route, recipients of one message go in one transaction
(never one per recipient, which would multiply the windows), and nothing else (reports,
bounces) happens before it. A kill anywhere else neither loses a recipient nor sends to
one twice.
"""

from __future__ import annotations

import os
import time

from mailtool.errors import CantCreateError, ConfigError, UsageError
from mailtool.outbox.lock import Lock
from mailtool.store.atomic import fsync_dir, fsync_file, json_line

# Not ``typing.TYPE_CHECKING``: spooling a message (mailtool-sendmail) imports neither
# typing nor pathlib nor json; paths here are ``str``.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

PENDING = "pending"
ACCEPTED = "accepted"
REJECTED = "rejected"
EXPIRED = "expired"

#: An entry left in tmp/ longer than this belongs to a writer that died (Maildir's rule).
STALE_TMP = 36 * 3600.0
#: Attempts kept in an entry's history (the first ones and the latest ones).
MAX_HISTORY = 40
#: Our entry names: seconds.pid.random (no "/", ":" or leading dot, sortable by age).
_ID_PATTERN = r"^[0-9]{1,12}\.[0-9]{1,10}\.[0-9a-f]{8,32}$"


def _is_id(name: str) -> bool:
    import re  # compiled once by re's cache, and only when the spool is read

    return re.match(_ID_PATTERN, name) is not None

STATE_VERSION = 2
#: Suffix of an entry's state file (its first state is the first line of the entry).
STATE_SUFFIX = ".state"


def default_path(account: Any = None) -> str:
    """The account's ``outbox`` setting, else ``state_dir()/outbox``."""
    from mailtool.config import state_dir_str

    configured = account.get("outbox") if account is not None else None
    if configured:
        return os.path.expanduser(str(configured))
    return os.path.join(state_dir_str(), "outbox")


def _reply_text(out: dict[str, Any]) -> str:
    parts = [str(x) for x in (out.get("code"), out.get("enhanced")) if x]
    text = out.get("text") or ""
    return " ".join(parts + ([text] if text else [])).strip()


class Entry:
    """One queued message: its file, where its message starts, and its state."""

    __slots__ = ("id", "offset", "outbox", "removed", "state")

    def __init__(self, outbox: Outbox, id: str, state: dict[str, Any], offset: int) -> None:
        self.outbox = outbox
        self.id = id
        self.state = state
        self.offset = offset  # where the message starts in the entry file
        self.removed = False

    def __repr__(self) -> str:
        return f"Entry({self.id!r})"

    @property
    def path(self) -> str:
        return os.path.join(self.outbox.queue_dir, self.id)

    @property
    def state_path(self) -> str:
        return os.path.join(self.outbox.queue_dir, self.id + STATE_SUFFIX)

    @property
    def sender(self) -> str:
        return str(self.state["sender"])

    @property
    def created(self) -> float:
        return float(self.state["created"])

    @property
    def next_attempt(self) -> float:
        return float(self.state.get("next_attempt") or 0.0)

    @property
    def recipients(self) -> list[dict[str, Any]]:
        return list(self.state["recipients"])

    @property
    def pending(self) -> list[str]:
        return [r["address"] for r in self.state["recipients"] if r["status"] == PENDING]

    @property
    def attempts(self) -> list[dict[str, Any]]:
        return list(self.state.get("attempts", []))

    @property
    def attempt_count(self) -> int:
        return int(self.state.get("attempt_count", len(self.attempts)))

    @property
    def last_reply(self) -> str:
        return str(self.state.get("last_reply") or "")

    def record(self, outcomes: Iterable[Any], now: float | None = None) -> None:
        """Record final outcomes (accepted/rejected) of recipients, durably, at once.

        Deferred outcomes only update the last reply: the recipient stays pending. Called
        from the delivery hook right after a transaction's final reply.
        """
        now = time.time() if now is None else now
        by_address = {r["address"].lower(): r for r in self.state["recipients"]}
        changed = False
        for out in outcomes:
            rec = by_address.get(out.recipient.lower())
            if rec is None or rec["status"] != PENDING:
                continue
            info = {"step": out.step, "code": out.code, "enhanced": out.enhanced,
                    "text": out.text, "host": out.host, "exit_code": out.exit_code, "at": now}
            if out.status in (ACCEPTED, REJECTED):
                rec.update(info, status=out.status)
                changed = True
            else:
                rec["last"] = info
        if not changed:
            return
        if not self.pending and not (self.state.get("bounce_to") and any(
                r["status"] == REJECTED for r in self.state["recipients"])):
            # Settled, nothing to report: the entry goes now (one atomic unlink).
            self.outbox.remove(self, durable=False)
            return
        self.save()

    def add_attempt(self, outcomes: Iterable[Any], now: float, next_attempt: float | None,
                    *, save: bool = True) -> None:
        """Append one attempt to the history and set the next attempt time; save (unless
        the entry is about to be removed: nothing would read it)."""
        outs = list(outcomes)
        deferred = [o for o in outs if o.status == "deferred"]
        summary = deferred[0] if deferred else (outs[0] if outs else None)
        reply = ""
        if summary is not None:
            reply = _reply_text({"code": summary.code, "enhanced": summary.enhanced,
                                 "text": summary.text})
        attempt = {
            "at": now,
            "host": summary.host if summary is not None else None,
            "step": summary.step if summary is not None else None,
            "reply": reply,
            "accepted": sum(1 for o in outs if o.status == ACCEPTED),
            "rejected": sum(1 for o in outs if o.status == REJECTED),
            "deferred": len(deferred),
        }
        history = list(self.state.get("attempts", []))
        history.append(attempt)
        if len(history) > MAX_HISTORY:
            history = history[:5] + history[-(MAX_HISTORY - 5):]
        self.state["attempts"] = history
        self.state["attempt_count"] = self.attempt_count + 1
        if deferred:
            self.state["last_reply"] = reply
        if next_attempt is not None:
            self.state["next_attempt"] = next_attempt
        if save:
            self.save()

    def expire(self, now: float, reason: str) -> list[dict[str, Any]]:
        """Mark every pending recipient expired (given up); save; return them."""
        gone = []
        for rec in self.state["recipients"]:
            if rec["status"] == PENDING:
                last = rec.get("last") or {}
                rec.update(status=EXPIRED, at=now, text=reason, code=last.get("code"),
                           enhanced=last.get("enhanced"), host=last.get("host"),
                           step="queue lifetime", exit_code=69)
                gone.append(rec)
        self.save()
        return gone

    def make_durable(self) -> None:
        """fsync the entry file and ``queue/`` (an entry created with ``durable=False``);
        nothing to do once it is removed.

        Raises:
            CantCreateError: the disk refused (the message may not survive a power cut).
        """
        if self.removed:
            return
        try:
            fsync_file(self.path)
            fsync_dir(self.outbox.queue_dir)
        except FileNotFoundError:
            self.removed = True  # delivered and removed meanwhile
        except OSError as exc:
            raise CantCreateError(f"cannot make {self.path} durable: {exc.strerror or exc}",
                                  step="queueing") from exc

    def save(self) -> None:
        if self.removed:
            return
        from mailtool.store.atomic import atomic_write

        atomic_write(self.state_path, _dump(self.state), durable=True)

    def message(self) -> Any:
        """The message, as a ``compose.MessageSource`` read in place (close it)."""
        from mailtool.compose import MessageSource

        handle = open(self.path, "rb")  # noqa: SIM115 - closed with the source
        try:
            return MessageSource.from_file(handle, self.offset)
        except BaseException:
            handle.close()
            raise

    def lock(self) -> Lock:
        """The entry lock (on the entry file, whose inode never changes)."""
        return Lock(self.path, create=False)

    def summary(self, now: float) -> dict[str, Any]:
        """What ``queue list`` shows."""
        return {
            "id": self.id,
            "age": max(0.0, now - self.created),
            "created": self.created,
            "sender": self.sender,
            "recipients": self.pending,
            "size": self.state.get("size"),
            "attempts": self.attempt_count,
            "last_reply": self.last_reply,
            "next_attempt": self.next_attempt,
        }


def _rmtree(path: str) -> None:
    """Delete an entry directory (files only, no subdirectories); errors ignored. Not
    ``shutil.rmtree``: importing shutil costs mailtool-sendmail more than this does."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _dump(state: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(state, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


def _first_line(state: dict[str, Any]) -> bytes:
    """The first state as one line (JSON escapes every line end inside strings)."""
    return json_line(state)


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class Outbox:
    """A spool directory (created on first use, mode 0700)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.tmp_dir = os.path.join(self.path, "tmp")
        self.queue_dir = os.path.join(self.path, "queue")

    def ensure(self) -> Outbox:
        try:
            for directory in (self.path, self.tmp_dir, self.queue_dir):
                try:
                    os.mkdir(directory, 0o700)
                except FileExistsError:
                    pass
                except FileNotFoundError:  # the parents too (mode as Path.mkdir gives them)
                    os.makedirs(directory, 0o700, exist_ok=True)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            raise CantCreateError(f"cannot create the outbox {self.path}: "
                                  f"{exc.strerror or exc}", step="outbox") from exc
        return self

    def run_lock(self) -> Lock:
        self.ensure()
        return Lock(os.path.join(self.path, "run.lock"))

    # --- creating -----------------------------------------------------------------------

    def create(self, chunks: Iterable[bytes], *, sender: str, recipients: list[str],
               now: float, route: dict[str, Any], account: str | None = None,
               bounce_to: str | None = None, message_id: str | None = None,
               hold: bool = False, durable: bool = True) -> tuple[Entry, Lock | None]:
        """Write a new entry and publish it in ``queue/``, durably unless ``durable=False``.

        With ``hold`` the entry lock is taken before the entry becomes visible and
        returned: the caller delivers it and no ``queue run`` can touch it meanwhile.
        ``durable=False`` leaves the two fsyncs (file, directory) to ``Entry.make_durable``,
        which the caller must run before it reports the message as accepted or queued,
        unless the entry is gone by then (delivered): a kill -9 cannot lose a written file,
        only a power cut can, and a power cut before the report loses nothing the caller
        was told was safe.

        Raises:
            CantCreateError: the spool cannot be written (disk full, permissions).
        """
        self.ensure()
        entry_id = f"{int(now)}.{os.getpid()}.{os.urandom(6).hex()}"
        tmp = os.path.join(self.tmp_dir, entry_id)
        lock: Lock | None = None
        state = {
            "version": STATE_VERSION,
            "id": entry_id,
            "created": now,
            "sender": sender,
            "message_id": message_id,
            "size": 0,
            "account": account,
            "route": route,
            "bounce_to": bounce_to,
            "recipients": [{"address": r, "status": PENDING} for r in recipients],
            "attempts": [],
            "attempt_count": 0,
            "next_attempt": now,
            "last_reply": "",
        }
        try:
            first = _first_line(state)  # its size is the file's minus this line's
            offset = len(first)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                size = _write_all(fd, first) - offset
                for chunk in chunks:
                    size += _write_all(fd, chunk)
                if durable:
                    os.fsync(fd)
                if hold:
                    lock = Lock(tmp, create=False)
                    lock.acquire(blocking=True)  # nobody else can know this file yet
            finally:
                os.close(fd)
            state["size"] = size
            os.rename(tmp, os.path.join(self.queue_dir, entry_id))
            if durable:
                fsync_dir(self.queue_dir)
        except OSError as exc:
            if lock is not None:
                lock.release()
            _unlink(tmp)
            raise CantCreateError(f"cannot write to the outbox {self.path}: "
                                  f"{exc.strerror or exc}", step="queueing") from exc
        return Entry(self, entry_id, state, offset), lock

    # --- reading ------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Entry ids, oldest first."""
        try:
            names = os.listdir(self.queue_dir)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if _is_id(n)),
                      key=lambda n: (int(n.split(".", 1)[0]), n))

    def load(self, entry_id: str) -> Entry | None:
        """The entry, or None when it is gone (delivered or dropped meanwhile).

        Raises:
            ConfigError: its state is not valid JSON (we never guess over state).
        """
        if not _is_id(entry_id):
            return None
        from mailtool.store.atomic import read_json

        path = os.path.join(self.queue_dir, entry_id)
        try:
            with open(path, "rb") as handle:
                first = handle.readline()
                size = os.fstat(handle.fileno()).st_size - len(first)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CantCreateError(f"cannot read {path}: {exc.strerror or exc}") from exc
        state = read_json(os.path.join(self.queue_dir, entry_id + STATE_SUFFIX))
        if state is None:
            import json

            try:
                state = json.loads(first)
            except ValueError:
                state = None
            if not isinstance(state, dict):
                raise ConfigError(f"outbox entry {path} is corrupt (no state on its first "
                                  "line); move it away")
            state["size"] = size
        return Entry(self, entry_id, state, len(first))

    def entries(self) -> Iterator[Entry]:
        for entry_id in self.ids():
            entry = self.load(entry_id)
            if entry is not None:
                yield entry

    def find(self, text: str) -> Entry:
        """The entry whose id is ``text`` or starts with it (unambiguously).

        Raises:
            UsageError: no such entry, or several match.
        """
        if text in self.ids():
            entry = self.load(text)
            if entry is not None:
                return entry
        matches = [i for i in self.ids() if i.startswith(text)] if text else []
        if len(matches) == 1:
            entry = self.load(matches[0])
            if entry is not None:
                return entry
        if len(matches) > 1:
            raise UsageError(f"queue id {text!r} is ambiguous: {', '.join(matches[:5])}")
        raise UsageError(f"no queued message {text!r} (see mailtool queue list)",
                         step="outbox")

    # --- removing -----------------------------------------------------------------------

    def remove(self, entry: Entry, *, durable: bool = True) -> None:
        """Take the entry out of ``queue/`` (one unlink: atomic), then its state; with
        ``durable`` the removal is fsynced too (``queue drop``, ``queue run``). Without,
        a power cut may bring the entry back: sent twice, never lost."""
        if entry.removed:
            return
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            entry.removed = True
            return
        except OSError as exc:
            raise CantCreateError(f"cannot remove {entry.path}: {exc.strerror or exc}",
                                  step="outbox") from exc
        entry.removed = True
        _unlink(entry.state_path)
        if durable:
            try:
                fsync_dir(self.queue_dir)
            except OSError as exc:
                raise CantCreateError(f"cannot remove {entry.path}: {exc.strerror or exc}",
                                      step="outbox") from exc

    def clean_tmp(self, now: float) -> None:
        """Delete what dead writers left: old files in ``tmp/``, states without an entry
        and old state temp files in ``queue/``."""
        for folder in (self.tmp_dir, self.queue_dir):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(folder, name)
                if folder == self.queue_dir:
                    if name.endswith(STATE_SUFFIX) and _is_id(name[:-len(STATE_SUFFIX)]):
                        if not os.path.exists(os.path.join(folder,
                                                           name[:-len(STATE_SUFFIX)])):
                            _unlink(path)
                        continue
                    if not (name.startswith(".") and name.endswith(".tmp")):
                        continue
                try:
                    old = now - os.stat(path).st_mtime > STALE_TMP
                except OSError:
                    continue
                if old or name.endswith(".gone"):
                    if os.path.isdir(path):
                        _rmtree(path)  # left by the spool layout of version 1
                    else:
                        _unlink(path)
