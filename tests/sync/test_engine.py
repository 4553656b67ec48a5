"""The engine over an in-memory server: every mode, guards, crashes (no network)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mailtool.sync.engine import SyncOptions, choose_folders, sync_folders
from mailtool.sync.plan import AmbiguousMatchError, MassDeleteError
from mailtool.sync.state import StateStore

from .fake import FakeSource, message

MODES = [
    pytest.param(dict(condstore=True, qresync=True), id="qresync"),
    pytest.param(dict(condstore=True, qresync=False), id="condstore"),
    pytest.param(dict(condstore=False, qresync=False), id="plain"),
]


def local_files(folder: Path) -> dict[str, bytes]:
    """Maildir file name (without flags) -> content, over new/ and cur/."""
    out = {}
    for sub in ("new", "cur"):
        if (folder / sub).is_dir():
            for p in (folder / sub).iterdir():
                out[f"{sub}/{p.name}"] = p.read_bytes()
    return out


def on_disk_message(n: int) -> bytes:
    return on_disk(message(n))


def on_disk(raw: bytes) -> bytes:
    """What a message looks like in the Maildir: the server's bytes with LF line ends."""
    return raw.replace(b"\r\n", b"\n")


def contents(folder: Path) -> list[bytes]:
    return sorted(local_files(folder).values())


def flags_by_body(folder: Path) -> dict[bytes, str]:
    out = {}
    for name, data in local_files(folder).items():
        out[data] = name.split(":2,", 1)[1] if ":2," in name else ""
    return out


def run(src: FakeSource, root: Path, **opts: object) -> list:
    folders = [f for f in src.folders()]
    return sync_folders(src, root, folders, SyncOptions(**opts))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_first_and_incremental(tmp_path: Path, mode: dict) -> None:
    src = FakeSource(**mode)
    inbox = src.tree["INBOX"]
    for n in range(20):
        inbox.add(message(n), ["\\Seen"] if n % 2 else [])
    root = tmp_path / "mail"
    [res] = run(src, root, batch_messages=6)
    assert res.mode == "first" and res.fetched == 20
    assert contents(root) == sorted(on_disk(m) for m, _, _ in inbox.messages.values())
    assert flags_by_body(root)[on_disk_message(1)] == "S"
    assert sum(k.startswith("new/") for k in local_files(root)) == 10  # unflagged: new/
    # nothing changed: one EXAMINE
    src.calls.clear()
    [res] = run(src, root)
    if mode["condstore"]:
        assert res.mode == "unchanged" and len(src.calls) == 1
    else:  # one compact UID/FLAGS comparison
        assert res.mode == "full" and len(src.calls) == 2 and res.fetched == 0
    # add, flag, expunge
    inbox.add(message(100))
    inbox.set_flags(2, ["\\Flagged", "\\Answered"])
    inbox.set_flags(1, ["\\Seen"])
    inbox.expunge(3)
    [res] = run(src, root)
    assert (res.fetched, res.flagged, res.deleted) == (1, 2, 1)
    assert contents(root) == sorted(on_disk(m) for m, _, _ in inbox.messages.values())
    fl = flags_by_body(root)
    assert fl[on_disk_message(1)] == "FR" and fl[on_disk_message(0)] == "S" and on_disk_message(2) not in fl
    # state survives and the next run is a no-op again
    [res] = run(src, root)
    assert res.mode == ("unchanged" if mode["condstore"] else "full")
    assert (res.fetched, res.flagged, res.deleted) == (0, 0, 0)


def test_non_ascii_and_hostile_folders(tmp_path: Path) -> None:
    src = FakeSource()
    for name in ("Entwürfe", "日本語/メール", "../x", "a/../../b", "/etc"):
        from .fake import FakeFolder

        src.tree[name] = FakeFolder()
        src.tree[name].add(message(len(name)))
    root = tmp_path / "mail"
    results = run(src, root)
    assert all(r.status == "ok" for r in results)
    assert sorted(os.listdir(root)) == sorted(
        [".%.etc", ".%2E%2E.x", ".a.%2E%2E.%2E%2E.b", ".Entwürfe", ".日本語.メール",
         "cur", "new", "tmp", "mailtool-sync.state", "mailtool-sync.lock"])
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    assert (root / ".Entwürfe" / "maildirfolder").exists()


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    src = FakeSource()
    for n in range(3):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    [res] = run(src, root, dry_run=True)
    assert res.would_fetch == [1, 2, 3] and not root.exists()
    run(src, root)
    src.tree["INBOX"].expunge(1)
    [res] = run(src, root, dry_run=True)
    assert res.would_delete == [1] and len(contents(root)) == 3


def test_keep_deleted(tmp_path: Path) -> None:
    src = FakeSource()
    for n in range(3):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    run(src, root)
    src.tree["INBOX"].expunge(2)
    [res] = run(src, root, keep_deleted=True)
    assert res.kept == 1 and len(contents(root)) == 3
    state = StateStore(root, "INBOX").load()
    assert state.records[2].gone


@pytest.mark.parametrize("mode", MODES)
def test_mass_delete_guard(tmp_path: Path, mode: dict) -> None:
    src = FakeSource(**mode)
    inbox = src.tree["INBOX"]
    for n in range(40):
        inbox.add(message(n))
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 12):
        inbox.expunge(uid)
    [res] = run(src, root)
    assert res.status == "error" and res.exit_code == MassDeleteError.exit_code
    assert "11 of 40" in (res.error or "") and len(contents(root)) == 40
    [res] = run(src, root, max_delete_share=0.5)
    assert res.deleted == 11 and len(contents(root)) == 29
    for uid in range(12, 41):
        inbox.expunge(uid)
    [res] = run(src, root)
    assert "all 29" in (res.error or "")
    [res] = run(src, root, allow_mass_delete=True)
    assert res.deleted == 29 and contents(root) == []


def test_uidvalidity_change_rematches(tmp_path: Path) -> None:
    src = FakeSource()
    inbox = src.tree["INBOX"]
    for n in range(10):
        inbox.add(message(n), ["\\Seen"])
    inbox.add(message(10, msgid=""))  # no Message-ID: fetched again, old copy goes
    root = tmp_path / "mail"
    run(src, root)
    before = set(local_files(root))
    inbox.recreate()
    inbox.set_flags(1, ["\\Flagged"])
    src.calls.clear()
    [res] = run(src, root)
    assert res.mode == "rematch" and res.rematched == 10
    assert res.fetched == 1 and res.deleted == 1
    assert contents(root) == sorted(on_disk(m) for m, _, _ in inbox.messages.values())
    assert len(set(local_files(root)) & before) == 9  # matched files kept, not re-downloaded
    assert flags_by_body(root)[on_disk_message(0)] == "F"
    [res] = run(src, root)
    assert res.mode == "unchanged"


def test_uidvalidity_change_ambiguous_stops(tmp_path: Path) -> None:
    src = FakeSource()
    inbox = src.tree["INBOX"]
    inbox.add(message(1, msgid="<same@x>"))
    inbox.add(message(1, msgid="<same@x>"))
    root = tmp_path / "mail"
    run(src, root)
    inbox.recreate()
    [res] = run(src, root)
    assert res.status == "error" and res.exit_code == AmbiguousMatchError.exit_code
    assert "ambiguous" in (res.error or "")
    assert StateStore(root, "INBOX").load().uidvalidity == 1000  # untouched


@pytest.mark.parametrize("fail_after", [0, 3, 7, 12])
def test_interrupted_fetch_resumes_without_duplicates(tmp_path: Path, fail_after: int) -> None:
    src = FakeSource()
    for n in range(15):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    src.fail_after = fail_after
    with pytest.raises(ConnectionResetError):
        run(src, root, batch_messages=5)
    assert not os.listdir(root / "tmp")
    src.fail_after = None
    run(src, root, batch_messages=5)
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())


def test_file_stored_before_journal_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    src = FakeSource()
    for n in range(6):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"

    def crash(self: StateStore) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(StateStore, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        run(src, root, batch_messages=4)
    monkeypatch.undo()
    assert len(contents(root)) == 4  # published, never journalled
    [res] = run(src, root)
    assert res.adopted == 4 and res.fetched == 2
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())


def test_choose_folders() -> None:
    src = FakeSource()
    from .fake import FakeFolder

    for name in ("Sent", "Lists/a", "Lists/b", "Trash"):
        src.tree[name] = FakeFolder()
    chosen, missing = choose_folders(src.folders(), include=["Lists/*", "INBOX"],
                                     exclude=["*/b"])
    assert [f.name for f in chosen] == ["INBOX", "Lists/a"] and missing == []
    chosen, missing = choose_folders(src.folders(), names=["inbox", "Nope"])
    assert [f.name for f in chosen] == ["INBOX"] and missing == ["Nope"]


def test_crash_in_a_later_run_is_adopted_and_clean_runs_never_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a run that did not finish leaves files outside the state, so only then is the
    folder scanned for them: the in-progress mark (journal) exists before any publish."""
    from mailtool.sync import engine

    scans: list[object] = []
    real_scan = engine.scan_keys

    def counting_scan(*args: object) -> dict[int, str]:
        scans.append(args)
        return real_scan(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "scan_keys", counting_scan)
    src = FakeSource()
    for n in range(3):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    run(src, root)  # may scan: the directory exists (the lock) but no state does yet
    scans.clear()
    for n in range(3, 9):
        src.tree["INBOX"].add(message(n))
    [res] = run(src, root)
    assert res.fetched == 6 and scans == []  # clean runs: no scan of the folder

    for n in range(9, 15):
        src.tree["INBOX"].add(message(n))

    def crash(self: StateStore) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(StateStore, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        run(src, root, batch_messages=4)
    monkeypatch.setattr(StateStore, "commit", real_commit)
    assert len(contents(root)) == 13  # 4 published, never journalled
    [res] = run(src, root)
    assert (res.adopted, res.fetched) == (4, 2) and len(scans) == 1
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())
    run(src, root)
    assert len(scans) == 1


real_commit = StateStore.commit


def test_full_batches_are_made_durable_while_the_next_downloads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every full batch goes to the disk on the helper thread, the last one on the main
    thread; each is journalled only after its files are published, and all of them are."""
    import threading

    from mailtool.store.maildir import MaildirBatch

    threads: list[str] = []
    real_commit = MaildirBatch.commit_names
    real_each = MaildirBatch.commit_names_fsync_each

    def commit(self: MaildirBatch) -> list[str]:
        threads.append(threading.current_thread().name)
        return real_commit(self)

    def each(self: MaildirBatch, threads_: int = 8) -> list[str]:
        threads.append(threading.current_thread().name + " fsync each")
        return real_each(self, threads_)

    monkeypatch.setattr(MaildirBatch, "commit_names", commit)
    monkeypatch.setattr(MaildirBatch, "commit_names_fsync_each", each)
    src = FakeSource()
    for n in range(7):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    [res] = run(src, root, batch_messages=3)
    assert threads == ["mailtool-sync-durability", "mailtool-sync-durability",
                       "MainThread fsync each"]
    assert res.fetched == 7
    state = StateStore(root, "INBOX").load()
    assert sorted(state.records) == list(range(1, 8))
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())


def test_a_str_root_works_without_pathlib(tmp_path: Path) -> None:
    """The engine takes a ``str`` root (a fast CLI path need not import pathlib)."""
    from mailtool.sync.paths import folder_path

    assert folder_path(str(tmp_path), "Sent", "/") == os.path.join(str(tmp_path), ".Sent")
    src = FakeSource()
    src.tree["INBOX"].add(message(1))
    from .fake import FakeFolder

    src.tree["Sent"] = FakeFolder()
    src.tree["Sent"].add(message(2))
    results = run(src, str(tmp_path / "mail"))  # type: ignore[arg-type]
    assert [r.fetched for r in results] == [1, 1]
    assert contents(tmp_path / "mail" / ".Sent") == [on_disk_message(2)]


@pytest.mark.parametrize("count", [3, 40])
def test_removals_find_files_a_mail_reader_renamed(tmp_path: Path, count: int) -> None:
    """Removals (on helper threads when many) still find a file renamed since the last
    run, and every removal is journalled."""
    src = FakeSource()
    for n in range(count + 2):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    run(src, root)
    names = sorted(os.listdir(root / "new"))
    for name in names[:2] + names[-2:]:  # a reader saw them: new/NAME -> cur/NAME:2,S
        os.rename(root / "new" / name, root / "cur" / f"{name}:2,S")
    for uid in range(1, count + 1):
        src.tree["INBOX"].expunge(uid)
    [res] = run(src, root, allow_mass_delete=True)
    assert res.deleted == count
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())
    assert sorted(StateStore(root, "INBOX").load().records) == [count + 1, count + 2]


@pytest.mark.parametrize("mode", MODES)
def test_crash_after_renames_before_the_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 mode: dict) -> None:
    """Flag renames and removals are recorded only by the final snapshot: a crash just
    before it leaves the old state, and the rerun converges (finding moved files by key)."""
    src = FakeSource(**mode)
    for n in range(30):
        src.tree["INBOX"].add(message(n))
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 21):
        src.tree["INBOX"].set_flags(uid, ["\\Seen", "\\Flagged"])
    for uid in range(21, 26):
        src.tree["INBOX"].expunge(uid)

    def crash(self: StateStore, state: object = None, **kwargs: object) -> None:
        raise KeyboardInterrupt

    real_snapshot = StateStore.snapshot
    monkeypatch.setattr(StateStore, "snapshot", crash)
    with pytest.raises(KeyboardInterrupt):
        run(src, root)
    monkeypatch.setattr(StateStore, "snapshot", real_snapshot)
    [res] = run(src, root)
    assert res.status == "ok"
    expected = {on_disk(raw): "FS" if uid <= 20 else ""
                for uid, (raw, _, _) in src.tree["INBOX"].messages.items()}
    assert flags_by_body(root) == expected
    state = StateStore(root, "INBOX").load()
    assert sorted(state.records) == [*range(1, 21), *range(26, 31)]
    assert all(os.path.exists(root / rec.path) for rec in state.records.values())


def test_a_few_new_messages_never_wait_for_syncfs(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A small last batch is made durable by fsyncs of its own files (in parallel), never
    by syncfs, whose cost is whatever the whole file system has to write."""
    from mailtool.store import maildir

    fsynced: list[str] = []
    real_fsync = maildir._fsync_path

    def no_syncfs(path: str) -> bool:
        raise AssertionError("syncfs used for a small batch")

    def fsync(path: str) -> None:
        fsynced.append(path)
        real_fsync(path)

    monkeypatch.setattr(maildir, "_syncfs", no_syncfs)
    monkeypatch.setattr(maildir, "_fsync_path", fsync)
    src = FakeSource()
    for n in range(30):
        src.tree["INBOX"].add(message(n))
    [res] = run(src, tmp_path / "mail")
    assert res.fetched == 30 and len(fsynced) == 30
    assert all("/tmp/" in p for p in fsynced)  # each file before it was published


def _source_with(count: int, **mode: bool) -> FakeSource:
    src = FakeSource(**mode)
    for n in range(count):
        src.tree["INBOX"].add(message(n))
    return src




def _log_answer_read(monkeypatch: pytest.MonkeyPatch, src: Any, log: list[str]) -> None:
    """Append "answer read" to ``log`` once the EXAMINE answer has been read whole."""
    real_begin = src.select_begin

    def select_begin(*args: object, **kwargs: object) -> object:
        finish = real_begin(*args, **kwargs)

        def traced() -> object:
            sel = finish()
            log.append("answer read")
            return sel

        return traced

    monkeypatch.setattr(src, "select_begin", select_begin)

def test_vanished_removals_start_while_the_answer_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With QRESYNC the local removals are queued from the VANISHED callback, before the
    rest of the EXAMINE answer has been read, and not queued a second time."""
    from mailtool.sync import engine

    src = _source_with(40)
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 9):
        src.tree["INBOX"].expunge(uid)
    src.tree["INBOX"].set_flags(20, ["\\Seen"])
    events: list[str] = []
    real_add = engine._Removal.add

    def add(self: engine._Removal, paths: object) -> None:
        paths = list(paths)  # type: ignore[call-overload]
        events.append(f"remove {len(paths)}")
        real_add(self, paths)

    monkeypatch.setattr(engine._Removal, "add", add)
    _log_answer_read(monkeypatch, src, events)
    [res] = run(src, root)
    assert res.mode == "qresync" and res.deleted == 8 and res.flagged == 1
    assert events == ["remove 8", "answer read"]
    assert contents(root) == sorted(on_disk(m) for m, _, _ in src.tree["INBOX"].messages.values())
    assert sorted(StateStore(root, "INBOX").load().records) == list(range(9, 41))


@pytest.mark.parametrize("opts", [dict(dry_run=True), dict(keep_deleted=True)])
def test_vanished_is_not_acted_on_early_when_the_run_removes_nothing(
        tmp_path: Path, opts: dict) -> None:
    src = _source_with(10)
    root = tmp_path / "mail"
    run(src, root)
    src.tree["INBOX"].expunge(1)
    [res] = run(src, root, **opts)
    assert res.status == "ok" and (res.kept == 1 or res.would_delete == [1])
    assert src.vanished_calls == 0 and len(contents(root)) == 10


def test_guard_tripped_by_a_later_vanished_set(tmp_path: Path) -> None:
    """VANISHED in two sets: the first (6 of 40) passes the guard and its files go at
    once; the second tips it (11 of 40): the run stops, says so, and a rerun allowed to
    delete that much finds the first six already gone."""
    src = _source_with(40)
    src.vanished_sets = 2
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 12):
        src.tree["INBOX"].expunge(uid)
    [res] = run(src, root)
    assert res.status == "error" and "11 of 40" in (res.error or "")
    assert "only the first 6 were deleted" in (res.error or "")
    assert len(contents(root)) == 34
    [res] = run(src, root, max_delete_share=0.5)
    assert res.status == "ok" and res.deleted == 11 and len(contents(root)) == 29
    assert sorted(StateStore(root, "INBOX").load().records) == list(range(12, 41))


def test_snapshot_replaces_the_old_one_only_after_the_directory_fsyncs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The directories are fsynced on helper threads while the snapshot is rendered and
    written, but the new snapshot takes the old one's place only once they are done (it
    records renames and removals that must not be lost behind it)."""
    from mailtool.sync import engine

    src = _source_with(30)
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 11):
        src.tree["INBOX"].set_flags(uid, ["\\Seen"])
    src.tree["INBOX"].expunge(20)
    events: list[str] = []
    real_fsync_dir, real_replace = engine.fsync_dir, os.replace

    def fsync_dir(path: str) -> None:
        real_fsync_dir(path)
        events.append(f"fsync {os.path.basename(path)}")

    def replace(src_path: str, dst_path: str) -> None:
        events.append(f"replace {os.path.basename(dst_path)}")
        real_replace(src_path, dst_path)

    monkeypatch.setattr(engine, "fsync_dir", fsync_dir)
    monkeypatch.setattr(os, "replace", replace)
    [res] = run(src, root)
    assert res.flagged == 10 and res.deleted == 1
    assert sorted(events[:2]) == ["fsync cur", "fsync new"]
    assert events[2:] == ["replace mailtool-sync.state"]


def test_removed_files_left_in_tmp_by_a_crash_are_cleared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after removed files left the Maildir (renamed into tmp/) but before their
    unlinks and the snapshot: the rerun removes the same messages again, finds them gone,
    and clears tmp/ of them."""
    from mailtool.sync import engine

    src = _source_with(30)
    root = tmp_path / "mail"
    run(src, root)
    for uid in range(1, 6):
        src.tree["INBOX"].expunge(uid)

    def crash(self: StateStore, state: object = None, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine._Removal, "_unlink", lambda self: None)
    monkeypatch.setattr(StateStore, "snapshot", crash)
    with pytest.raises(KeyboardInterrupt):
        run(src, root)
    assert len(os.listdir(root / "tmp")) == 5 and len(contents(root)) == 25
    monkeypatch.undo()
    src.tree["INBOX"].set_flags(10, ["\\Seen"])
    [res] = run(src, root)
    assert res.status == "ok" and res.deleted == 5 and res.flagged == 1
    assert os.listdir(root / "tmp") == [] and len(contents(root)) == 25
    assert sorted(StateStore(root, "INBOX").load().records) == list(range(6, 31))


def test_a_removal_failing_as_vanished_arrives_fails_the_folder_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local error while VANISHED is being read does not cut the server's answer short:
    it is raised once the answer is read, and nothing is recorded."""
    from mailtool.errors import LocalIOError
    from mailtool.sync import engine

    src = _source_with(20)
    root = tmp_path / "mail"
    run(src, root)
    src.tree["INBOX"].expunge(3)
    read: list[str] = []

    def broken(self: engine._Removal, paths: object) -> None:
        read.append("removal")
        raise LocalIOError("cannot remove x: Permission denied")

    monkeypatch.setattr(engine._Removal, "add", broken)
    _log_answer_read(monkeypatch, src, read)
    with pytest.raises(LocalIOError, match="Permission denied"):  # local I/O ends the run
        run(src, root)
    assert read == ["removal", "answer read"]
    assert 3 in StateStore(root, "INBOX").load().records
