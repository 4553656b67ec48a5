"""pop-fetch against scripted faults: dropped connections, refusals, hostile listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailtool.retrieve import UIDLState, state_path
from tests.faults.server import Conn, ScriptedServer
from tests.helpers import Result, run_cli
from tests.pop3.conftest import maildir_bytes, maildir_files
from tests.pop3.fakepop import FakeMaildrop, Hook

pytestmark = pytest.mark.timeout(60)

MSGS = {1: b"Subject: one\n\nfirst\n", 2: b"Subject: two\n\n.second\n", 3: b"Subject: 3\n\nx\n"}


def drop() -> FakeMaildrop:
    return FakeMaildrop(dict(MSGS), {1: "u-1", 2: "u-2", 3: "u-3"})


def fetch(srv: ScriptedServer, *args: str, expect: int | None = 0) -> Result:
    return run_cli("--timeout", "10", "pop-fetch", "--host", "127.0.0.1", "--port",
                   str(srv.port), "--tls", "none", "--user", "ann", *args, expect=expect,
                   env={"MAILTOOL_PASSWORD": "secret"})


def recorded() -> set[str]:
    return set(UIDLState(state_path(None, "127.0.0.1", "ann")).load().messages)


def test_connection_dropped_mid_retr(tmp_path: Path) -> None:
    mail = drop()

    def half_retr(c: Conn, args: list[str]) -> bool:
        if args[0] != "2":
            return False
        c.send(b"+OK\r\nSubject: two\r\n\r\nhalf of it")
        c.reset()
        return True

    mail.hooks["RETR"] = half_retr
    md = tmp_path / "md"
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(md), "--delete", expect=75)
        srv.check()
    assert r.stderr.startswith("mailtool: ") and r.stderr.count("\n") == 1
    assert maildir_bytes(md) == [MSGS[1]]  # the whole first one, nothing of the second
    assert list((md / "tmp").iterdir()) == []
    assert recorded() == {"u-1"}
    assert not any(c.startswith(("DELE", "QUIT")) for c in mail.commands)
    assert mail.committed == set()
    # the next run takes the rest and deletes everything
    del mail.hooks["RETR"]
    with ScriptedServer(mail.handler) as srv:
        fetch(srv, "--maildir", str(md), "--delete")
        srv.check()
    assert maildir_bytes(md) == sorted(MSGS.values())
    assert mail.messages == {}


def test_err_on_dele_keeps_the_message_and_exits_75(tmp_path: Path) -> None:
    mail = drop()

    def refuse(c: Conn, args: list[str]) -> bool:
        if args[0] == "2":
            c.send(b"-ERR [SYS/TEMP] cannot delete now\r\n")
            return True
        return False

    mail.hooks["DELE"] = refuse
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(tmp_path / "md"), "--delete", "--json", expect=75)
        srv.check()
    doc = json.loads(r.stdout)
    assert doc["deleted"] == 2 and doc["stored"] == 3
    assert "cannot delete now" in " ".join(doc["warnings"])
    assert mail.committed == {1, 3} and set(mail.messages) == {2}
    assert len(maildir_files(tmp_path / "md")) == 3


def test_in_use_lock_exits_75(tmp_path: Path) -> None:
    mail = drop()

    def locked(c: Conn, args: list[str]) -> bool:
        c.send(b"-ERR [IN-USE] mailbox locked by another session\r\n")
        return True

    mail.hooks["PASS"] = locked
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(tmp_path / "md"), "--auth", "USER", expect=75)
    assert "locked by another session" in r.stderr and "[IN-USE]" in r.stderr
    assert "secret" not in r.stderr


@pytest.mark.parametrize("pipelining", [False, True])
def test_list_and_uidl_disagree(tmp_path: Path, pipelining: bool) -> None:
    """Without PIPELINING the whole LIST is compared with UIDL; with it, a few new messages
    are sized with ``LIST n`` each, and a -ERR there is the same disagreement."""
    mail = drop()
    mail.uidls = {1: "u-1", 2: "u-2", 4: "u-4"}
    if pipelining:
        mail.caps.append("PIPELINING")
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(tmp_path / "md"), "--delete", expect=76)
    assert "LIST and UIDL disagree" in r.stderr
    assert not any(c.startswith(("RETR", "DELE")) for c in mail.commands)
    assert ("LIST 4" in mail.commands) is pipelining


@pytest.mark.parametrize(
    ("lines", "what"),
    [
        (b"1 same\r\n2 same\r\n", "same unique-id"),
        (b"1 " + b"x" * 71 + b"\r\n", "invalid UIDL"),
        (b"1 a\r\n" + b"2 " + b"y" * 200_000, "longer than"),
    ],
)
def test_hostile_uidl_listings(tmp_path: Path, lines: bytes, what: str) -> None:
    mail = drop()

    def uidl(c: Conn, args: list[str]) -> bool:
        c.send(b"+OK\r\n" + lines + (b".\r\n" if lines.endswith(b"\n") else b""))
        return True

    mail.hooks["UIDL"] = uidl
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(tmp_path / "md"), expect=76)
    assert what in r.stderr
    assert not (tmp_path / "md" / "new").exists() or maildir_files(tmp_path / "md") == []


def test_endless_greeting_line() -> None:
    def handler(c: Conn) -> None:
        c.send(b"+OK " + b"z" * (1 << 20))
        c.read_until_closed()

    with ScriptedServer(handler) as srv:
        r = fetch(srv, "--stdout", expect=76)
    assert "longer than" in r.stderr


@pytest.mark.parametrize("pipelining", [False, True])
def test_no_uidl_refuses_keep_mode_and_works_with_delete(tmp_path: Path, pipelining: bool
                                                         ) -> None:
    mail = drop()
    if pipelining:  # LIST and UIDL then go out in one write
        mail.caps.append("PIPELINING")
    mail.hooks["UIDL"] = lambda c, a: (c.send(b"-ERR not implemented\r\n"), True)[1]
    md = tmp_path / "md"
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(md), expect=69)
        assert "no UIDL" in r.stderr
        r = fetch(srv, "--maildir", str(md), "--delete")
        srv.check()
    assert "no UIDL" in r.stderr  # said so
    assert maildir_bytes(md) == sorted(MSGS.values())
    assert mail.messages == {}


def test_stls_required_but_not_offered() -> None:
    mail = drop()
    with ScriptedServer(mail.handler) as srv:
        r = run_cli("--timeout", "10", "pop-fetch", "--host", "127.0.0.1", "--port",
                    str(srv.port), "--tls", "starttls", "--user", "ann", "--stdout",
                    expect=69, env={"MAILTOOL_PASSWORD": "secret"})
    assert "STLS" in r.stderr
    assert not any(c.startswith(("USER", "PASS", "AUTH")) for c in mail.commands)


def test_max_size_skips_or_takes_headers(tmp_path: Path) -> None:
    mail = drop()
    mail.messages[2] = b"Subject: big\n\n" + b"B" * 5000 + b"\n"
    md = tmp_path / "md"
    with ScriptedServer(mail.handler) as srv:
        r = fetch(srv, "--maildir", str(md), "--max-size", "1k", "--delete", "-v")
        assert "skipped" in r.stderr
        assert len(maildir_files(md)) == 2 and set(mail.messages) == {2}
        r = fetch(srv, "--maildir", str(md), "--max-size", "1k", "--headers-only", "--delete")
        srv.check()
    assert b"Subject: big\n\n" in maildir_bytes(md)
    assert set(mail.messages) == {2}  # headers only: never deleted


def test_second_run_is_locked_out(tmp_path: Path) -> None:
    import fcntl
    import os

    path = state_path(None, "127.0.0.1", "ann")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    try:
        mail = drop()
        with ScriptedServer(mail.handler) as srv:
            r = fetch(srv, "--maildir", str(tmp_path / "md"), expect=75)
        assert "another pop-fetch" in r.stderr
    finally:
        os.close(fd)


def test_killed_runs_partial_files_in_tmp_are_cleaned(tmp_path: Path) -> None:
    """A kill -9 mid-RETR leaves ``tmp/<time>.U<key>.<host>``; the next run of the same
    account (it holds the account's lock) removes its own at once. A fresh partial file of
    another account sharing the Maildir is kept (it may be that run's message in
    progress); an old one goes; files of other programs are never touched."""
    import os
    import time

    from mailtool.retrieve import message_key

    md = tmp_path / "md"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True)
    ours = md / "tmp" / f"1700000000.{message_key('127.0.0.1', 'ann', 'u-2')}.host"
    ours.write_bytes(b"Subject: two\n\nhalf")
    other = md / "tmp" / f"1700000000.{message_key('127.0.0.1', 'bob', 'u-2')}.host"
    other.write_bytes(b"in progress")
    old_other = md / "tmp" / f"1600000000.{message_key('other.test', 'bob', 'x')}.host"
    old_other.write_bytes(b"stale")
    stamp = time.time() - 2 * 3600
    os.utime(old_other, (stamp, stamp))
    foreign = md / "tmp" / "1700000000.M1P2Q3.host"
    foreign.write_bytes(b"another program's")
    mail = drop()
    with ScriptedServer(mail.handler) as srv:
        fetch(srv, "--maildir", str(md))
        srv.check()
    assert sorted(p.name for p in (md / "tmp").iterdir()) == sorted([other.name, foreign.name])
    assert maildir_bytes(md) == sorted(MSGS.values())


def test_listing_and_commands_are_pipelined_when_offered(tmp_path: Path) -> None:
    """With PIPELINING, the LISTs of the new messages leave in one write, as do the RETRs
    and the DELEs: the server sees each group before it has answered the first of it."""
    mail = drop()
    mail.caps.append("PIPELINING")
    seen_before_answer: list[list[str]] = []

    def watch(name: str) -> Hook:
        def hook(c: Conn, args: list[str]) -> bool:
            # commands already received (one write arrives in one piece on loopback)
            queued = [x for x in c.buf.decode().split("\r\n") if x]
            seen_before_answer.append([name, *args, "|", *queued])
            return False
        return hook

    for name in ("LIST", "RETR", "DELE"):
        mail.hooks[name] = watch(name)
    with ScriptedServer(mail.handler) as srv:
        fetch(srv, "--maildir", str(tmp_path / "md"), "--delete")
        srv.check()
    first = {row[0]: row for row in reversed(seen_before_answer)}
    assert first["LIST"][1:] == ["1", "|", "LIST 2", "LIST 3"]
    assert first["RETR"][1:] == ["1", "|", "RETR 2", "RETR 3"]
    assert first["DELE"][1:] == ["1", "|", "DELE 2", "DELE 3"]
    assert mail.committed == {1, 2, 3}
