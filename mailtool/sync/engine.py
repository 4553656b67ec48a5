"""Drive one-way IMAP -> Maildir sync: folders, facts from the server, plan, execution.

Theory of operation, per folder:

1. Read the first line of the state (``state.py``): its UIDVALIDITY, UIDNEXT,
   HIGHESTMODSEQ and message count. When LIST-STATUS (RFC 5819) gave the same four for
   the folder, it is unchanged: nothing else is read or sent for it.
2. Otherwise select it read-only (EXAMINE; ENABLE QRESYNC goes out before the first),
   with the QRESYNC parameters when the server offers QRESYNC and we know a
   HIGHESTMODSEQ, and read the state's records while the server answers.
3. UIDVALIDITY changed: pair the old messages with the new UIDs by Message-ID and
   size (``plan.rematch``); an ambiguous match stops the folder untouched.
4. Gather what changed: UIDs from our UIDNEXT on (UID SEARCH); with QRESYNC the
   VANISHED and FETCH FLAGS that SELECT reported; with CONDSTORE alone the flags
   CHANGEDSINCE our HIGHESTMODSEQ plus a UID SEARCH ALL when the message count says
   something was expunged; without either, one compact ``UID FETCH 1:n (FLAGS)``.
   Nothing new (same UIDNEXT and HIGHESTMODSEQ) costs one EXAMINE.
5. Plan (``plan.make_plan``), check the mass-delete guard, stop here on ``--dry-run``.
6. Execute. New messages: the journal is created first (it marks a run in progress, so
   only after an interrupted run is the folder scanned for files stored but not
   recorded); bodies stream (pipelined ``UID FETCH ... BODY.PEEK[]``) into ``tmp/``; a
   full batch is made durable (one ``syncfs`` or an fsync per file), renamed into
   ``new/``/``cur/`` and its directories fsynced on a helper thread while the next
   batch downloads, then journalled (one fsync). Removals start as soon as QRESYNC's
   VANISHED arrives (once the mass-delete guard passes on the same numbers): each file
   leaves the Maildir by a rename into ``tmp/`` and is unlinked on a helper thread.
   Flag changes rename files (no stat each: a file is looked for only when it moved)
   and update the records in place; the changed directories are fsynced on helper
   threads while the snapshot is rendered (only the changed records) and written; it
   replaces the old one once they and the unlinks are done, recording all of it with
   the new UIDNEXT and HIGHESTMODSEQ (RFC 7162: only after every change up to it is
   applied), and the journal goes.

The server is reached through the small ``Source`` protocol below, implemented over
``IMAPClient`` in ``source.py``, so the engine is tested with an in-memory source too.
"""

from __future__ import annotations

import os

from mailtool.errors import LocalIOError, MailtoolError
from mailtool.exitcodes import ExitCode
from mailtool.record import field, record
from mailtool.store.atomic import fsync_dir
from mailtool.store.lineends import CRLFToLF
from mailtool.store.maildir import (
    Maildir,
    MaildirBatch,
    PendingMessage,
    begin_message,
    unique_name,
)
from mailtool.sync.paths import FOLDER_MARKER, folder_path
from mailtool.sync.plan import (
    DEFAULT_MAX_DELETE_SHARE,
    FolderPlan,
    Identity,
    check_mass_delete,
    maildir_flags,
    make_plan,
    mass_delete_blocked,
    read_identity,
    rematch,
)
from mailtool.sync.state import (
    FolderState,
    Record,
    StateStore,
    message_key,
    parse_key,
    scan_keys,
)

# Not typing.TYPE_CHECKING: a sync run should not pay for importing typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path
    from typing import Any, Protocol

    from mailtool.sync.state import Header
else:
    Protocol = object  # the protocols below are for type checkers only

#: A batch ends after this many messages or bytes: one durability point (syncfs or
#: fsyncs, directory fsync, journal fsync) per batch instead of per message.
BATCH_MESSAGES = 500
BATCH_BYTES = 32 * 1024 * 1024
#: A final batch up to this many files is made durable with parallel per-file fsyncs.
SMALL_BATCH = 200


# -- what the engine needs from the server ----------------------------------------------
@record(frozen=True)
class FolderInfo:
    name: str  # decoded (UTF-8) name
    delimiter: str | None
    selectable: bool = True
    #: STATUS items the server listed with the folder (LIST-STATUS), upper-case names:
    #: UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ. Lets an unchanged folder be skipped
    #: without selecting it.
    status: dict[str, int] | None = field(default=None, compare=False)


@record
class Selected:
    """What SELECT/EXAMINE told us."""

    uidvalidity: int
    uidnext: int | None
    exists: int
    highestmodseq: int | None  # None: no CONDSTORE or NOMODSEQ
    #: With QRESYNC: UIDs expunged since our modseq, and UID -> flags changed since it.
    vanished: set[int] | None = None
    changed: dict[int, tuple[str, ...]] | None = None


class BodySink(Protocol):
    """Receives streamed message bodies, one message at a time."""

    def begin(self, uid: int | None, size: int | None, flags: Sequence[str] | None) -> None: ...
    def data(self, chunk: bytes) -> None: ...
    def end(self, uid: int, flags: Sequence[str] | None) -> None: ...
    def abort(self) -> None: ...


class Source(Protocol):
    """The IMAP operations a one-way sync uses."""

    qresync: bool
    condstore: bool

    def folders(self) -> list[FolderInfo]: ...
    def select(self, name: str, qresync: tuple[int, int] | None) -> Selected: ...
    def select_begin(self, name: str, qresync: tuple[int, int] | None, *,
                     on_vanished: Callable[[Iterable[int]], None] | None = None
                     ) -> Callable[[], Selected]: ...
    def search_from(self, first: int) -> list[int]: ...
    def search_all(self) -> set[int]: ...
    def fetch_flags(self, last: int, changedsince: int | None) -> dict[int, tuple[str, ...]]: ...
    def fetch_identities(self) -> dict[int, Identity]: ...
    def fetch_bodies(self, uids: Sequence[int], sink: BodySink) -> None: ...


class Progress(Protocol):
    def start(self, folder: str, total: int, total_bytes: int | None) -> None: ...
    def advance(self, messages: int, nbytes: int) -> None: ...
    def stop(self) -> None: ...


class _NoProgress:
    def start(self, folder: str, total: int, total_bytes: int | None) -> None:
        return None

    def advance(self, messages: int, nbytes: int) -> None:
        return None

    def stop(self) -> None:
        return None


@record
class SyncOptions:
    dry_run: bool = False
    keep_deleted: bool = False
    allow_mass_delete: bool = False
    max_delete_share: float = DEFAULT_MAX_DELETE_SHARE
    batch_messages: int = BATCH_MESSAGES
    batch_bytes: int = BATCH_BYTES
    progress: Callable[[], Progress] = _NoProgress


@record
class FolderResult:
    """What happened to one folder (the ``--json`` row)."""

    folder: str
    path: str
    status: str = "ok"  # ok | error
    mode: str = ""  # first | qresync | condstore | full | unchanged | rematch
    fetched: int = 0
    fetched_bytes: int = 0
    adopted: int = 0  # stored by an interrupted run, recognised by name
    flagged: int = 0
    deleted: int = 0
    kept: int = 0
    rematched: int = 0
    uidvalidity: int | None = None
    dry_run: bool = False
    would_fetch: list[int] = field(default_factory=list)
    would_flag: dict[int, str] = field(default_factory=dict)
    would_delete: list[int] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "folder": self.folder, "path": self.path, "status": self.status, "mode": self.mode,
            "fetched": self.fetched, "bytes": self.fetched_bytes, "adopted": self.adopted,
            "flags_changed": self.flagged, "deleted": self.deleted, "kept": self.kept,
            "rematched": self.rematched, "uidvalidity": self.uidvalidity,
        }
        if self.dry_run:
            data["dry_run"] = True
            data["would_fetch"] = len(self.would_fetch)
            data["would_change_flags"] = len(self.would_flag)
            data["would_delete"] = len(self.would_delete)
        if self.error is not None:
            data["error"] = self.error
            data["exit_code"] = self.exit_code
        return data


# -- choosing folders -------------------------------------------------------------------
def choose_folders(
    available: Iterable[FolderInfo],
    names: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[FolderInfo], list[str]]:
    """The folders to sync and the requested names the server does not have.

    Names compare exactly, except INBOX (any case); ``include``/``exclude`` are shell
    globs over the decoded names (``exclude`` wins).
    """
    selectable = [f for f in available if f.selectable]
    missing: list[str] = []
    if names:
        by_name = {("INBOX" if f.name.upper() == "INBOX" else f.name): f for f in selectable}
        chosen = []
        for name in names:
            key = "INBOX" if name.upper() == "INBOX" else name
            if key in by_name:
                if by_name[key] not in chosen:
                    chosen.append(by_name[key])
            else:
                missing.append(name)
    else:
        chosen = list(selectable)
    if include or exclude:
        import fnmatch
    if include:
        chosen = [f for f in chosen if any(fnmatch.fnmatchcase(f.name, p) for p in include)]
    if exclude:
        chosen = [f for f in chosen if not any(fnmatch.fnmatchcase(f.name, p) for p in exclude)]
    return chosen, missing


def _flag_target(rel: str, letters: str) -> str:
    """Where a message file goes for new flags (``new/`` -> ``cur/`` when it gains any)."""
    sub, name = rel.split("/", 1)
    if sub == "new" and not letters:
        return rel
    return f"cur/{name.split(':2,', 1)[0]}:2,{letters}"


def _unchanged(head: Header, uidvalidity: int | None, uidnext: int | None,
               highestmodseq: int | None, messages: int | None) -> bool:
    """The server folder is exactly as last synced (every counter known and equal)."""
    return (head.uidvalidity is not None and uidvalidity == head.uidvalidity
            and uidnext is not None and uidnext == head.uidnext
            and head.highestmodseq is not None and highestmodseq == head.highestmodseq
            and (messages is None or messages == head.live))


# -- the engine -------------------------------------------------------------------------
class _Writer:
    """The body sink: streams each message into ``tmp/``, publishes per batch."""

    def __init__(self, engine: FolderSync) -> None:
        self.engine = engine
        self.current: PendingMessage | None = None
        self.uid: int | None = None
        self.durable = MaildirBatch(engine.maildir)
        self.uids: list[int] = []  # parallel to self.durable.pending
        self.lf = CRLFToLF()
        self.background: _Durability | None = None  # the previous batch, being made durable

    def begin(self, uid: int | None, size: int | None, flags: Sequence[str] | None) -> None:
        """Start a message; ``uid`` may be unknown until ``end`` (server's item order)."""
        if self.current is not None:
            self.abort()
        eng = self.engine
        assert eng.state.uidvalidity is not None
        self.uid = uid
        letters = maildir_flags(flags) if flags is not None else None
        if letters is None and uid is not None:
            letters = eng.plan.fetch_flags.get(uid, "")
        key = message_key(eng.state.uidvalidity, uid) if uid is not None else None
        self.current = begin_message(eng.maildir, key=key, flags=letters or None)
        self.lf = CRLFToLF()

    def data(self, chunk: bytes) -> None:
        assert self.current is not None
        out = self.lf.feed(chunk)
        if out:
            self.current.write(out)

    def end(self, uid: int, flags: Sequence[str] | None) -> None:
        """The message is complete (the whole FETCH response arrived)."""
        pending, self.current = self.current, None
        assert pending is not None
        tail = self.lf.finish()
        if tail:
            pending.write(tail)
        eng = self.engine
        assert eng.state.uidvalidity is not None
        if self.uid != uid:  # named by key only now that the UID is known
            pending.name = unique_name(message_key(eng.state.uidvalidity, uid))
        if flags is not None:
            pending.flags = maildir_flags(flags) or None
        self.durable.add(pending)
        self.uids.append(uid)
        eng.progress.advance(1, pending.size)
        if (len(self.durable) >= eng.options.batch_messages
                or self.durable.bytes >= eng.options.batch_bytes):
            self.flush(wait=False)

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None

    def flush(self, *, wait: bool = True) -> None:
        """Make the batch durable, publish it, then journal it.

        With ``wait=False`` the durability work (syncfs or fsyncs, renames, directory
        fsyncs: mostly waiting for the disk) runs on a helper thread while the next batch
        downloads; its journal lines are written at the next ``flush``. A crash before
        then leaves published files the journal does not list: the next run knows it was
        interrupted (``StateStore.begin``) and adopts them by key.
        """
        self.settle()
        if not self.durable:
            return
        batch, uids = self.durable, self.uids
        self.durable, self.uids = MaildirBatch(self.engine.maildir), []
        sizes = [(uid, pending.flags or "", pending.size)
                 for uid, pending in zip(uids, batch.pending, strict=True)]
        if wait:
            # The last (often the only, e.g. a few new messages) batch: our own files'
            # fsyncs, in parallel, cost what they cost whatever else the machine writes;
            # syncfs would wait for all of that too.
            commit = (batch.commit_names_fsync_each if len(batch) <= SMALL_BATCH
                      else batch.commit_names)
            self._journal(sizes, commit())
        else:
            self.background = _Durability(batch, sizes)

    def settle(self) -> None:
        """Wait for the batch on the helper thread and journal it (raises its error)."""
        job, self.background = self.background, None
        if job is not None:
            self._journal(job.sizes, job.result())

    def _journal(self, sizes: list[tuple[int, str, int]], paths: list[str]) -> None:
        eng = self.engine
        for (uid, letters, size), final in zip(sizes, paths, strict=True):
            rel = final[final.rfind("/", 0, final.rfind("/")) + 1:]  # "new/NAME", "cur/NAME"
            eng.store.record("+", uid, rel, letters, size)
            eng.result.fetched += 1
            eng.result.fetched_bytes += size
        eng.store.commit()


class _Removal:
    """Remove message files: each leaves the Maildir at once by a rename into the
    folder's ``tmp/`` (``add``, about 15 µs), and the unlinks, which cost this file system
    far more (0.2-0.5 ms each, one at a time whatever the number of threads) run on
    helper threads while the sync goes on; ``wait`` joins them.

    The unlinks end before the snapshot that records the removals replaces the old one;
    a crash before then leaves files in ``tmp/`` (not part of the mailbox) and the old
    state, so the next run removes the same messages again and clears ``tmp/`` of files
    named by our key (as a run that downloads does too).
    ``_thread`` rather than ``threading``: ``Thread.start`` waits until the new thread
    runs, up to a millisecond each while the interpreter is busy.
    """

    THREADS = 2  # the unlinks queue in the kernel: more threads only contend for the GIL
    MANY = 16  # from this many files on, both threads
    SWITCH = 0.0002  # seconds: the interpreter's switch interval while they run

    def __init__(self, folder: str) -> None:
        from collections import deque

        trash = folder + "/tmp/"
        self.todo: deque[str] = deque()
        self.missing: set[str] = set()  # paths that were not there
        self.moved: set[str] = set()  # files in tmp/ that the helpers unlink
        try:
            # Files of ours that a killed run left in tmp/ go with this run's.
            with os.scandir(trash) as entries:
                for entry in entries:
                    if parse_key(entry.name) is not None:
                        self.todo.append(entry.path)
                        self.moved.add(entry.path)
            self.trash: str | None = trash
        except OSError:
            self.trash = None
        self.error: tuple[str, OSError] | None = None
        self.done: list[Any] = []  # one lock per helper thread, released when it ends
        self.interval: float | None = None  # the switch interval to restore

    def add(self, paths: Iterable[str]) -> None:
        """Take the files out of the Maildir now (synchronously: ``missing`` is up to date
        on return); the unlinks follow on helper threads.

        Raises:
            LocalIOError: a file could be neither moved nor removed.
        """
        trash, todo, rename = self.trash, self.todo, os.rename
        for path in paths:
            try:
                if trash is None:
                    os.unlink(path)
                    continue
                dest = trash + path[path.rfind("/") + 1:]
                rename(path, dest)
                todo.append(dest)
                self.moved.add(dest)
            except FileNotFoundError:
                self.missing.add(path)
            except OSError:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    self.missing.add(path)
                except OSError as exc:
                    raise LocalIOError(f"cannot remove {path}: {exc.strerror}") from exc
        running = len(self.done)
        wanted = min(self.THREADS, 1 if len(todo) < self.MANY else self.THREADS)
        if todo and running < wanted:
            import _thread
            import sys

            if self.interval is None:
                # A thread waiting for the GIL gets it only after the running one has
                # held it this long: the unlinks would crawl while this thread parses.
                self.interval = sys.getswitchinterval()
                sys.setswitchinterval(min(self.interval, self.SWITCH))
            for _ in range(wanted - running):
                lock = _thread.allocate_lock()
                lock.acquire()
                self.done.append(lock)
                _thread.start_new_thread(self._helper, (lock,))

    def _helper(self, lock: Any) -> None:
        try:
            self._unlink()
        finally:
            lock.release()

    def _unlink(self) -> None:
        todo, unlink = self.todo, os.unlink
        while self.error is None:
            try:
                path = todo.popleft()
            except IndexError:
                return
            try:
                unlink(path)
            except FileNotFoundError:
                pass  # someone else cleaned tmp/
            except OSError as exc:
                self.error = (path, exc)

    def wait(self) -> None:
        """Finish the unlinks (this thread helps); raises ``LocalIOError`` for a failure."""
        self._unlink()
        for lock in self.done:
            lock.acquire()
        self.done.clear()
        if self.interval is not None:
            import sys

            sys.setswitchinterval(self.interval)
            self.interval = None
        if self.error is not None:
            path, exc = self.error
            self.error = None
            raise LocalIOError(f"cannot remove {path}: {exc.strerror}") from exc


class _DirSync:
    """fsync directories on helper threads (one each); ``wait`` joins them.

    The snapshot that records a run's renames and removals may only replace the old one
    once they are durable, but it can be rendered and written meanwhile.
    """

    def __init__(self, paths: Iterable[str]) -> None:
        import _thread

        self.error: tuple[str, OSError] | None = None
        self.done: list[Any] = []
        for path in paths:
            lock = _thread.allocate_lock()
            lock.acquire()
            self.done.append(lock)
            _thread.start_new_thread(self._sync, (path, lock))

    def _sync(self, path: str, lock: Any) -> None:
        try:
            fsync_dir(path)
        except OSError as exc:
            self.error = (path, exc)
        finally:
            lock.release()

    def wait(self) -> None:
        """Raises ``LocalIOError`` when a directory could not be synced."""
        for lock in self.done:
            lock.acquire()
        self.done.clear()
        if self.error is not None:
            path, exc = self.error
            raise LocalIOError(f"cannot sync {path}: {exc.strerror}") from exc


class _Durability:
    """One batch made durable and published on a helper thread (see ``_Writer.flush``)."""

    def __init__(self, batch: MaildirBatch, sizes: list[tuple[int, str, int]]) -> None:
        import threading

        self.batch = batch
        self.sizes = sizes
        self.paths: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mailtool-sync-durability",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.paths = self.batch.commit_names()
        except BaseException as exc:  # handed to the main thread by result()
            self.error = exc

    def result(self) -> list[str]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.paths


class FolderSync:
    """One folder's sync run (see the module docstring)."""

    def __init__(self, source: Source, root: Path | str, info: FolderInfo,
                 options: SyncOptions) -> None:
        self.source = source
        self.info = info
        self.options = options
        self.dir = folder_path(root, info.name, info.delimiter)
        self.path = os.fspath(self.dir)  # string paths in the per-message work: no pathlib
        self.is_sub = self.dir != root
        self.result = FolderResult(folder=info.name, path=str(self.dir),
                                   dry_run=options.dry_run)
        self.store = StateStore(self.dir, info.name)
        self.state = FolderState(folder=info.name)
        self.plan = FolderPlan()
        self.progress: Progress = _NoProgress()
        self._maildir: Maildir | None = None
        #: Files by key and by base name, from one scan when a file is not where recorded.
        self._by_key: dict[int, str] | None = None
        self._by_base: dict[str, str] | None = None
        #: Local removals, started as soon as the server's VANISHED arrives.
        self._removal: _Removal | None = None
        self._early: dict[int, str] = {}  # UID -> path whose removal has started
        self._live: tuple[FolderState, int] | None = None  # the guard's "held", counted
        self._early_stop = False  # the guard would stop the folder: start nothing
        self._early_error: LocalIOError | None = None  # raised by _apply_changes
        self._loaded = False  # the records are read: VANISHED can be acted on
        self._dir_sync: _DirSync | None = None  # directory fsyncs of the renames, removals

    @property
    def maildir(self) -> Maildir:
        if self._maildir is None:
            join, isdir = os.path.join, os.path.isdir
            created = not all(isdir(join(self.path, sub)) for sub in ("cur", "new", "tmp"))
            self._maildir = Maildir(self.dir, create=created)
            if self.is_sub and os.path.basename(self.path).startswith("."):
                marker = os.path.join(self.path, FOLDER_MARKER)
                if not os.path.exists(marker):
                    os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
                    created = True
            if created:  # an existing folder has nothing new to make durable
                fsync_dir(os.path.dirname(self.path) or ".")
        return self._maildir

    def run(self) -> FolderResult:
        try:
            self._run()
        finally:
            self.store.close()
            if self._dir_sync is not None:
                try:
                    self._dirs_synced()
                except LocalIOError:
                    pass
            if self._removal is not None:
                try:
                    self._removal.wait()  # no helper thread outlives the folder
                except LocalIOError:
                    pass
        return self.result

    def _run(self) -> None:
        head: Header | None = None
        if os.path.isdir(self.path):
            # The snapshot's first line decides an unchanged folder: with LIST-STATUS
            # counters no SELECT at all, else after EXAMINE; the records are read only
            # when something changed.
            head = self.store.header()
            status = self.info.status
            if head is not None and status is not None and _unchanged(
                    head, status.get("UIDVALIDITY"), status.get("UIDNEXT"),
                    status.get("HIGHESTMODSEQ"), status.get("MESSAGES")):
                self.result.uidvalidity = head.uidvalidity
                self.result.mode = "unchanged"
                return
            if head is None:
                self.state = self.store.load()
                self._loaded = True
        else:
            self.store.state = self.state
        state = self.state
        if head is not None:
            uidvalidity, modseq, held = head.uidvalidity, head.highestmodseq, head.live > 0
        else:
            uidvalidity, modseq, held = (state.uidvalidity, state.highestmodseq,
                                         bool(state.records))
        use_qresync = (self.source.qresync and uidvalidity is not None
                       and modseq is not None and held)
        # Local copies of expunged messages go as soon as VANISHED arrives, while the
        # rest of the answer is read: only when this run would remove them anyway.
        early = use_qresync and not self.options.dry_run and not self.options.keep_deleted
        finish = self.source.select_begin(
            self.info.name,
            (uidvalidity, modseq) if use_qresync else None,  # type: ignore[arg-type]
            on_vanished=self._on_vanished if early else None,
        )
        if head is not None:
            # Read the records while the server works on EXAMINE (QRESYNC's answer takes
            # it a while); a folder found unchanged after all has wasted no waiting.
            try:
                self.state = state = self.store.load()
                self._loaded = True
            except BaseException:
                try:
                    finish()  # leave the connection in step for the next folder
                except MailtoolError:
                    pass
                raise
        sel = finish()
        self.result.uidvalidity = sel.uidvalidity
        if use_qresync and sel.changed is None:
            use_qresync = False  # the server did not take QRESYNC after all: compare flags
        if head is not None and not (use_qresync and (sel.vanished or sel.changed)) and \
                _unchanged(head, sel.uidvalidity, sel.uidnext, sel.highestmodseq, None):
            self.result.mode = "unchanged"
            return
        present: set[int] | None = None
        vanished: set[int] = set()
        flags: dict[int, str] = {}
        if state.uidvalidity is not None and state.uidvalidity != sel.uidvalidity:
            self.result.mode = "rematch"
            state = self._rematch(sel)
            use_qresync = False
        if state.uidvalidity is None:
            state.uidvalidity = sel.uidvalidity
        if not state.records and state.uidnext == 1:
            self.result.mode = self.result.mode or "first"
            new_uids = sorted(self.source.search_all()) if sel.exists else []
        else:
            unchanged = (sel.uidnext is not None and sel.uidnext == state.uidnext
                         and sel.highestmodseq is not None
                         and sel.highestmodseq == state.highestmodseq
                         and not (use_qresync and (sel.vanished or sel.changed)))
            if unchanged and self.result.mode != "rematch":
                self.result.mode = "unchanged"
                return
            if sel.uidnext is None or sel.uidnext > state.uidnext:
                new_uids = [u for u in self.source.search_from(state.uidnext)
                            if u >= state.uidnext]
            else:
                new_uids = []
            if use_qresync:
                self.result.mode = self.result.mode or "qresync"
                vanished = set(sel.vanished or ())
                flags = {u: maildir_flags(f) for u, f in (sel.changed or {}).items()}
            elif (self.source.condstore and state.highestmodseq is not None
                  and sel.highestmodseq is not None):
                self.result.mode = self.result.mode or "condstore"
                held_max = max((u for u in state.records if u > 0), default=0)
                raw = self.source.fetch_flags(held_max, state.highestmodseq) if held_max else {}
                flags = {u: maildir_flags(f) for u, f in raw.items()}
                new_held = sum(1 for u in new_uids if u in state.records)
                if sel.exists != self._live_count() + len(new_uids) - new_held:
                    present = self.source.search_all()
            else:
                self.result.mode = self.result.mode or "full"
                held_max = max((u for u in state.records if u > 0), default=0)
                raw = self.source.fetch_flags(held_max, None) if held_max else {}
                flags = {u: maildir_flags(f) for u, f in raw.items()}
                present = set(raw) | set(new_uids)
        self.plan = plan = make_plan(state, new_uids=new_uids, flags=flags, present=present,
                                     vanished=vanished, keep_deleted=self.options.keep_deleted)
        if self.options.dry_run:
            self.result.would_fetch = plan.fetch
            self.result.would_flag = plan.flags
            self.result.would_delete = plan.delete + plan.keep
        # A dry run stops here too, so it shows what the real run would do.
        check_mass_delete(self.info.name, self._live_count(), len(plan.delete),
                          max_share=self.options.max_delete_share,
                          allow=self.options.allow_mass_delete, removed=len(self._early))
        if self.options.dry_run:
            return
        _ = self.maildir  # an empty server folder is mirrored as an empty Maildir
        if self.result.mode == "rematch":
            self.store.snapshot(state)  # the re-matched state, before touching any file
        self._fetch(plan.fetch)
        self._apply_changes(plan.flags, plan.delete, plan.keep)
        next_uid = max([state.uidnext, sel.uidnext or 0, *(u + 1 for u in new_uids)])
        state.uidnext = next_uid
        state.highestmodseq = sel.highestmodseq
        self.store.snapshot(state, before_replace=self._dirs_synced)

    # -- steps ----------------------------------------------------------------------
    def _fetch(self, uids: list[int]) -> None:
        if not uids:
            return
        state = self.state
        assert state.uidvalidity is not None
        # Files stored by an interrupted run before it could journal them (only a run
        # that did not finish can have left any: no scan of a big folder otherwise).
        found = (scan_keys(self.path, state.uidvalidity, uids)
                 if self.store.interrupted and os.path.isdir(self.path) else {})
        for uid, rel in sorted(found.items()):
            info = rel.split(":2,", 1)[1] if ":2," in rel else ""
            letters = "".join(sorted({c for c in info if c.isascii() and c.isalpha()}))
            size = os.path.getsize(os.path.join(self.path, rel))
            self.store.record("+", uid, rel, letters, size)
            self.result.adopted += 1
        if found:
            self.store.commit()
        todo = [u for u in uids if u not in found]
        if not todo:
            return
        _ = self.maildir  # create the folder before the first body arrives
        try:
            self.store.begin()
        except OSError as exc:
            raise LocalIOError(f"cannot write {self.store.journal_path}: {exc.strerror}"
                               ) from exc
        self._clean_tmp()
        self.progress = self.options.progress()
        self.progress.start(self.info.name, len(todo), None)
        writer = _Writer(self)
        try:
            self.source.fetch_bodies(todo, writer)
            writer.flush()
        except BaseException as exc:
            writer.abort()
            try:
                writer.settle()  # the batch already on its way to the disk is kept
            except (OSError, MailtoolError):
                pass
            if isinstance(exc, MailtoolError) and not isinstance(exc, LocalIOError):
                # The server failed mid-fetch: keep the messages that arrived whole (exit
                # 75 promises "everything stored so far is kept"), so no rerun fetches
                # them again.
                try:
                    writer.flush()
                except (OSError, MailtoolError):
                    pass
            writer.durable.abort()  # whatever could not be made durable
            writer.uids.clear()
            raise
        finally:
            self.progress.stop()

    def _clean_tmp(self) -> None:
        """Remove partial messages (and removed files) an interrupted run of ours left in
        ``tmp/``; this run's removed files are left to its helper threads."""
        moved = self._removal.moved if self._removal is not None else set()
        for entry in os.scandir(os.path.join(self.path, "tmp")):
            # named by our key: nobody else writes it
            if parse_key(entry.name) is not None and entry.path not in moved:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    def _dirs_synced(self) -> None:
        """The run's renames and removals are durable and its unlinks done."""
        sync, self._dir_sync = self._dir_sync, None
        if sync is not None:
            sync.wait()
        if self._removal is not None:
            self._removal.wait()

    def _live_count(self) -> int:
        """Messages held that the server had (the guard's measure), counted once per state."""
        if self._live is None or self._live[0] is not self.state:
            self._live = (self.state, len(self.state.live_uids()))
        return self._live[1]

    def _on_vanished(self, uids: Iterable[int]) -> None:
        """Start removing the local copies of messages a VANISHED (EARLIER) set lists.

        Only messages we hold (and do not keep as gone), and only while the mass-delete
        guard, counted over the VANISHED sets so far just as ``_run`` counts it, lets the
        folder through: once it would stop the folder nothing more starts, and ``_run``
        raises as before. The records change in ``_apply_changes`` as for any removal; a
        crash in between leaves the old state: the next run gets the same VANISHED from
        the server and finds the files gone.
        """
        if not self._loaded or self._early_stop:
            return
        records = self.state.records
        early = self._early
        base = self.path + "/"
        new = {}
        for uid in uids:
            rec = records.get(uid)
            if rec is not None and not rec.gone and uid not in early:
                new[uid] = base + rec.path
        if not new:
            return
        if mass_delete_blocked(self._live_count(), len(early) + len(new),
                               max_share=self.options.max_delete_share,
                               allow=self.options.allow_mass_delete):
            self._early_stop = True
            return
        early.update(new)
        if self._removal is None:
            self._removal = _Removal(self.path)
        try:
            self._removal.add(new.values())
        except LocalIOError as exc:
            # Raised from here it would leave the rest of the server's answer unread.
            self._early_error = exc
            self._early_stop = True

    def _apply_changes(self, changes: dict[int, str], delete: list[int], keep: list[int]
                       ) -> None:
        """Rename files for flag changes, remove deleted ones; then one sync of the
        directories that changed.

        The changes are recorded by the snapshot that ends the run, not journalled first
        (three fsyncs fewer): a crash in between leaves the old state, and the next run
        gets the same changes from the server again and finds each file by its key. So
        the records are changed in place (listed in ``touched`` for the snapshot).
        """
        if self._early_error is not None:
            raise self._early_error
        state = self.state
        records = state.records
        touched = state.touched
        base = self.path + "/"
        # Removed files leave the Maildir by a rename into tmp/ (the first ones as soon
        # as VANISHED arrived); their costly unlinks run on helper threads until the end.
        early = self._early
        removal = self._removal
        todo = [base + records[uid].path for uid in delete if uid not in early]
        if todo:
            if removal is None:
                removal = self._removal = _Removal(self.path)
            removal.add(todo)
        dirs: set[str] = set()  # the subdirectories whose entries changed
        rename = os.rename
        flagged = 0
        for uid, letters in sorted(changes.items()):
            rec = records[uid]
            rel = rec.path
            if rel[3:4] != "/":
                target = _flag_target(rel, letters)
            elif rel[:4] == "new/" and not letters:
                target = rel
            else:
                cut = rel.find(":2,", 4)
                target = f"cur/{rel[4:] if cut < 0 else rel[4:cut]}:2,{letters}"
            if target != rel:
                # Rename first, look for the file only when it is not where we left it
                # (a mail reader renamed it): no stat per message.
                try:
                    rename(base + rel, base + target)
                except FileNotFoundError:
                    try:
                        rel = self._locate(uid, rec)
                        target = _flag_target(rel, letters)
                        if target != rel:
                            rename(base + rel, base + target)
                    except FileNotFoundError:
                        continue  # the local file went away; a full comparison notices
                    except OSError as exc:
                        raise LocalIOError(f"cannot rename {base + rel}: {exc.strerror}"
                                           ) from exc
                except OSError as exc:
                    raise LocalIOError(f"cannot rename {base + rel}: {exc.strerror}") from exc
                dirs.add(rel[:3])
                dirs.add("cur")
            rec.path, rec.flags = target, letters
            touched.add(uid)
            flagged += 1
        self.result.flagged += flagged
        missing = removal.missing if removal is not None else set()
        for uid in delete:
            rec = records.pop(uid)
            path = rec.path
            if base + path in missing:
                try:
                    path = self._locate(uid, rec)
                    os.unlink(base + path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise LocalIOError(f"cannot remove {base + rec.path}: {exc.strerror}"
                                       ) from exc
            dirs.add(path[:3])
        touched.update(delete)
        self.result.deleted += len(delete)
        for uid in keep:
            records[uid].gone = True
        touched.update(keep)
        self.result.kept += len(keep)
        if dirs & {"cur", "new"}:
            # made durable while the snapshot is written, before it replaces the old one
            self._dir_sync = _DirSync([base + sub for sub in sorted(dirs & {"cur", "new"})])

    def _locate(self, uid: int, rec: Record) -> str:
        """The record's file, found by key when a mail reader renamed it."""
        if os.path.exists(os.path.join(self.path, rec.path)):
            return rec.path
        if self._by_key is None:
            # One scan of the folder serves every file that moved (after a crash that can
            # be hundreds: a scan each would be quadratic).
            self._by_key = {}
            self._by_base = {}
            for sub in ("cur", "new"):
                for entry in os.scandir(os.path.join(self.path, sub)):
                    name = entry.name
                    self._by_base[name.split(":2,", 1)[0]] = f"{sub}/{name}"
                    key = parse_key(name)
                    if key is not None and key[0] == self.state.uidvalidity:
                        self._by_key[key[1]] = f"{sub}/{name}"
        assert self._by_base is not None
        found = self._by_key.get(uid) if uid > 0 else None
        if found is None:
            found = self._by_base.get(rec.path.split("/", 1)[-1].split(":2,", 1)[0])
        if found is None or not os.path.exists(os.path.join(self.path, found)):
            raise FileNotFoundError(rec.path)
        return found

    def _rematch(self, sel: Selected) -> FolderState:
        """Pair old records with the new UIDs; return the new state (not yet saved)."""
        old = self.state
        local: dict[int, Identity] = {}
        for uid, rec in old.records.items():
            if rec.gone:
                continue
            try:
                local[uid] = read_identity(os.path.join(self.path, self._locate(uid, rec)))
            except FileNotFoundError:
                continue
        server = self.source.fetch_identities() if sel.exists else {}
        match = rematch(self.info.name, local, server)
        new = FolderState(folder=old.folder, uidvalidity=sel.uidvalidity)
        for old_uid, new_uid in match.pairs.items():
            rec = old.records[old_uid]
            new.records[new_uid] = Record(rec.path, rec.flags, rec.size)
        # Old messages without a partner stay recorded under placeholder UIDs (never on a
        # server) until their files are removed, so a crash cannot orphan them.
        for index, old_uid in enumerate(match.unmatched_local, 1):
            rec = old.records[old_uid]
            new.records[-index] = Record(rec.path, rec.flags, rec.size)
        self.result.rematched = len(match.pairs)
        self.state = new
        self.store.state = new
        self._by_key = self._by_base = None  # keys of the old UIDVALIDITY mean nothing now
        return new


LOCK_FILE = "mailtool-sync.lock"


def lock_root(root: Path | str) -> int:
    """Take the tree's lock (two runs at once, e.g. overlapping cron jobs, would race).

    Returns the lock's file descriptor (closing it releases the lock).

    Raises:
        TempFailError: another run holds it.
    """
    import fcntl

    from mailtool.errors import CantCreateError, TempFailError

    lock = os.path.join(root, LOCK_FILE)
    try:
        os.makedirs(root, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CantCreateError(f"cannot create {lock}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise TempFailError(f"another imap-sync is running on {root}", step="lock") from None
    return fd


def sync_folders(source: Source, root: Path | str, folders: Sequence[FolderInfo],
                 options: SyncOptions) -> list[FolderResult]:
    """Sync each folder; a failure in one folder is reported and the others go on.

    Errors that concern the connection (transport, protocol) stop the whole run.
    """
    if options.dry_run and not os.path.exists(root):
        return _sync_each(source, root, folders, options)
    fd = lock_root(root)
    try:
        return _sync_each(source, root, folders, options)
    finally:
        os.close(fd)


def _sync_each(source: Source, root: Path | str, folders: Sequence[FolderInfo],
               options: SyncOptions) -> list[FolderResult]:
    results = []
    for info in folders:
        sync = FolderSync(source, root, info, options)
        try:
            results.append(sync.run())
        except MailtoolError as exc:
            result = sync.result
            result.status = "error"
            result.error = exc.one_line()
            result.exit_code = int(exc.exit_code)
            results.append(result)
            if _fatal(exc):
                raise
    return results


def _fatal(exc: MailtoolError) -> bool:
    """Connection-level failures end the run; folder-level ones (guard, match) do not."""
    from mailtool.errors import ProtocolError, TempFailError

    return isinstance(exc, (TempFailError, ProtocolError)) or exc.exit_code in (
        ExitCode.NOPERM, ExitCode.IOERR, ExitCode.CANTCREAT)
