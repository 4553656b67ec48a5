"""What one folder's sync will do, decided from the state and what the server says.

Pure functions, no I/O: the engine gathers the facts (which UIDs exist, their flags,
which vanished), this module turns them into a ``FolderPlan`` (UIDs to fetch, flag
changes, deletions) and checks it against the mass-delete guard. It also holds the
server <-> Maildir flag table and the re-matching after a UIDVALIDITY change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from mailtool.errors import DataError
from mailtool.record import field, record
from mailtool.sync.state import FolderState

#: IMAP system flags and their Maildir letters (https://cr.yp.to/proto/maildir.html).
FLAG_TABLE: dict[str, str] = {
    "\\Seen": "S",
    "\\Answered": "R",
    "\\Flagged": "F",
    "\\Deleted": "T",
    "\\Draft": "D",
}
_LOWER = {name.lower(): letter for name, letter in FLAG_TABLE.items()}
_BY_LETTER = {letter: name for name, letter in FLAG_TABLE.items()}

#: Default largest share of a folder one run may delete without --allow-mass-delete.
DEFAULT_MAX_DELETE_SHARE = 0.25
#: Runs deleting fewer messages than this are never stopped by the share rule or the
#: whole-folder rule: emptying a Trash of three messages is ordinary, not a disaster.
MASS_DELETE_FLOOR = 5


class MassDeleteError(DataError):
    """A run would delete a whole folder or more than the allowed share of it."""


class AmbiguousMatchError(DataError):
    """After a UIDVALIDITY change, local and server messages cannot be paired safely."""


def maildir_flags(server_flags: Iterable[str]) -> str:
    """Maildir flag letters (sorted) for IMAP flags; keywords are not mapped."""
    return "".join(sorted({_LOWER[f.lower()] for f in server_flags if f.lower() in _LOWER}))


def imap_flags(letters: str) -> list[str]:
    """IMAP system flags for Maildir letters (the way back, for two-way sync)."""
    return [_BY_LETTER[c] for c in sorted(set(letters)) if c in _BY_LETTER]


@record
class FolderPlan:
    """The changes one run makes to one local folder."""

    fetch: list[int] = field(default_factory=list)  # UIDs to download
    flags: dict[int, str] = field(default_factory=dict)  # UID -> new Maildir flags
    delete: list[int] = field(default_factory=list)  # UIDs whose local file goes
    keep: list[int] = field(default_factory=list)  # gone on the server, kept (--keep-deleted)
    #: UID -> Maildir flags for messages to fetch, when already known.
    fetch_flags: dict[int, str] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.fetch or self.flags or self.delete or self.keep)


def make_plan(
    state: FolderState,
    *,
    new_uids: Iterable[int],
    flags: Mapping[int, str],
    present: set[int] | None = None,
    vanished: Iterable[int] = (),
    keep_deleted: bool = False,
) -> FolderPlan:
    """Decide one folder's changes.

    Args:
        state: what we hold.
        new_uids: UIDs on the server we may not hold yet (those we do hold are skipped).
        flags: UID -> Maildir flags as the server has them now (all, or just the changed).
        present: every UID on the server, when known (then anything else we hold is gone).
        vanished: UIDs the server says were expunged (QRESYNC), when ``present`` is unknown.
        keep_deleted: keep local copies of messages gone from the server.
    """
    plan = FolderPlan()
    held = state.records
    plan.fetch = sorted(uid for uid in set(new_uids) if uid not in held)
    for uid in plan.fetch:
        if uid in flags:
            plan.fetch_flags[uid] = flags[uid]
    if present is not None:
        gone = {uid for uid, rec in held.items() if not rec.gone and uid not in present}
    else:
        gone = {uid for uid in vanished if uid in held and not held[uid].gone}
    for uid, letters in flags.items():
        rec = held.get(uid)
        if rec is not None and not rec.gone and uid not in gone and rec.flags != letters:
            plan.flags[uid] = letters
    if keep_deleted:
        plan.keep = sorted(gone)
    else:
        plan.delete = sorted(gone)
    return plan


def mass_delete_blocked(held: int, deleting: int, *, max_share: float, allow: bool) -> bool:
    """Whether ``check_mass_delete`` would stop a run with these numbers."""
    if allow or deleting < MASS_DELETE_FLOOR or held == 0:
        return False
    return deleting >= held or deleting > max_share * held


def check_mass_delete(
    folder: str, held: int, deleting: int, *, max_share: float, allow: bool, removed: int = 0
) -> None:
    """Stop a run that would delete a whole folder or more than ``max_share`` of it.

    ``removed``: local copies already removed as the server's first VANISHED sets arrived
    (a later set in the same answer tipped the balance); only the message says so.

    Raises:
        MassDeleteError: unless ``allow``.
    """
    if not mass_delete_blocked(held, deleting, max_share=max_share, allow=allow):
        return
    if deleting >= held:
        what = f"all {held} local messages"
    else:
        what = f"{deleting} of {held} local messages ({deleting / held:.0%}, more than " \
               f"{max_share:.0%})"
    raise MassDeleteError(
        f"would delete {what}; " + (f"only the first {removed} were deleted" if removed
                                    else "nothing was deleted"),
        step=f"folder {folder}",
        hint="check the server side; if this is intended, run again with --allow-mass-delete",
    )


@record(frozen=True)
class Identity:
    """What re-matching compares: the Message-ID header and the exact size."""

    message_id: str | None
    size: int


@record
class Rematch:
    """Old UID -> new UID pairs after a UIDVALIDITY change."""

    pairs: dict[int, int]  # old uid -> new uid
    unmatched_local: list[int]  # old UIDs with no partner (their files will go)
    unmatched_server: list[int]  # new UIDs with no partner (to fetch)


def rematch(
    folder: str, local: Mapping[int, Identity], server: Mapping[int, Identity]
) -> Rematch:
    """Pair local messages (old UIDs) with server messages (new UIDs) by Message-ID and size.

    A pair needs the same Message-ID and the same size, and the identity must be unique on
    both sides. Messages without a Message-ID never match (they are fetched again, then the
    old copy goes). Identical identities held more than once on a side that also appears
    on the other side cannot be paired without guessing, so the folder stops.

    Raises:
        AmbiguousMatchError: the match is ambiguous.
    """
    local_count = Counter(ident for ident in local.values() if ident.message_id)
    server_count = Counter(ident for ident in server.values() if ident.message_id)
    ambiguous = [
        ident for ident in local_count
        if ident in server_count and (local_count[ident] > 1 or server_count[ident] > 1)
    ]
    if ambiguous:
        example = ambiguous[0]
        raise AmbiguousMatchError(
            f"UIDVALIDITY changed and {len(ambiguous)} message identities are ambiguous "
            f"(e.g. Message-ID {example.message_id} with {example.size} bytes appears "
            f"{local_count[example]} times here and {server_count[example]} times on the "
            "server); this folder was not changed",
            step=f"folder {folder}",
            hint="move the local folder away and sync it again from scratch",
        )
    by_ident = {ident: uid for uid, ident in server.items() if ident.message_id}
    pairs: dict[int, int] = {}
    unmatched_local: list[int] = []
    for old_uid, ident in sorted(local.items()):
        new_uid = by_ident.get(ident) if ident.message_id else None
        if new_uid is None:
            unmatched_local.append(old_uid)
        else:
            pairs[old_uid] = new_uid
    taken = set(pairs.values())
    unmatched_server = sorted(uid for uid in server if uid not in taken)
    return Rematch(pairs, unmatched_local, unmatched_server)


def read_identity(path: str, *, limit: int = 256 * 1024) -> Identity:
    """Message-ID and wire size (CRLF line ends, as the server counts) of a stored message;
    reads at most ``limit`` header bytes for the Message-ID."""
    from mailtool.store.lineends import wire_size

    size = wire_size(path)
    message_id: str | None = None
    with open(path, "rb") as handle:
        head = handle.read(limit)
    end = len(head)
    for sep in (b"\r\n\r\n", b"\n\n"):
        pos = head.find(sep)
        if pos >= 0:
            end = min(end, pos)
    message_id = header_message_id(head[:end])
    return Identity(message_id, size)


def header_message_id(header: bytes) -> str | None:
    """The Message-ID in a header block (unfolded, whitespace-trimmed), or None."""
    current: list[bytes] = []
    found: bytes | None = None
    for line in header.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current and found is None and current[0].lower().startswith(b"message-id:"):
            found = b" ".join(part.strip() for part in current)[len(b"message-id:"):]
        current = [line]
    if current and found is None and current[0].lower().startswith(b"message-id:"):
        found = b" ".join(part.strip() for part in current)[len(b"message-id:"):]
    if found is None:
        return None
    text = found.strip().decode("utf-8", "replace")
    return text or None
