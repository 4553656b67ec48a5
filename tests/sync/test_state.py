"""Snapshot + journal: replay, torn tails, idempotent replay after a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailtool.errors import ConfigError
from mailtool.sync.state import (
    JOURNAL_FILE,
    STATE_FILE,
    FolderState,
    Record,
    StateStore,
    message_key,
    parse_key,
    scan_keys,
)


def test_key_round_trip() -> None:
    assert parse_key(f"1700000000.{message_key(42, 7)}.host:2,S") == (42, 7)
    assert parse_key("1700000000.M1P2Q3.host") is None


def test_journal_replay_and_snapshot(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "INBOX")
    state = store.load()
    state.uidvalidity = 9
    store.record("+", 1, "new/a", "", 10)
    store.record("+", 2, "cur/b:2,S", "S", 20)
    store.commit()
    store.record("*", 1, "cur/a:2,F", "F")
    store.record("-", 2)
    store.record("n", 3)
    store.record("m", 77)
    store.commit()
    store.close()
    again = StateStore(tmp_path, "INBOX").load()
    assert again.records.keys() == {1}
    assert again.records[1].path == "cur/a:2,F" and again.records[1].flags == "F"
    assert again.uidnext == 3 and again.highestmodseq == 77
    # snapshot then replaying the same journal again changes nothing
    journal = (tmp_path / JOURNAL_FILE).read_bytes()
    store2 = StateStore(tmp_path, "INBOX")
    loaded = store2.load()
    loaded.uidvalidity = 9
    store2.snapshot(loaded)
    assert not (tmp_path / JOURNAL_FILE).exists()
    (tmp_path / JOURNAL_FILE).write_bytes(journal)  # crash before the journal was removed
    replayed = StateStore(tmp_path, "INBOX").load()
    assert replayed.to_json() == loaded.to_json()


def test_torn_tail_is_dropped_and_cut(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "INBOX")
    store.load()
    store.record("+", 1, "new/a", "", 1)
    store.commit()
    store.close()
    with open(tmp_path / JOURNAL_FILE, "ab") as handle:
        handle.write(b'+ 2  1 new/')
    state = StateStore(tmp_path, "INBOX").load()
    assert set(state.records) == {1}
    assert (tmp_path / JOURNAL_FILE).read_bytes() == b"+ 1  1 new/a\n"


def test_corrupt_middle_line_refused(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_bytes(b'garbage\n["+",1,"new/a","",1]\n')
    with pytest.raises(ConfigError):
        StateStore(tmp_path, "INBOX").load()


def test_corrupt_snapshot_refused(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text('{"version": 1}')
    with pytest.raises(ConfigError):
        StateStore(tmp_path, "INBOX").load()


def test_scan_keys(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / f"1.{message_key(5, 1)}.h").touch()
    (tmp_path / "cur" / f"1.{message_key(5, 2)}.h:2,S").touch()
    (tmp_path / "cur" / f"1.{message_key(6, 3)}.h:2,").touch()
    (tmp_path / "tmp" / f"1.{message_key(5, 4)}.h").touch()
    assert scan_keys(tmp_path, 5) == {1: f"new/1.{message_key(5, 1)}.h",
                                      2: f"cur/1.{message_key(5, 2)}.h:2,S"}
    assert scan_keys(tmp_path, 5, [2]) == {2: f"cur/1.{message_key(5, 2)}.h:2,S"}


def _sample_state() -> FolderState:
    state = FolderState(folder="INBOX", uidvalidity=7, uidnext=12, highestmodseq=99)
    state.records[3] = Record("new/1.V7U3.h", "", 120)
    state.records[5] = Record("cur/1.V7U5.h:2,FS", "FS", None)
    state.records[9] = Record("cur/1.V7U9.h:2,S", "S", 50, gone=True)
    state.records[-1] = Record("cur/odd name\\with\nbreak:2,", "", 7)  # renamed by hand
    return state


def test_snapshot_round_trip_and_header(tmp_path: Path) -> None:
    state = _sample_state()
    StateStore(tmp_path, "INBOX").snapshot(state)
    raw = (tmp_path / STATE_FILE).read_bytes()
    assert raw.startswith(b"mailtool-sync-state 2 7 12 99 2\n")
    assert raw.count(b"\n") == 5  # header + one line per record, the odd name escaped
    store = StateStore(tmp_path, "INBOX")
    head = store.header()
    assert head is not None
    assert (head.uidvalidity, head.uidnext, head.highestmodseq, head.live) == (7, 12, 99, 2)
    assert store.load().to_json() == state.to_json()


def test_header_is_none_while_a_journal_waits(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "INBOX")
    store.snapshot(_sample_state())
    store.record("n", 20)
    store.commit()
    store.close()
    again = StateStore(tmp_path, "INBOX")
    assert again.header() is None  # the counters in the snapshot are no longer the truth
    assert again.load().uidnext == 20


def test_version_1_files_still_load(tmp_path: Path) -> None:
    """State written by earlier releases (JSON snapshot and journal) is read and replayed."""
    import json

    old = {"version": 1, "folder": "INBOX", "uidvalidity": 4, "uidnext": 3,
           "highestmodseq": None, "messages": {"1": ["new/a", "", 10, False]}}
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    (tmp_path / JOURNAL_FILE).write_bytes(b'["+",2,"cur/b:2,S","S",20]\n["m",5]\n')
    store = StateStore(tmp_path, "INBOX")
    assert store.header() is None
    state = store.load()
    assert set(state.records) == {1, 2} and state.highestmodseq == 5
    store.snapshot(state)
    assert (tmp_path / STATE_FILE).read_bytes().startswith(b"mailtool-sync-state 2 4 3 5 2\n")


def _loaded_big_state(tmp_path: Path) -> tuple[StateStore, FolderState]:
    state = _sample_state()
    for uid in range(10, 60, 2):
        state.records[uid] = Record(f"cur/1.V7U{uid}.h:2,S", "S", uid * 10, gone=uid % 10 == 0)
    StateStore(tmp_path, "INBOX").snapshot(state)
    store = StateStore(tmp_path, "INBOX")
    loaded = store.load()
    assert loaded.base is not None and not loaded.touched
    return store, loaded


def _rendered_whole(state: FolderState) -> bytes:
    base, state.base = state.base, None
    try:
        return state.to_bytes()
    finally:
        state.base = base


def test_snapshot_after_a_few_changes_renders_only_those(tmp_path: Path) -> None:
    """The next snapshot reuses the lines read for records nobody touched and gives the
    same bytes as rendering every record: adds (first, middle, last), flag changes,
    removals, gone marks, an add then remove, journal replays and changes made in place."""
    store, state = _loaded_big_state(tmp_path)
    store.record("+", 4, "new/1.V7U4.h", "", 44)  # between 3 and 5
    store.record("+", 100, "new/1.V7U100.h", "", 1000)  # after the last
    store.record("+", -5, "cur/placeholder:2,", "", None)  # before the first
    store.record("*", 5, "cur/1.V7U5.h:2,S", "S")
    store.record("*", 77, "cur/nowhere:2,S", "S")  # not held: nothing changes
    store.record("-", 9)
    store.record("g", 12)
    store.record("+", 51, "new/1.V7U51.h", "", 5)
    store.record("-", 51)
    state.records[14].flags = "FS"  # in place, listed as the engine does
    state.records[14].path = "cur/1.V7U14.h:2,FS"
    state.touched.add(14)
    state.uidnext, state.highestmodseq = 101, 120
    assert state.base is not None
    assert state.base.merge(state.records, state.touched) is not None
    whole = _rendered_whole(state)
    assert state.to_bytes() == whole
    store.snapshot()
    assert state.base is None and not state.touched
    again = StateStore(tmp_path, "INBOX")
    head = again.header()
    assert head is not None and head.live == sum(
        1 for uid, rec in state.records.items() if uid > 0 and not rec.gone)
    assert again.load().to_json() == state.to_json()


def test_snapshot_after_a_journal_replay(tmp_path: Path) -> None:
    store, _ = _loaded_big_state(tmp_path)
    store.record("*", 20, "cur/1.V7U20.h:2,F", "F")
    store.record("+", 200, "new/1.V7U200.h", "", 9)
    store.commit()
    store.close()
    replayed = StateStore(tmp_path, "INBOX").load()  # the snapshot, then the journal
    assert replayed.base is not None and replayed.touched == {20, 200}
    assert replayed.to_bytes() == _rendered_whole(replayed)


def test_records_changed_behind_its_back_are_rendered_whole(tmp_path: Path) -> None:
    _, state = _loaded_big_state(tmp_path)
    state.records[300] = Record("new/x", "", 1)  # not listed in touched
    del state.records[3]
    state.records[301] = Record("new/y", "", 1)
    assert state.base is not None
    assert state.base.merge(state.records, state.touched) is None
    assert state.to_bytes() == _rendered_whole(state)
    assert b"\n300 " in state.to_bytes()


def test_snapshot_not_in_uid_order_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"mailtool-sync-state 2 7 12 99 2\n"
                                        b"5 S 1 0 cur/b:2,S\n3  1 0 new/a\n")
    state = StateStore(tmp_path, "INBOX").load()
    assert state.base is None and set(state.records) == {3, 5}
