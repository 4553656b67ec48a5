"""Hostile IMAP servers against ``imap-sync``, ``imap-list`` and ``imap-show``."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.server import Conn, ScriptedServer
from tests.hostile.fakeimap import FakeIMAP, Folder
from tests.hostile.harness import (
    CLI_TIMEOUT,
    Expect,
    Outcome,
    check,
    flood,
    reset,
    run_cli_measured,
    stall,
)

pytestmark = pytest.mark.timeout(60)

M1 = b"Subject: one\r\nMessage-ID: <one@x>\r\n\r\nfirst\r\n"
M2 = b"Subject: two\r\nMessage-ID: <two@x>\r\n\r\nsecond\r\n"


def server() -> FakeIMAP:
    return FakeIMAP({"INBOX": Folder(7, {1: M1, 2: M2})})


def imap_args(port: int, command: str, *extra: str, tls: str = "none") -> list[str]:
    args = ["--timeout", str(CLI_TIMEOUT), command, "--host", "127.0.0.1", "--port", str(port),
            "--tls", tls, "--user", "ann"]
    if command == "imap-sync":
        args += ["--maildir", "../dest"]
    return [*args, *extra]


def bodies(root: Path, folder: str = "") -> list[bytes]:
    """Mirrored messages of one folder (line ends as CRLF, whatever the store keeps)."""
    base = root / "dest" / folder
    return sorted(p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                  for sub in ("new", "cur") if (base / sub).is_dir()
                  for p in (base / sub).iterdir())


def run(root: Path, imap: FakeIMAP | Callable[[Conn], None], expect: Expect, command: str,
        *extra: str, tls: str = "none", server_tls: Any = None) -> Outcome:
    handler = imap.handler if isinstance(imap, FakeIMAP) else imap
    with ScriptedServer(handler, tls=server_tls) as srv:
        outcome = run_cli_measured(imap_args(srv.port, command, *extra, tls=tls), root)
    check(outcome, expect)
    srv.check()
    return outcome


def hook(imap: FakeIMAP, name: str, fn: Callable[[Conn, str, str], None]) -> FakeIMAP:
    def wrapped(c: Conn, tag: str, args: str) -> bool:
        fn(c, tag, args)
        return True

    imap.hooks[name] = wrapped
    return imap








def fetch_then(tail: bytes, *, close: bool = True) -> Callable[[Conn, str, str], None]:
    """UID FETCH answered with the first message whole, then ``tail``."""
    def fn(c: Conn, tag: str, args: str) -> None:
        if "BODY.PEEK[]" not in args:
            c.send(b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
                   + tag.encode() + b" OK done\r\n")
            return
        c.send(b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n"
               % (len(M1), len(M1), M1) + tail.replace(b"TAG", tag.encode()))
        if close:
            c.close()
        else:
            c.read_until_closed()

    return fn


SYNC = "imap-sync"
CASES: list[tuple[str, Callable[[], FakeIMAP | Callable[[Conn], None]], Expect, str,
                  tuple[str, ...], int]] = [
    # (id, server, expectation, command, extra args, messages that must be mirrored)
    ("endless-greeting", lambda: (lambda c: flood(c, b"* OK ")),
     Expect(76, ("longer than",)), SYNC, (), 0),
    ("garbled-greeting", lambda: (lambda c: (c.send(b"HELLO I am IMAP\r\n"), stall(c))),
     Expect(76, ("HELLO",)), SYNC, (), 0),
    ("mismatched-tag", lambda: hook(server(), "LIST",
                                    lambda c, t, a: (c.send(b"Z999 OK LIST done\r\n"), stall(c))),
     Expect(76, ("LIST",)), SYNC, (), 0),
    ("uidvalidity-not-a-number", lambda: hook(server(), "EXAMINE", lambda c, t, a: (c.send(
        b"* 2 EXISTS\r\n* OK [UIDVALIDITY abc] x\r\n" + t.encode() + b" OK done\r\n"))),
     Expect(76, ("EXAMINE",)), SYNC, (), 0),
    ("enormous-literal", lambda: hook(server(), "UID FETCH", lambda c, t, a: (c.send(
        b"* 1 FETCH (UID 1 RFC822.SIZE 10 BODY[] {99999999999}\r\n"), stall(c))),
     Expect(76, ("FETCH",)), SYNC, (), 0),
    ("unterminated-literal", lambda: hook(server(), "UID FETCH", fetch_then(
        b"* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 40 BODY[] {40}\r\nonly ten b")),
     Expect(75, ("FETCH",)), SYNC, (), 1),
    ("bye-mid-fetch", lambda: hook(server(), "UID FETCH", fetch_then(
        b"* BYE going down for maintenance\r\n")),
     Expect(75, ("going down",)), SYNC, (), 1),
    ("untagged-no-mid-fetch", lambda: hook(server(), "UID FETCH", fetch_then(
        b"* NO [ALERT] disk trouble\r\nTAG NO [SERVERBUG] fetch failed\r\n", close=False)),
     Expect(75, ("FETCH", "fetch failed")), SYNC, (), 1),
    ("endless-fetch-line", lambda: hook(server(), "UID FETCH",
                                        lambda c, t, a: flood(c, b"* 1 FETCH (UID 1 FLAGS (")),
     Expect(76, ("FETCH",)), SYNC, (), 0),
    ("never-ending-untagged", lambda: hook(server(), "LIST",
                                           lambda c, t, a: _untagged_flood(c)),
     Expect(75, ("LIST", "within")), SYNC, (), 0),
    ("malformed-envelope", lambda: hook(server(), "UID FETCH", lambda c, t, a: c.send(
        b'* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 9 ENVELOPE ("d" "s" (("x"))))\r\n'
        + t.encode() + b" OK done\r\n")),
     Expect(76, ("ENVELOPE",)), "imap-list", ("INBOX",), 0),
    ("malformed-bodystructure", lambda: hook(server(), "UID FETCH", lambda c, t, a: c.send(
        b'* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 9 BODYSTRUCTURE ("TEXT" 7))\r\n'
        + t.encode() + b" OK done\r\n")),
     Expect(76, ("BODYSTRUCTURE",)), "imap-show", ("1",), 0),
    ("stall-after-accept", lambda: stall, Expect(75, ("within",)), SYNC, (), 0),
    ("stall-after-greeting", lambda: (lambda c: (c.send(
        b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n"), stall(c))),
     Expect(75, ("within",)), SYNC, (), 0),
    ("stall-mid-body", lambda: hook(server(), "UID FETCH", fetch_then(
        b"* 2 FETCH (UID 2 FLAGS () RFC822.SIZE 40 BODY[] {40}\r\nhalf", close=False)),
     Expect(75, ("FETCH", "within")), SYNC, (), 1),
    *[(f"reset-at-{verb.replace(' ', '-')}", lambda verb=verb: hook(server(), verb, reset),
       Expect(75, (verb.split()[-1],)), SYNC, (), 0)
      for verb in ("AUTHENTICATE", "LIST", "EXAMINE", "UID SEARCH", "UID FETCH")],
    # Everything mirrored and journalled before LOGOUT: a reset there loses nothing.
    ("reset-at-LOGOUT", lambda: hook(server(), "LOGOUT", reset), Expect(0, error_line=False),
     SYNC, (), 2),
]


def _untagged_flood(c: Conn) -> None:
    """Untagged responses to LIST that do not end (50,000, then silence, no tagged OK)."""
    block = b"* OK still thinking\r\n" * 5000
    try:
        for _ in range(10):
            c.send(block)
    except OSError:
        pass
    c.read_until_closed()


@pytest.mark.parametrize(("make", "expect", "command", "extra", "n_mirrored"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_imap(root: Path, make: Any, expect: Expect, command: str,
                      extra: tuple[str, ...], n_mirrored: int) -> None:
    run(root, make(), expect, command, *extra)
    got = bodies(root)
    assert len(got) == n_mirrored
    assert all(body in (M1, M2) for body in got)  # never a partial message
    tmp = root / "dest" / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())


def test_replies_split_at_every_byte(root: Path) -> None:
    imap = server()
    inner = imap.handler

    class Dribble:
        def __init__(self, c: Conn) -> None:
            self.c = c

        def __getattr__(self, name: str) -> Any:
            return getattr(self.c, name)

        def send(self, data: bytes | str) -> None:
            data = data.encode() if isinstance(data, str) else data
            for i in range(len(data)):
                self.c.send(data[i:i + 1])

    def handler(c: Conn) -> None:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        inner(Dribble(c))  # type: ignore[arg-type]

    run(root, handler, Expect(0, error_line=False), SYNC)
    assert bodies(root) == sorted([M1, M2])


def test_expunge_mid_fetch(root: Path) -> None:
    """An EXPUNGE between FETCH responses: what was fetched whole is kept, nothing breaks."""
    imap = hook(server(), "UID FETCH", fetch_then(
        b"* 2 EXPUNGE\r\nTAG OK done\r\n", close=False))
    imap.hooks["LOGOUT"] = lambda c, t, a: (c.send(f"{t} OK bye\r\n".encode()), c.close(), True)[2]
    run(root, imap, Expect(0, error_line=False), SYNC)
    assert bodies(root) == [M1]


@pytest.mark.parametrize("name", ["../../escape", "..", "a/../../b", "/etc/cron.d",
                                  "INBOX/../../x", ".hidden/..", "~/x", "a\\..\\..\\b"])
def test_path_traversal_folder_names(root: Path, name: str) -> None:
    imap = FakeIMAP({"INBOX": Folder(7, {1: M1}), name: Folder(9, {5: M2})})
    out = run(root, imap, Expect(0, error_line=False), SYNC, "--json")
    written = [p for p in out.changed() if p.startswith("dest")]
    assert written and all((root / p).resolve().is_relative_to((root / "dest").resolve())
                           for p in written)
    folders = [p for p in written if out.after[p] == "dir" and p.count(os.sep) == 1
               and (root / p / "new").is_dir()]
    assert [M2] in [bodies(root, p.split(os.sep, 1)[1]) for p in folders]


def test_uidvalidity_change_rematches_without_duplicates(root: Path) -> None:
    imap = server()
    run(root, imap, Expect(0, error_line=False), SYNC)
    assert bodies(root) == sorted([M1, M2])
    # The folder is recreated: new UIDVALIDITY, new UIDs, one message gone, one new.
    m3 = b"Subject: three\r\nMessage-ID: <three@x>\r\n\r\nthird\r\n"
    imap.folders["INBOX"] = Folder(8, {10: M2, 11: m3})
    out = run(root, imap, Expect(0, error_line=False), SYNC, "--json")
    doc = json.loads(out.stdout)
    row = next(r for r in doc["folders"] if r["folder"] == "INBOX")
    assert row["mode"] == "rematch"
    assert bodies(root) == sorted([M2, m3])


def test_starttls_injected_bytes_are_never_parsed(root: Path, test_ca: Any) -> None:
    """CVE-2011-0411 class: what follows the STARTTLS OK in cleartext must be dropped."""
    imap = server()
    imap.caps = "IMAP4rev1 STARTTLS LOGINDISABLED"
    imap.greeting = f"* OK [CAPABILITY {imap.caps}] hi\r\n".encode()

    def starttls(c: Conn, tag: str, args: str) -> None:
        c.send(f"{tag} OK begin TLS\r\n* BYE [ALERT] INJECTED\r\n"
               f"* CAPABILITY IMAP4rev1 INJECTED\r\n".encode())
        c.starttls(test_ca.server_context())
        imap.caps = "IMAP4rev1 AUTH=PLAIN"

    hook(imap, "STARTTLS", starttls)
    out = run(root, imap, Expect(0, error_line=False), SYNC, "--ca-file",
              str(test_ca.ca_file), tls="starttls")
    assert "INJECTED" not in out.stderr
    assert imap.commands[1].endswith("CAPABILITY")  # asked again, over TLS
    assert bodies(root) == sorted([M1, M2])


def test_starttls_refused_while_required(root: Path, test_ca: Any) -> None:
    imap = server()
    imap.caps += " STARTTLS"
    imap.greeting = f"* OK [CAPABILITY {imap.caps}] hi\r\n".encode()
    hook(imap, "STARTTLS", lambda c, t, a: c.send(f"{t} NO TLS is broken\r\n".encode()))
    run(root, imap, Expect(69, ("STARTTLS", "TLS is broken")), SYNC, "--ca-file",
        str(test_ca.ca_file), tls="starttls")
    assert not any(" LOGIN " in c or "AUTHENTICATE" in c for c in imap.commands)


def test_starttls_stripped_from_capabilities(root: Path, test_ca: Any) -> None:
    imap = server()
    run(root, imap, Expect(69, ("STARTTLS",)), SYNC, "--ca-file", str(test_ca.ca_file),
        tls="starttls")
    assert not any(" LOGIN " in c or "AUTHENTICATE" in c for c in imap.commands)


@pytest.mark.parametrize("cert", ["expired", "self_signed", "wrong_host"])
def test_bad_certificates(root: Path, test_ca: Any, cert: str) -> None:
    imap = server()
    run(root, imap, Expect(69, ("certificate",)), SYNC, "--ca-file", str(test_ca.ca_file),
        tls="implicit", server_tls=getattr(test_ca, cert)().server_context())
    assert imap.commands == []
