"""Hostile POP3 servers against ``mailtool pop-fetch --delete`` (one behaviour per case).

Besides the shared checks, every case asserts what was committed: which messages were
stored, whether DELE/QUIT reached the server for anything not stored, and the UIDL state.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailtool.retrieve import state_path
from tests.faults.server import Conn, ScriptedServer
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
from tests.pop3.fakepop import FakeMaildrop

pytestmark = pytest.mark.timeout(60)

MSGS = {1: b"Subject: one\n\nfirst\n", 2: b"Subject: two\n\n.dotted\n"}


def drop() -> FakeMaildrop:
    return FakeMaildrop(dict(MSGS), {1: "u-1", 2: "u-2"})


def fetch_args(port: int, *extra: str, tls: str = "none") -> list[str]:
    return ["--timeout", str(CLI_TIMEOUT), "pop-fetch", "--host", "127.0.0.1", "--port",
            str(port), "--tls", tls, "--user", "ann", "--maildir", "../dest", "--delete",
            *extra]


def state_rel() -> str:
    home = Path(os.environ["HOME"])
    return str(state_path(None, "127.0.0.1", "ann").relative_to(home.parent))


def stored(outcome: Outcome) -> list[str]:
    return sorted(p for p, d in outcome.after.items()
                  if d != "dir" and (p.startswith("dest/new/") or p.startswith("dest/cur/")))


def run(root: Path, mail: FakeMaildrop | Callable[[Conn], None], expect: Expect, *extra: str,
        tls: str = "none", server_tls: Any = None, n_stored: int = 0) -> Outcome:
    handler = mail.handler if isinstance(mail, FakeMaildrop) else mail
    with ScriptedServer(handler, tls=server_tls) as srv:
        outcome = run_cli_measured(fetch_args(srv.port, *extra, tls=tls), root)
    check(outcome, expect)
    srv.check()
    assert len(stored(outcome)) == n_stored, stored(outcome)
    assert not [p for p in outcome.after if p.startswith("dest/tmp/")]
    if isinstance(mail, FakeMaildrop):
        # Nothing not stored was ever deleted: the server commits DELE only at QUIT.
        assert len(mail.committed) <= n_stored
        if n_stored == 0:
            assert not any(c.startswith("DELE") for c in mail.commands)
    return outcome


def hook(mail: FakeMaildrop, name: str, fn: Callable[[Conn, list[str]], None]) -> FakeMaildrop:
    def wrapped(c: Conn, args: list[str]) -> bool:
        fn(c, args)
        return True

    mail.hooks[name] = wrapped
    return mail






def frozen(code: int, *says: str) -> Expect:
    """The case must fail with ``code`` and leave the UIDL state file as it was."""
    return Expect(code, says, unchanged=(state_rel(),))




def endless_retr_line(c: Conn, args: list[str]) -> None:
    flood(c, b"+OK\r\nSubject: ")


def retr_without_dot(c: Conn, args: list[str]) -> None:
    c.send(b"+OK\r\nSubject: one\r\n\r\nfirst, and then nothing\r\n")
    c.close()


def stall_mid_body(c: Conn, args: list[str]) -> None:
    c.send(b"+OK\r\nSubject: one\r\n\r\nhalf a")
    c.read_until_closed()


def garbled_status(c: Conn, args: list[str]) -> None:
    c.send(b"OK sure, here it comes\r\n")
    c.read_until_closed()


def endless_list(c: Conn, args: list[str]) -> None:
    """A LIST answer that never ends (well: 2 million lines, then the client must be gone)."""
    c.send(b"+OK\r\n")
    block = b"".join(b"%d 100\r\n" % n for n in range(1, 20001))
    try:
        for _ in range(100):
            c.send(block)
    except OSError:
        pass
    c.read_until_closed()


def uidl_not_numeric(c: Conn, args: list[str]) -> None:
    c.send(b"+OK\r\none u-1\r\ntwo u-2\r\n.\r\n")


def duplicate_uidls(c: Conn, args: list[str]) -> None:
    c.send(b"+OK\r\n1 same\r\n2 same\r\n.\r\n")


def the_case_table() -> list[tuple[str, Callable[[], FakeMaildrop | Callable[[Conn], None]],
                                   Callable[[], Expect], int]]:
    return [
        ("endless-greeting", lambda: (lambda c: flood(c, b"+OK ")),
         lambda: frozen(76, "longer than"), 0),
        ("garbled-greeting", lambda: (lambda c: garbled_status(c, [])),
         lambda: frozen(76, "malformed", "OK sure"), 0),
        ("endless-retr-line", lambda: hook(drop(), "RETR", endless_retr_line),
         lambda: frozen(76, "RETR", "larger than"), 0),
        ("garbled-retr-status", lambda: hook(drop(), "RETR", garbled_status),
         lambda: frozen(76, "RETR", "OK sure"), 0),
        ("list-never-ends", lambda: hook(drop(), "LIST", endless_list),
         lambda: frozen(76, "LIST"), 0),
        ("uidl-msgno-not-numeric", lambda: hook(drop(), "UIDL", uidl_not_numeric),
         lambda: frozen(76, "UIDL", "one"), 0),
        ("duplicate-uidls", lambda: hook(drop(), "UIDL", duplicate_uidls),
         lambda: frozen(76, "UIDL", "same"), 0),
        ("retr-without-dot", lambda: hook(drop(), "RETR", retr_without_dot),
         lambda: frozen(75, "RETR"), 0),
        ("stall-after-accept", lambda: stall, lambda: frozen(75, "within"), 0),
        ("stall-after-greeting", lambda: (lambda c: (c.send(b"+OK hi\r\n"), stall(c))),
         lambda: frozen(75, "within"), 0),
        ("stall-mid-body", lambda: hook(drop(), "RETR", stall_mid_body),
         lambda: frozen(75, "RETR", "within"), 0),
        *[(f"reset-at-{verb}", lambda verb=verb: hook(drop(), verb, reset),
           lambda verb=verb: frozen(75, verb), 0)
          for verb in ("CAPA", "USER", "PASS", "LIST", "UIDL", "RETR")],
        # Reset at DELE/QUIT: both messages are stored and recorded, nothing was deleted,
        # and the run says so (75: the deletions will happen next time).
        *[(f"reset-at-{verb}", lambda verb=verb: hook(drop(), verb, reset),
           lambda verb=verb: Expect(75, (verb,)), 2) for verb in ("DELE", "QUIT")],
    ]


CASES = the_case_table()


@pytest.mark.parametrize(("make", "expect", "n_stored"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_pop3(root: Path, make: Any, expect: Any, n_stored: int) -> None:
    run(root, make(), expect(), "--auth", "USER", n_stored=n_stored)


def test_replies_split_at_every_byte(root: Path) -> None:
    mail = drop()
    inner = mail.handler

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

    out = run(root, handler, Expect(0, error_line=False), "--auth", "USER", n_stored=2)
    assert sorted((root / p).read_bytes() for p in stored(out)) == sorted(MSGS.values())
    assert mail.committed == {1, 2}


def test_list_sizes_that_lie(root: Path) -> None:
    """LIST says 10 bytes; RETR brings 3 MB: --max-size must hold on what really comes."""
    mail = drop()
    mail.messages[2] = b"Subject: big\n\n" + b"B" * 3_000_000 + b"\n"

    def lying_list(c: Conn, args: list[str]) -> None:
        c.send(b"+OK\r\n1 10\r\n2 10\r\n.\r\n")

    hook(mail, "LIST", lying_list)
    run(root, mail, Expect(76, ("RETR", "10")), "--max-size", "1k", "--auth", "USER",
        n_stored=1)
    assert 2 not in mail.committed


def test_list_sizes_that_lie_small(root: Path) -> None:
    """LIST says 5 MB for tiny messages: nothing breaks, the real bytes are stored."""
    mail = drop()

    def lying_list(c: Conn, args: list[str]) -> None:
        c.send(b"+OK\r\n1 5000000\r\n2 5000000\r\n.\r\n")

    hook(mail, "LIST", lying_list)
    out = run(root, mail, Expect(0, error_line=False), "--auth", "USER", n_stored=2)
    assert sorted((root / p).read_bytes() for p in stored(out)) == sorted(MSGS.values())


def test_stls_injected_bytes_are_discarded(root: Path, test_ca: Any) -> None:
    mail = drop()
    mail.caps = ["USER", "UIDL", "STLS"]
    seen: list[str] = []

    def stls(c: Conn, args: list[str]) -> None:
        c.send(b"+OK begin TLS\r\n+OK INJECTED\r\n-ERR INJECTED\r\n")
        c.starttls(test_ca.server_context())
        mail.caps = ["USER", "UIDL"]
        seen.append("tls")

    hook(mail, "STLS", stls)
    run(root, mail, Expect(0, error_line=False), "--auth", "USER", "--ca-file",
        str(test_ca.ca_file), tls="starttls", n_stored=2)
    assert seen == ["tls"] and mail.committed == {1, 2}
    # CAPA asked again after the handshake; nothing injected was taken as an answer
    assert mail.commands.count("CAPA") == 2


def test_stls_refused_while_required(root: Path, test_ca: Any) -> None:
    mail = drop()
    mail.caps = ["USER", "UIDL", "STLS"]
    hook(mail, "STLS", lambda c, a: c.send(b"-ERR [SYS/PERM] TLS is broken here\r\n"))
    run(root, mail, frozen(69, "STLS", "TLS is broken"), "--auth", "USER", "--ca-file",
        str(test_ca.ca_file), tls="starttls")
    assert not any(c.startswith(("USER", "PASS", "AUTH", "APOP")) for c in mail.commands)


def test_stls_stripped_from_capabilities(root: Path, test_ca: Any) -> None:
    mail = drop()
    mail.caps = ["USER", "UIDL", "SASL PLAIN"]
    run(root, mail, frozen(69, "STLS"), "--ca-file", str(test_ca.ca_file), tls="starttls")
    assert not any(c.startswith(("USER", "PASS", "AUTH", "APOP")) for c in mail.commands)


@pytest.mark.parametrize("cert", ["expired", "self_signed", "wrong_host"])
def test_bad_certificates(root: Path, test_ca: Any, cert: str) -> None:
    mail = drop()
    run(root, mail, frozen(69, "certificate"), "--ca-file", str(test_ca.ca_file),
        tls="implicit", server_tls=getattr(test_ca, cert)().server_context())
    assert mail.commands == []
