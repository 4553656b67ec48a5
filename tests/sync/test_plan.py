"""The pure planning: flag table, plan, mass-delete guard, re-matching."""

from __future__ import annotations

import pytest

from mailtool.sync.plan import (
    AmbiguousMatchError,
    Identity,
    MassDeleteError,
    check_mass_delete,
    header_message_id,
    imap_flags,
    maildir_flags,
    make_plan,
    rematch,
)
from mailtool.sync.state import FolderState, Record


def test_flag_table() -> None:
    assert maildir_flags(["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]) == "DFRST"
    assert maildir_flags(["\\seen", "$Junk", "\\Recent"]) == "S"
    assert imap_flags("SF") == ["\\Flagged", "\\Seen"]


def _state(**records: str) -> FolderState:
    state = FolderState(folder="INBOX", uidvalidity=1, uidnext=10)
    for uid, flags in records.items():
        state.records[int(uid[1:])] = Record(f"cur/x{uid}:2,{flags}", flags, 10)
    return state


def test_plan_full_comparison() -> None:
    state = _state(u1="", u2="S", u3="F")
    plan = make_plan(state, new_uids=[10, 11, 2], flags={1: "S", 2: "S", 10: "F"},
                     present={1, 2, 10, 11})
    assert plan.fetch == [10, 11]
    assert plan.fetch_flags == {10: "F"}
    assert plan.flags == {1: "S"}
    assert plan.delete == [3]


def test_plan_vanished_and_keep() -> None:
    state = _state(u1="", u2="S")
    plan = make_plan(state, new_uids=[], flags={2: "SR"}, vanished=[1, 99], keep_deleted=True)
    assert plan.keep == [1] and plan.delete == [] and plan.flags == {2: "SR"}


def test_mass_delete_guard() -> None:
    check_mass_delete("f", 100, 25, max_share=0.25, allow=False)
    with pytest.raises(MassDeleteError, match="26 of 100"):
        check_mass_delete("f", 100, 26, max_share=0.25, allow=False)
    with pytest.raises(MassDeleteError, match="all 10"):
        check_mass_delete("f", 10, 10, max_share=1.0, allow=False)
    check_mass_delete("f", 100, 100, max_share=0.25, allow=True)
    check_mass_delete("f", 3, 3, max_share=0.25, allow=False)  # below the floor


def test_rematch_pairs_and_leftovers() -> None:
    local = {1: Identity("<a>", 10), 2: Identity("<b>", 20), 3: Identity(None, 5),
             4: Identity("<d>", 40)}
    server = {11: Identity("<a>", 10), 12: Identity("<b>", 21), 13: Identity(None, 5),
              14: Identity("<d>", 40), 15: Identity("<e>", 50)}
    match = rematch("f", local, server)
    assert match.pairs == {1: 11, 4: 14}
    assert match.unmatched_local == [2, 3]
    assert match.unmatched_server == [12, 13, 15]


def test_rematch_ambiguous_stops() -> None:
    local = {1: Identity("<a>", 10), 2: Identity("<a>", 10)}
    server = {5: Identity("<a>", 10)}
    with pytest.raises(AmbiguousMatchError, match="ambiguous"):
        rematch("f", local, server)
    # duplicates that the other side does not have are harmless
    assert rematch("f", local, {5: Identity("<z>", 1)}).pairs == {}


def test_header_message_id() -> None:
    assert header_message_id(b"Subject: x\r\nMessage-ID:\r\n <abc@d>\r\nTo: y") == "<abc@d>"
    assert header_message_id(b"message-id: <q@r>") == "<q@r>"
    assert header_message_id(b"Subject: x") is None
