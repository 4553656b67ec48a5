"""The outbox spool: one directory per queued message, written Maildir-style.

Layout (mode 0700)::

    outbox/
      run.lock             held by ``queue run`` (see lock.py)
      tmp/ID/              an entry being written (or being removed: ``tmp/ID.gone``)
      queue/ID/message     the message as it goes out: CRLF, Bcc removed, rewritten;
                           written once, never changed; its flock is the entry lock
      queue/ID/state.json  envelope, per-recipient state, attempt history, next attempt

An entry is created in ``tmp/``: the message is written and fsynced, the state written
atomically, the directory fsynced, then the whole directory is renamed into ``queue/``
and ``queue/`` fsynced. A reader never sees half an entry; a crash leaves at most a
directory in ``tmp/`` that is cleaned up later (after 36 hours, as Maildir does, because a
slow writer may still be at work).

``state.json`` is replaced atomically (temp file, fsync, rename, directory fsync) after
every transaction, so a crash at any moment leaves the old state or the new one. Each
recipient is ``pending``, ``accepted``, ``rejected`` or ``expired``; only ``pending``
ones are ever sent to again.

The window: between the server's final ``250`` arriving on the socket and the rename of
the new ``state.json`` there is one small write and two fsyncs (milliseconds). A kill -9
inside exactly that window makes the next run send again to the recipients of that one
transaction: the duplicate RFC 1047 describes, which no SMTP client can rule out without
server help. Everything is done to keep the window that small: the state is written from
the delivery's per-transaction hook, before QUIT and before the next transaction or route,
recipients of one message go in one transaction (never one per recipient, which would
multiply the windows), and nothing else (reports, bounces, removal) happens before it.
A kill anywhere else neither loses a recipient nor sends to one twice.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailtool.errors import CantCreateError, UsageError
from mailtool.outbox.lock import Lock
from mailtool.store.atomic import atomic_write, fsync_dir, read_json

PENDING = "pending"
ACCEPTED = "accepted"
REJECTED = "rejected"
EXPIRED = "expired"

#: An entry left in tmp/ longer than this belongs to a writer that died (Maildir's rule).
STALE_TMP = 36 * 3600.0
#: Attempts kept in an entry's history (the first ones and the latest ones).
MAX_HISTORY = 40
#: Our entry names: seconds.pid.random (no "/", ":" or leading dot, sortable by age).
_ID = re.compile(r"^[0-9]{1,12}\.[0-9]{1,10}\.[0-9a-f]{8,32}$")
STATE_VERSION = 1


def default_path(account: Any = None) -> Path:
    """The account's ``outbox`` setting, else ``state_dir()/outbox``."""
    from mailtool.config import state_dir

    configured = account.get("outbox") if account is not None else None
    if configured:
        return Path(os.path.expanduser(str(configured)))
    return state_dir() / "outbox"


def _reply_text(out: dict[str, Any]) -> str:
    parts = [str(x) for x in (out.get("code"), out.get("enhanced")) if x]
    text = out.get("text") or ""
    return " ".join(parts + ([text] if text else [])).strip()


@dataclass
class Entry:
    """One queued message: its directory and its state."""

    outbox: Outbox
    id: str
    state: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.outbox.queue_dir / self.id

    @property
    def message_path(self) -> Path:
        return self.path / "message"

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
        if changed:
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

    def save(self) -> None:
        atomic_write(self.path / "state.json", _dump(self.state), durable=True)

    def open_message(self) -> Any:
        return open(self.message_path, "rb")

    def lock(self) -> Lock:
        """The entry lock (on the message file, whose inode never changes)."""
        return Lock(self.message_path, create=False)

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


def _rmtree(path: Path) -> None:
    """Delete an entry directory (files only, no subdirectories); errors ignored. Not
    ``shutil.rmtree``: importing shutil costs mailtool-sendmail more than this does."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(path / name)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _dump(state: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(state, sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()


class Outbox:
    """A spool directory (created on first use, mode 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp_dir = self.path / "tmp"
        self.queue_dir = self.path / "queue"

    def ensure(self) -> Outbox:
        try:
            for directory in (self.path, self.tmp_dir, self.queue_dir):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
        except OSError as exc:
            raise CantCreateError(f"cannot create the outbox {self.path}: "
                                  f"{exc.strerror or exc}", step="outbox") from exc
        return self

    def run_lock(self) -> Lock:
        self.ensure()
        return Lock(self.path / "run.lock")

    # --- creating -----------------------------------------------------------------------

    def create(self, chunks: Iterable[bytes], *, sender: str, recipients: list[str],
               now: float, route: dict[str, Any], account: str | None = None,
               bounce_to: str | None = None, message_id: str | None = None,
               hold: bool = False) -> tuple[Entry, Lock | None]:
        """Write a new entry durably and publish it in ``queue/``.

        With ``hold`` the entry lock is taken before the entry becomes visible and
        returned: the caller delivers it and no ``queue run`` can touch it meanwhile.

        Raises:
            CantCreateError: the spool cannot be written (disk full, permissions).
        """
        self.ensure()
        entry_id = f"{int(now)}.{os.getpid()}.{os.urandom(6).hex()}"
        tmp = self.tmp_dir / entry_id
        lock: Lock | None = None
        try:
            tmp.mkdir(mode=0o700)
            size = 0
            fd = os.open(tmp / "message", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    size += len(chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            state = {
                "version": STATE_VERSION,
                "id": entry_id,
                "created": now,
                "sender": sender,
                "message_id": message_id,
                "size": size,
                "account": account,
                "route": route,
                "bounce_to": bounce_to,
                "recipients": [{"address": r, "status": PENDING} for r in recipients],
                "attempts": [],
                "attempt_count": 0,
                "next_attempt": now,
                "last_reply": "",
            }
            atomic_write(tmp / "state.json", _dump(state), durable=True)
            if hold:
                lock = Lock(tmp / "message", create=False)
                lock.acquire(blocking=True)  # nobody else can know this file yet
            fsync_dir(tmp)
            os.rename(tmp, self.queue_dir / entry_id)
            fsync_dir(self.queue_dir)
            fsync_dir(self.tmp_dir)
        except OSError as exc:
            if lock is not None:
                lock.release()
            _rmtree(tmp)
            raise CantCreateError(f"cannot write to the outbox {self.path}: "
                                  f"{exc.strerror or exc}", step="queueing") from exc
        return Entry(self, entry_id, state), lock

    # --- reading ------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Entry ids, oldest first."""
        try:
            names = os.listdir(self.queue_dir)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if _ID.match(n)),
                      key=lambda n: (int(n.split(".", 1)[0]), n))

    def load(self, entry_id: str) -> Entry | None:
        """The entry, or None when it is gone (delivered or dropped meanwhile)."""
        if not _ID.match(entry_id):
            return None
        state = read_json(self.queue_dir / entry_id / "state.json")
        if state is None:
            return None
        return Entry(self, entry_id, state)

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

    def remove(self, entry: Entry) -> None:
        """Take the entry out of ``queue/`` (one rename, made durable), then delete it."""
        self.ensure()
        gone = self.tmp_dir / f"{entry.id}.gone"
        try:
            os.rename(entry.path, gone)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CantCreateError(f"cannot remove {entry.path}: {exc.strerror or exc}",
                                  step="outbox") from exc
        fsync_dir(self.queue_dir)
        _rmtree(gone)

    def clean_tmp(self, now: float) -> None:
        """Delete what dead writers left in ``tmp/``."""
        try:
            names = os.listdir(self.tmp_dir)
        except FileNotFoundError:
            return
        for name in names:
            path = self.tmp_dir / name
            try:
                old = now - path.stat().st_mtime > STALE_TMP
            except OSError:
                continue
            if name.endswith(".gone") or old:
                _rmtree(path)
