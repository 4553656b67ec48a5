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
