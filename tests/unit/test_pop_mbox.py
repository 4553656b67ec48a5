"""The mbox writer pop-fetch uses: mboxrd quoting (whole and in pieces), locking, and the
roll-back of an append a killed run did not record (the state's ``pending`` entry)."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailtool.retrieve import UIDLState
from mailtool.store.destinations import MboxDestination
from mailtool.store.mbox import Mbox, MboxrdQuoter, quote_mboxrd


def test_mboxrd_quotes_from_lines_at_line_starts_only() -> None:
    assert quote_mboxrd(b"From a\n>From b\nx From c\nFrom") == (
        b">From a\n>>From b\nx From c\nFrom\n\n")  # "From" alone is no From_ line
    assert quote_mboxrd(b"no from here\n") == b"no from here\n\n"


@given(st.lists(st.sampled_from([b"From ", b">", b"\n", b"x", b"Fro", b"m ", b"F"]),
                max_size=30),
       st.integers(min_value=1, max_value=9))
def test_quoting_in_pieces_equals_whole(parts: list[bytes], size: int) -> None:
    data = b"".join(parts)
    quoter = MboxrdQuoter()
    out = b"".join(quoter.feed(data[i : i + size]) for i in range(0, len(data), size))
    assert out + quoter.finish() == quote_mboxrd(data)


def test_unrecorded_append_is_rolled_back_and_lock_released(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "mbox"
    state_file = tmp_path / "s.uidl"
    state = UIDLState(state_file)
    dest = MboxDestination(path)
    dest.begin(state)
    dest.store([b"Subject: one\r\n\r\nFrom here\r\n"], key=None, uidl="u1")
    state.record("u1")
    dest.commit()
    state.save()
    kept = os.path.getsize(path)
    # A second append whose run dies before recording it: the state says where it began.
    dest.store([b"Subject: two\r\n\r\nbody\r\n"], key=None, uidl="u2")
    assert os.path.getsize(path) > kept
    dest.end()  # (the kill: lock files go with the process; ours are released here)
    assert not os.path.exists(str(path) + ".lock")
    again = UIDLState(state_file).load()
    assert again.pending is not None and again.pending["offset"] == kept
    MboxDestination(path).begin(again)
    assert os.path.getsize(path) == kept and again.pending is None
    assert path.read_bytes().count(b"\nFrom ") == 0 and b">From here" in path.read_bytes()


def test_locked_releases_the_dot_lock_on_error(tmp_path: Path) -> None:
    mbox = Mbox(tmp_path / "m")
    try:
        with mbox.locked():
            assert os.path.exists(mbox.path + ".lock")
            raise KeyError("boom")
    except KeyError:
        pass
    assert not os.path.exists(mbox.path + ".lock")
    with mbox.locked() as held:
        held.append([b"x\n"])
    assert (tmp_path / "m").read_bytes().startswith(b"From MAILER-DAEMON ")
