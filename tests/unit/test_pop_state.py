"""pop-fetch's UIDL state (format 2, text) and its migration from format 1 (JSON), the state
file names, and the fast paths of the POP3 listing parsers against their checking forms."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtool.errors import ConfigError, ProtocolError
from mailtool.protocol.pop3.session import (
    MAX_TIMESTAMP,
    POP3Session,
    apop_timestamp,
    parse_uidl,
    parse_uidl_line,
)
from mailtool.protocol.replies import parse_pop3_status
from mailtool.retrieve import (
    UIDLState,
    legacy_state_file,
    state_file,
    state_path,
)


def test_round_trip_with_headers_only_and_pending(tmp_path: Path) -> None:
    path = tmp_path / "s.uidl"
    state = UIDLState(path)
    state.record("a", when=100)
    state.record("b~!", headers_only=True, when=200)
    state.pending = {"mbox": "/home/ann/my mail\nbox\udcff", "offset": 42, "uidl": "a"}
    state.save()
    loaded = UIDLState(path).load()
    assert loaded.messages == {"a": "100", "b~!": "200"}
    assert loaded.headers == {"b~!"}
    assert loaded.pending == state.pending
    state.record("b~!", when=300)  # now fetched whole: first-seen time kept, flag gone
    state.pending = None
    state.save()
    again = UIDLState(path).load()
    assert again.messages["b~!"] == "200" and again.headers == set() and again.pending is None


def test_save_without_changes_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.uidl"
    state = UIDLState(path)
    state.record("a", when=1)
    state.save()
    before = path.stat()
    loaded = UIDLState(path).load()
    loaded.prune({"a", "other"})
    loaded.save(force=False)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    loaded.prune(set())
    loaded.save(force=False)
    assert UIDLState(path).load().messages == {}


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (b"", "no header"),
        (b"something else 2\n", "no header"),
        (b"mailtool-pop3-uidl 2\na 1\n", "truncated"),
        (b"mailtool-pop3-uidl 2\na x -\n", "bad time"),
        (b"mailtool-pop3-uidl 2\na 1 z\n", "bad flag"),
        (b"mailtool-pop3-uidl 2 pending 1 zz 00\n", "bad pending"),
        (b"mailtool-pop3-uidl 2\n\xff 1 -\n", "not ASCII"),
        (b"mailtool-pop3-uidl 9\n", "unknown format"),
    ],
)
def test_corrupt_or_unknown_state_is_refused(tmp_path: Path, text: bytes, what: str) -> None:
    path = tmp_path / "s.uidl"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=what):
        UIDLState(path).load()


def test_version_1_json_is_migrated_on_first_save() -> None:
    ident = (None, "Pop.Example.org", "ann@example.org")
    legacy = legacy_state_file(*ident)
    os.makedirs(os.path.dirname(legacy), exist_ok=True)
    doc = {"version": 1, "messages": {"u1": {"t": 1700000000}, "u2": {"t": 5, "h": True}},
           "pending": {"mbox": "/m", "offset": 9, "uidl": "u3"}}
    Path(legacy).write_text(json.dumps(doc))
    Path(legacy[: -len(".json")] + ".lock").touch()
    new = state_file(*ident)
    state = UIDLState(new, legacy=lambda: legacy_state_file(*ident)).load()
    assert state.messages == {"u1": "1700000000", "u2": "5"}
    assert state.headers == {"u2"}
    assert state.pending == {"mbox": "/m", "offset": 9, "uidl": "u3"}
    assert os.path.exists(legacy)  # nothing is removed before the new file is durable
    state.save(force=False)  # migration counts as a change
    assert not os.path.exists(legacy) and not os.path.exists(legacy[:-5] + ".lock")
    again = UIDLState(new, legacy=lambda: pytest.fail("legacy looked up again")).load()
    assert again.messages == state.messages and again.headers == {"u2"}


def test_corrupt_version_1_json_is_refused() -> None:
    ident = ("acct", "h", "u")
    legacy = legacy_state_file(*ident)
    os.makedirs(os.path.dirname(legacy), exist_ok=True)
    Path(legacy).write_text('{"version": 1, "messages": {"a b": {"t": 1}}}')
    with pytest.raises(ConfigError, match="corrupt"):
        UIDLState(state_file(*ident), legacy=lambda: legacy).load()


def test_state_names_are_distinct_safe_and_stable() -> None:
    names = {
        os.path.basename(state_file(a, h, u))
        for a, h, u in [
            (None, "h", "a-b"), (None, "h-a", "b"), ("x", "h", "u"), (None, "h", "u"),
            ("x+h", "u", "v"), ("x", "h+u", "v"), ("é", "h", "u"), ("_", "h", "u"),
            (".hidden", "h", "u"), ("a/b", "h", "u"),
        ]
    }
    assert len(names) == 10
    for name in names:
        assert "/" not in name and not name.startswith(".") and name.endswith(".uidl")
        assert len(name) < 255
    # host names compare case-insensitively; a very long identity gets a hashed name
    assert state_file(None, "HOST", "u") == state_file(None, "host", "u")
    long = os.path.basename(state_file("a" * 300, "h", "u"))
    assert long.startswith("h-") and len(long) < 100
    assert state_path(None, "h", "u") == Path(state_file(None, "h", "u"))


# --- the parsers' fast paths agree with the checking forms ---------------------------------

_UIDL_RE = re.compile(r"<[^<>\s]{1,%d}>" % MAX_TIMESTAMP)


@given(st.text(alphabet="<> a.@\t\u2003x\x85", max_size=30))
def test_apop_timestamp_matches_the_grammar(text: str) -> None:
    greeting = parse_pop3_status(("+OK " + text + "\r\n").encode("utf-8"))
    m = _UIDL_RE.search(greeting.text)
    assert apop_timestamp(greeting) == (m.group(0) if m else None)


def _checked(lines: list[bytes]) -> dict[int, str] | type[ProtocolError]:
    uids: dict[int, str] = {}
    try:
        for line in lines:
            num, uid = parse_uidl_line(line)
            if num in uids or uid in uids.values():
                return ProtocolError
            uids[num] = uid
    except ProtocolError:
        return ProtocolError
    return uids


_token = st.sampled_from([b"1", b"2", b"01", b"0", b"10", b"a", b"x" * 70, b"y" * 71,
                          b"\x7f", b"!~", b"\xc3\xa9"])


@given(st.lists(st.builds(lambda a, sep, b: a + sep + b, _token,
                          st.sampled_from([b" ", b"  ", b"\t", b" x "]), _token), max_size=6))
def test_parse_uidl_fast_path_agrees_with_line_parser(lines: list[bytes]) -> None:
    expected = _checked(lines)
    if expected is ProtocolError:
        with pytest.raises(ProtocolError):
            parse_uidl(lines)
    else:
        assert parse_uidl(lines) == expected


@given(st.lists(st.sampled_from([b"1 a", b"2 b\r", b"3 c\r\r", b"", b"\r", b"4 \rd"]),
                max_size=8),
       st.integers(min_value=1, max_value=7))
def test_take_lines_strips_one_cr_per_line_like_next_event(lines: list[bytes], cut: int
                                                          ) -> None:
    wire = b"+OK\r\n" + b"".join(line + b"\n" for line in lines) + b".\r\n"

    def feed(bulk: bool) -> list[bytes]:
        s = POP3Session()
        s.receive_data(b"+OK hi\r\n")
        s.next_event()
        s.send_command("UIDL")
        got: list[bytes] = []
        for start in range(0, len(wire), cut):
            s.receive_data(wire[start : start + cut])
            while True:
                if bulk:
                    got += s.take_lines()
                event = s.next_event()
                name = type(event).__name__
                if name == "Line":
                    got.append(event.line)  # type: ignore[union-attr]
                elif name in ("End", "NeedData"):
                    break
            if name == "End":
                break
        return got

    assert feed(True) == feed(False) == [line[:-1] if line.endswith(b"\r") else line
                                         for line in lines]
