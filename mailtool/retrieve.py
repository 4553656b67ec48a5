"""The POP3 fetch plan: which messages are new, where they go, and when they may be deleted.

Order of commitment (mpop's model, RFC 1939 section 6 as the safety net):

1. UIDL; new = UIDLs not in this account's state. Sizes only for the messages that will be
   fetched or deleted: none (the keep-mode rerun with nothing new sends UIDL and QUIT and
   writes no state), ``LIST n`` each for a few (pipelined), else the whole LIST, checked
   against UIDL. Without UIDL (plain -ERR): the whole LIST, and only with --delete/--all.
2. For a batch of new messages: RETR (pipelined when the server allows), stream each one to
   the destination and make it durable (Maildir: tmp/, one syncfs or an fsync per file,
   rename into new/). Destinations live in ``store.destinations``.
3. End of batch: fsync the Maildir directories, then record the batch's UIDLs in the state
   file (atomic replace, fsynced). A connection lost mid-batch still records everything
   stored before it.
4. Only then DELE (for ``--delete``, or ``--delete-after`` once a message is old enough).
5. QUIT, which is when the server really deletes; deletions are counted only after its +OK.
   Any error before QUIT closes the connection without it, so the server deletes nothing.

Crash safety: a kill -9 between steps 2 and 3 leaves a stored message the state does not
know. Maildir file names carry a key derived from the server, user and UIDL (a hash: UIDLs
are not file-name safe), so the next run recognises the file and records it instead of
storing it again; the partial ``tmp/`` files of a killed run are removed by the next run
of the same account (it holds the account's lock, and the server's UIDL listing tells which
keys are the account's: see ``Fetcher._clean_tmp``). For mbox, the state notes the offset of the append in progress; the next
run rolls an unrecorded append back (truncate) before fetching the message again. An MDA
cannot be rolled back: after a kill -9 at the wrong moment, at most the one message being
delivered is delivered again (never lost).
"""

from __future__ import annotations

import os
import time

from mailtool.config import state_dir_str
from mailtool.errors import (
    ConfigError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    UnavailableError,
)
from mailtool.exitcodes import ExitCode, worst
from mailtool.protocol.pop3.client import POP3Client
from mailtool.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path
    from typing import Any

    from mailtool.store.destinations import Destination

#: Messages per batch: one syncfs (or fsync per file), one directory fsync and one state
#: write per batch, and the batch's DELEs only after those. Larger batches are faster (a
#: syncfs under load costs tens of milliseconds); a kill -9 costs nothing either way (keys),
#: and a lost connection records whatever was stored before it.
BATCH_MESSAGES = 1000
#: ...or this many bytes, whichever comes first.
BATCH_BYTES = 32 * 1024 * 1024

#: Slack allowed over the size LIST announced before a body is treated as runaway.
SIZE_SLACK = 1024 * 1024

#: Up to this many messages needing a size, ask ``LIST n`` for each (pipelined) rather
#: than the whole LIST: the cron case (a few new among thousands kept) skips a listing
#: as long as UIDL's. Without PIPELINING each would cost a round trip: whole LIST then.
LIST_EACH_MAX = 64

#: The state file format (``UIDLState``); version 1 was a JSON document (still read, and
#: rewritten in this format on the first run that finds it).
STATE_VERSION = 2
_STATE_MAGIC = "mailtool-pop3-uidl"
_LEGACY_VERSION = 1

#: Longest state file name before we fall back to a hashed one (file systems allow 255).
_MAX_NAME = 200


# --- identity and state -----------------------------------------------------------------

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-")


def _safe(text: str) -> str:
    """Lossy file-name form (version 1 state names): unsafe characters become ``_``."""
    return "".join(c if c in _SAFE else "_" for c in text)[:60] or "_"


def _escape(text: str) -> str:
    """Reversible file-name form: safe characters kept, others ``%XX`` per UTF-8 byte.

    ``-`` is kept and ``+`` (our separator) escaped, so distinct (account, host, user)
    triples always give distinct names; a leading dot is escaped (no hidden files).
    """
    out = []
    for i, c in enumerate(text):
        if c in _SAFE and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _sha256_hex(text: str) -> str:
    import hashlib  # only where a digest is needed: not on a keep-mode rerun's path

    return hashlib.sha256(text.encode()).hexdigest()


def message_key(host: str, user: str, uidl: str) -> str:
    """The stable Maildir name part for a message: ``U`` + 32 hex digits."""
    return "U" + _sha256_hex(f"{host.lower()}\0{user}\0{uidl}")[:32]


def _state_base() -> str:
    return os.path.join(state_dir_str(), "pop3")


def state_file(account: str | None, host: str, user: str) -> str:
    """``state_dir()/pop3/<account>+<host>+<user>.uidl`` (escaped, see ``_escape``).

    A name too long for a file system becomes ``h-<digest>.uidl``.
    """
    name = "+".join(_escape(x) for x in (account or "", host.lower(), user))
    if len(name) > _MAX_NAME:
        name = "h-" + _sha256_hex(f"{account or ''}\0{host.lower()}\0{user}")[:40]
    return os.path.join(_state_base(), name + ".uidl")


def legacy_state_file(account: str | None, host: str, user: str) -> str:
    """Where version 1 kept the state: ``<account>-<host>-<user>-<hash>.json``."""
    digest = _sha256_hex(f"{account or ''}\0{host.lower()}\0{user}")[:12]
    name = f"{_safe(account or 'default')}-{_safe(host.lower())}-{_safe(user)}-{digest}.json"
    return os.path.join(_state_base(), name)


def state_path(account: str | None, host: str, user: str) -> Path:
    """``state_file`` as a ``Path`` (for tests and tools; the fetch itself uses ``str``)."""
    from pathlib import Path

    return Path(state_file(account, host, user))


def _lock_file(path: str) -> str:
    root, ext = os.path.splitext(path)
    return (root if ext else path) + ".lock"


class UIDLState:
    """UIDLs already fetched for one account/server/user, with the time first seen.

    ``messages`` maps each UIDL to the epoch second it was first stored, as decimal text
    (converted only where ``--delete-after`` needs it: 100,000 ``int()`` calls would be most
    of a large state's load time); ``headers`` holds
    the UIDLs of which only the headers were taken (never deleted on the server).

    The file (version 2) is text, fast to read for 100,000 UIDLs (one ``split``):
    a first line ``mailtool-pop3-uidl 2`` (plus ``pending <offset> <uidl-hex> <path-hex>``
    while an mbox append is in progress), then one line per message
    ``<uidl> <first-seen> <h or ->`` (RFC 1939 UIDLs have no white space). A version 1
    JSON file found under the old name (``legacy``) is read and replaced by the first
    save. The file is replaced atomically (write temp, fsync, rename, fsync dir) on
    ``save``, and only when something changed. An exclusive ``fcntl`` lock on a sibling
    ``.lock`` file keeps two runs for the same mailbox apart (cron overlap).
    """

    def __init__(self, path: Path | str, *, legacy: Callable[[], str] | None = None) -> None:
        self.path = path
        self._file = os.fspath(path)
        self._legacy = legacy
        self._legacy_file: str | None = None
        self.messages: dict[str, str] = {}
        self.headers: set[str] = set()
        self.pending: dict[str, Any] | None = None
        self.dirty = False
        self._lock_fd: int | None = None

    def lock(self) -> None:
        import fcntl

        lock = _lock_file(self._file)
        os.makedirs(os.path.dirname(lock) or ".", exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise TempFailError(
                f"another pop-fetch is running for this mailbox (lock {lock})", step="state"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def load(self) -> UIDLState:
        raw = _read(self._file)
        if raw is None:
            if self._legacy is not None:
                legacy = self._legacy()
                if os.path.exists(legacy):
                    self._load_legacy(legacy)
            return self
        self._parse(raw)
        return self

    def _corrupt(self, why: str) -> ConfigError:
        return ConfigError(f"state file {self._file} is corrupt ({why}); move it away")

    def _parse(self, raw: bytes) -> None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._corrupt("not ASCII") from None
        head, sep, body = text.partition("\n")
        words = head.split()
        if len(words) < 2 or words[0] != _STATE_MAGIC or not sep:
            raise self._corrupt("no header line")
        if words[1] != str(STATE_VERSION):
            raise ConfigError(f"state file {self._file} has an unknown format; move it away")
        if len(words) == 6 and words[2] == "pending" and words[3].isdigit():
            try:
                self.pending = {
                    "offset": int(words[3]),
                    "uidl": _unhex(words[4]).decode("ascii"),
                    "mbox": _unhex(words[5]).decode("utf-8", "surrogateescape"),
                }
            except ValueError:
                raise self._corrupt("bad pending entry") from None
        elif len(words) != 2:
            raise self._corrupt("bad header line")
        tokens = body.split()
        if len(tokens) % 3 or (body and not body.endswith("\n")):
            raise self._corrupt("truncated")
        uidls, times, flags = tokens[0::3], tokens[1::3], tokens[2::3]
        if times and not "".join(times).isdigit():
            raise self._corrupt("bad time")
        if not set(flags) <= {"-", "h"}:
            raise self._corrupt("bad flag")
        self.messages = dict(zip(uidls, times, strict=True))
        if "h" in flags:
            self.headers = {u for u, f in zip(uidls, flags, strict=True) if f == "h"}

    def _load_legacy(self, legacy: str) -> None:
        import json

        raw = _read(legacy) or b""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(
                f"state file {legacy} is corrupt: {exc}; move it away to rebuild"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != _LEGACY_VERSION:
            raise ConfigError(f"state file {legacy} has an unknown format; move it away")
        messages = data.get("messages", {})
        if not isinstance(messages, dict):
            raise ConfigError(f"state file {legacy} is corrupt; move it away")
        for uidl, entry in messages.items():
            if not (isinstance(entry, dict) and isinstance(uidl, str) and uidl.isascii()
                    and uidl.isprintable() and uidl and " " not in uidl):
                raise ConfigError(f"state file {legacy} is corrupt; move it away")
            self.messages[uidl] = str(int(entry.get("t", 0)))
            if entry.get("h"):
                self.headers.add(uidl)
        pending = data.get("pending")
        self.pending = pending if isinstance(pending, dict) else None
        self._legacy_file = legacy
        self.dirty = True  # written in the new format (and the old file removed) on save

    def prune(self, keep: set[str]) -> None:
        """Forget UIDLs no longer on the server (or deleted by this run)."""
        if not self.messages.keys() <= keep:
            self.messages = {u: t for u, t in self.messages.items() if u in keep}
            self.headers &= self.messages.keys()
            self.dirty = True

    def save(self, *, keep: set[str] | None = None, force: bool = True) -> None:
        """Write the state (atomically, durably); with ``keep``, prune first.

        With ``force=False`` nothing is written unless something changed.
        """
        if keep is not None:
            self.prune(keep)
        if not force and not self.dirty:
            return
        from mailtool.store.atomic import atomic_write

        head = f"{_STATE_MAGIC} {STATE_VERSION}"
        if self.pending is not None:
            head += " pending {} {} {}".format(
                int(self.pending.get("offset", -1)),
                _hex(str(self.pending.get("uidl") or "").encode("ascii")),
                _hex(str(self.pending.get("mbox") or "").encode("utf-8", "surrogateescape")),
            )
        headers = self.headers
        lines = [head, *(f"{u} {t} {'h' if u in headers else '-'}"
                         for u, t in self.messages.items())]
        atomic_write(self._file, ("\n".join(lines) + "\n").encode("ascii"))
        self.dirty = False
        if self._legacy_file is not None:
            # The new file is durable: the old one may go (a crash before this only
            # leaves it behind, and the new file wins on the next load).
            for old in (self._legacy_file, _lock_file(self._legacy_file)):
                try:
                    os.unlink(old)
                except OSError:
                    pass
            self._legacy_file = None

    def record(self, uidl: str, *, headers_only: bool = False, when: float | None = None) -> None:
        if uidl not in self.messages:
            self.messages[uidl] = str(int(when if when is not None else time.time()))
        if headers_only:
            self.headers.add(uidl)
        else:
            self.headers.discard(uidl)
        self.dirty = True


def _hex(data: bytes) -> str:
    return data.hex() or "-"


def _unhex(text: str) -> bytes:
    return b"" if text == "-" else bytes.fromhex(text)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        from mailtool.errors import CantCreateError

        raise CantCreateError(f"cannot read {path}: {exc.strerror or exc}") from exc


# --- the plan ---------------------------------------------------------------------------


@record(frozen=True)
class FetchOptions:
    fetch_all: bool = False
    limit: int | None = None
    max_size: int | None = None
    headers_only: bool = False
    delete: bool = False
    delete_after_days: float | None = None
    batch_messages: int = BATCH_MESSAGES
    batch_bytes: int = BATCH_BYTES


@record
class MessageOutcome:
    number: int
    uidl: str | None
    size: int
    status: str = "pending"  # stored | recovered | skipped | headers | deferred | failed | kept
    destination: str | None = None
    deleted: bool = False
    marked: bool = False
    dele_refused: bool = False
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "uidl": self.uidl,
            "size": self.size,
            "status": self.status,
            "destination": self.destination,
            "deleted": self.deleted,
            **({"note": self.note} if self.note else {}),
        }


@record
class FetchResult:
    on_server: int = 0
    new: int = 0
    stored: int = 0
    recovered: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    uidl_supported: bool = True
    messages: list[MessageOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK
    error: MailtoolError | None = None

    def summary(self) -> str:
        mb = self.bytes / 1e6
        parts = [f"{self.new} new", f"{self.stored} stored"]
        if self.recovered:
            parts.append(f"{self.recovered} recovered")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        parts.append(f"{self.deleted} deleted")
        return ", ".join(parts) + f", {mb:.1f} MB in {self.elapsed:.1f} s"

    def as_json(self) -> dict[str, Any]:
        return {
            "on_server": self.on_server,
            "new": self.new,
            "stored": self.stored,
            "recovered": self.recovered,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 3),
            "uidl": self.uidl_supported,
            "messages": [m.as_json() for m in self.messages if m.status != "kept" or m.marked],
            "warnings": self.warnings,
            "exit_code": int(self.exit_code),
            **({"error": self.error.one_line()} if self.error else {}),
        }


if TYPE_CHECKING:
    from typing import TypeAlias

    Progress: TypeAlias = Callable[[int, int], None]


class Fetcher:
    """Runs the plan over a logged-in ``POP3Client`` (see the module docstring)."""

    def __init__(
        self,
        client: POP3Client,
        destination: Destination,
        state: UIDLState,
        options: FetchOptions,
        *,
        host: str,
        user: str,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.dest = destination
        self.state = state
        self.opts = options
        self.host = host
        self.user = user
        self.progress = progress
        self.clock = clock
        self.result = FetchResult()
        self._unrecorded: list[tuple[str, bool]] = []
        self._on_server: set[str] = set()

    # -- listing ---------------------------------------------------------------------

    def _sizes(self, wanted: list[int], uids: dict[int, str]) -> dict[int, int]:
        """Sizes of the ``wanted`` messages (only they are listed, fetched or deleted).

        None wanted (the keep-mode rerun with nothing new): no LIST at all. A few, with
        PIPELINING: ``LIST n`` each. Otherwise the whole LIST, checked against UIDL.
        """
        if not wanted:
            return {}
        if self.client.pipelining and len(wanted) <= LIST_EACH_MAX:
            each = self.client.list_each(wanted)
            missing = sorted(n for n, size in each.items() if size is None)
            if missing:
                raise ProtocolError(
                    f"LIST and UIDL disagree (only in UIDL: {missing[:5]}); nothing fetched",
                    step="LIST",
                )
            return {n: size for n, size in each.items() if size is not None}
        sizes = self.client.list()
        if set(uids) != set(sizes):
            only_list = sorted(set(sizes) - set(uids))[:5]
            only_uidl = sorted(set(uids) - set(sizes))[:5]
            raise ProtocolError(
                f"LIST and UIDL disagree (only in LIST: {only_list}, only in UIDL: {only_uidl});"
                " nothing fetched",
                step="UIDL",
            )
        return sizes

    def _plan(self) -> list[MessageOutcome]:
        """UIDL, then sizes for what matters: the outcomes of the messages not simply kept.

        Messages already in the state and not to be deleted get no outcome (a rerun with
        thousands on the server and nothing new builds nothing per message).
        """
        res = self.result
        uids = self.client.uidl_or_none()
        if uids is None:
            if not (self.opts.delete or self.opts.fetch_all):
                raise UnavailableError(
                    "the server has no UIDL, so new messages cannot be told from old ones",
                    step="UIDL",
                    hint="use --delete to fetch and remove every message, or --all",
                )
            res.uidl_supported = False
            res.warnings.append(
                "server has no UIDL: fetching every message"
                + ("" if self.opts.delete else " (again next time: use --delete)")
            )
            sizes = self.client.list()
            res.on_server = len(sizes)
            return [MessageOutcome(n, None, sizes[n]) for n in sorted(sizes)]
        res.on_server = len(uids)
        self._on_server = set(uids.values())
        known = self.state.messages
        if self.opts.fetch_all:
            wanted = sorted(uids)
        else:
            deleting = self.opts.delete or self.opts.delete_after_days is not None
            now = self.clock()
            wanted = sorted(
                n for n, u in uids.items()
                if u not in known or (deleting and self._deletable_uidl(u, now))
            )
        sizes = self._sizes(wanted, uids)
        return [MessageOutcome(n, uids[n], sizes[n]) for n in wanted]

    # -- the run -------------------------------------------------------------------

    def run(self) -> FetchResult:
        start = time.monotonic()
        res = self.result
        quit_ok = False
        try:
            self.dest.begin(self.state)
            outcomes = self._plan()
            self._clean_tmp()
            res.messages = outcomes
            todo = self._select(outcomes)
            if res.uidl_supported:
                # Forget UIDLs no longer on the server; persist any recovery before fetching.
                self.state.prune(self._on_server)
            self.state.save(force=False)
            self._delete_old(outcomes)
            self._fetch(todo)
            marked = [m for m in outcomes if m.marked]
            self.client.quit()
            quit_ok = True
            for m in marked:
                m.deleted = True
            res.deleted = len(marked)
        except MailtoolError as exc:
            if res.error is None:
                res.error = exc
        finally:
            try:
                self._record()
            except MailtoolError as exc:
                res.error = res.error or exc
            try:
                self.dest.end()
            except MailtoolError as exc:
                res.error = res.error or exc
            if not quit_ok:
                self.client.close()
            if self._on_server:
                deleted = {m.uidl for m in res.messages if m.deleted and m.uidl}
                self.state.prune(self._on_server - deleted)
            try:
                self.state.save(force=False)
            except MailtoolError as exc:
                res.error = res.error or exc
            res.elapsed = time.monotonic() - start
        codes = [int(res.error.exit_code)] if res.error else []
        if any(m.status == "deferred" for m in res.messages):
            codes.append(ExitCode.TEMPFAIL)
        if any(m.dele_refused or (m.marked and not m.deleted) for m in res.messages):
            codes.append(ExitCode.TEMPFAIL)
        res.exit_code = worst(*codes)
        return res

    def _clean_tmp(self) -> None:
        """Remove a killed run's partial files from the destination's ``tmp/``.

        We hold this account's lock, so no run of it is in progress: a partial file whose
        key is one of this account's messages on the server is a leftover and goes now.
        Keys of other accounts (or of messages no longer listed) cannot be attributed: the
        destination removes those only when old (``destinations.STALE_TMP``).
        """
        clean = getattr(self.dest, "clean_tmp", None)
        leftovers = getattr(self.dest, "tmp_leftovers", None)
        if clean is None or leftovers is None:
            return
        found = leftovers()
        if not found:
            return  # the usual case: nothing to hash
        ours = {message_key(self.host, self.user, u) for u in self._on_server}
        clean(ours)

    def _select(self, outcomes: list[MessageOutcome]) -> list[MessageOutcome]:
        """Decide what to fetch; recognise messages a killed run stored but did not record."""
        res = self.result
        todo: list[MessageOutcome] = []
        known_keys: set[str] | None = None
        for m in outcomes:
            if m.uidl is not None and m.uidl in self.state.messages and not self.opts.fetch_all:
                m.status = "kept"
                continue
            if m.uidl is not None and not self.opts.fetch_all:
                if known_keys is None:
                    known_keys = self.dest.known_keys()
                if message_key(self.host, self.user, m.uidl) in known_keys:
                    self.state.record(m.uidl, when=self.clock())
                    m.status = "recovered"
                    m.note = "stored by an interrupted run"
                    res.recovered += 1
                    continue
            todo.append(m)
        res.new = len(todo) + res.recovered
        if self.opts.limit is not None:
            todo = todo[: self.opts.limit]
        chosen: list[MessageOutcome] = []
        for m in todo:
            if self.opts.max_size is not None and m.size > self.opts.max_size:
                if not self.opts.headers_only:
                    m.status = "skipped"
                    m.note = f"larger than --max-size ({m.size} > {self.opts.max_size} bytes)"
                    res.skipped += 1
                    continue
                m.status = "headers"
            chosen.append(m)
        return chosen

    def _deletable_uidl(self, uidl: str, now: float) -> bool:
        first_seen = self.state.messages.get(uidl)
        if first_seen is None or uidl in self.state.headers:
            return False  # not stored, or only its headers: never delete
        if self.opts.delete_after_days is not None:
            return now - int(first_seen) >= self.opts.delete_after_days * 86400
        return self.opts.delete

    def _deletable(self, m: MessageOutcome, now: float) -> bool:
        if m.uidl is None:
            return self.opts.delete and m.status == "stored"
        return self._deletable_uidl(m.uidl, now)

    def _delete_old(self, outcomes: list[MessageOutcome]) -> None:
        if not (self.opts.delete or self.opts.delete_after_days is not None):
            return
        now = self.clock()
        old = [m for m in outcomes if m.status in ("kept", "recovered") and self._deletable(m, now)]
        self._dele(old)

    def _dele(self, batch: list[MessageOutcome]) -> None:
        if not batch:
            return
        replies = self.client.dele_many([m.number for m in batch])
        for m in batch:
            reply = replies[m.number]
            if reply.is_positive:
                m.marked = True
            else:
                m.dele_refused = True
                m.note = f"DELE refused: {reply.one_line()}"
                self.result.warnings.append(f"message {m.number}: {m.note}")

    def _fetch(self, todo: list[MessageOutcome]) -> None:
        res = self.result
        total = sum(m.size for m in todo)
        done = 0
        limit = min(self.opts.batch_messages, self.dest.batch_limit)
        index = 0
        while index < len(todo):
            batch: list[MessageOutcome] = []
            size = 0
            while index < len(todo) and len(batch) < limit and (
                not batch or size < self.opts.batch_bytes
            ):
                batch.append(todo[index])
                size += todo[index].size
                index += 1
            by_number = {m.number: m for m in batch}
            groups = [[m for m in batch if m.status != "headers"],
                      [m for m in batch if m.status == "headers"]]
            for group, top in ((groups[0], None), (groups[1], 0)):
                if not group:
                    continue
                stream = self.client.retr_many(
                    [m.number for m in group],
                    top_lines=top,
                    max_bytes=_size_bound(by_number),
                )
                for num, chunks in stream:
                    m = by_number[num]
                    key = (
                        message_key(self.host, self.user, m.uidl)
                        if m.uidl is not None and self.dest.uses_keys
                        else None
                    )
                    try:
                        m.destination = self.dest.store(counted(chunks, res), key=key, uidl=m.uidl)
                    except TempFailError as exc:
                        if exc.step != "MDA":
                            raise
                        m.status = "deferred"
                        m.note = exc.message
                        res.warnings.append(f"message {m.number}: {exc.message}")
                        continue
                    m.status = "headers" if top is not None else "stored"
                    res.stored += 1
                    if m.uidl is not None:
                        self._unrecorded.append((m.uidl, top is not None))
                    done += m.size
                    if self.progress is not None:
                        self.progress(done, total)
            self._record()
            if self.opts.delete or self.opts.delete_after_days is not None:
                now = self.clock()
                self._dele([m for m in batch if m.status == "stored" and self._deletable(m, now)])

    def _record(self) -> None:
        """Make the batch durable in the destination, then in the state (in that order)."""
        self.dest.commit()
        if not self._unrecorded:
            return
        now = self.clock()
        for uidl, headers_only in self._unrecorded:
            self.state.record(uidl, headers_only=headers_only, when=now)
        self._unrecorded = []
        self.state.save()


def _size_bound(by_number: dict[int, MessageOutcome]) -> Callable[[int], int]:
    """Most bytes we accept for a message: twice what LIST said, plus slack."""
    return lambda n: by_number[n].size * 2 + SIZE_SLACK


def counted(chunks: Iterable[bytes], result: FetchResult) -> Iterator[bytes]:
    for chunk in chunks:
        result.bytes += len(chunk)
        yield chunk


def fetch(
    endpoint: Any,
    creds: Any,
    destination: Destination,
    options: FetchOptions,
    *,
    timeout: float = 60.0,
    transcript: Any = None,
    before_secret: Callable[[bool], None] | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """Connect to ``endpoint`` (an ``endpoint.Endpoint``), log in, and run the plan.

    The state file is locked for the whole run (a second run for the same mailbox exits 75
    at once). Errors before the fetch starts (connect, TLS, login) are raised; errors during
    it are in ``result.error`` with everything stored so far recorded.
    """
    ident = (endpoint.account, endpoint.host, creds.user)
    state = UIDLState(state_file(*ident), legacy=lambda: legacy_state_file(*ident))
    state.lock()
    try:
        # The state is read while the server answers the TLS handshake.
        client = POP3Client.open(
            endpoint.host,
            endpoint.port,
            tls_mode=endpoint.tls_mode,
            tls=endpoint.tls,
            timeout=timeout,
            transcript=transcript,
            while_waiting=state.load,
        )
        try:
            client.login(creds, method=endpoint.auth, before_secret=before_secret)
        except BaseException:
            client.close()
            raise
        fetcher = Fetcher(
            client,
            destination,
            state,
            options,
            host=endpoint.host,
            user=creds.user,
            progress=progress,
        )
        return fetcher.run()
    finally:
        state.unlock()
