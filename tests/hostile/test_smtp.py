"""Hostile SMTP servers against ``mailtool send`` (one scripted behaviour per case)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.faults.server import Conn, ScriptedServer
from tests.hostile.harness import CLI_TIMEOUT, PASSWORD, Expect, check, flood, run_cli_measured

pytestmark = pytest.mark.timeout(60)

MSG = b"From: a@src.test\r\nTo: x@dst.test\r\nSubject: t\r\n\r\nhello\r\n"
EHLO = b"250-hostile.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"


def send_args(port: int, *extra: str, tls: str = "none", host: str = "127.0.0.1") -> list[str]:
    return ["--timeout", str(CLI_TIMEOUT), "send", "--smarthost", f"{host}:{port}", "--tls", tls,
            "-f", "a@src.test", *extra, "x@dst.test"]


def run(root: Path, handler: Callable[[Conn], None], expect: Expect, *extra: str,
        tls: str = "none", server_tls: Any = None) -> ScriptedServer:
    with ScriptedServer(handler, tls=server_tls) as srv:
        outcome = run_cli_measured(send_args(srv.port, *extra, tls=tls), root, input=MSG)
    check(outcome, expect)
    srv.check()
    return srv




def greet(c: Conn, ehlo: bytes = EHLO) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.expect(b"EHLO")
    c.send(ehlo)


def accept_all(c: Conn) -> bytes:
    """The rest of a well-behaved transaction; returns the DATA received."""
    c.expect(b"MAIL FROM")
    c.send(b"250 2.1.0 ok\r\n")
    c.expect(b"RCPT TO")
    c.send(b"250 2.1.5 ok\r\n")
    c.expect(b"DATA")
    c.send(b"354 go on\r\n")
    data = c.read_data()
    c.send(b"250 2.0.0 queued as 42\r\n")
    c.expect(b"QUIT")
    c.send(b"221 bye\r\n")
    return data


# -- malformed and unbounded replies ---------------------------------------------------
def endless_greeting(c: Conn) -> None:
    flood(c, b"220 ")


def endless_ehlo(c: Conn) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.expect(b"EHLO")
    flood(c, b"250-")


def never_ending_multiline(c: Conn) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.expect(b"EHLO")
    try:
        for _ in range(200):
            c.send(b"250-AUTH PLAIN\r\n" * 100)
    except OSError:
        pass
    c.read_until_closed()


def non_numeric_greeting(c: Conn) -> None:
    c.send(b"hello there, I am a mail server\r\n")
    c.read_until_closed()


def code_out_of_range(c: Conn) -> None:
    greet(c)
    c.expect(b"MAIL FROM")
    c.expect(b"RCPT TO")
    c.send(b"999 9.9.9 what\r\n")
    c.read_until_closed()


def mixed_codes(c: Conn) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.expect(b"EHLO")
    c.send(b"250-hostile.test\r\n550 5.0.0 changed my mind\r\n")
    c.read_until_closed()


def wrong_reply_to_data(c: Conn) -> None:
    greet(c)
    c.expect(b"MAIL FROM")
    c.expect(b"RCPT TO")
    c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
    c.expect(b"DATA")
    c.send(b"250 2.0.0 I take it without data\r\n")
    c.read_until_closed()


def shutdown_421_at_rcpt(c: Conn) -> None:
    greet(c)
    c.expect(b"MAIL FROM")
    c.expect(b"RCPT TO")
    c.send(b"250 2.1.0 ok\r\n421 4.3.2 shutting down NOW\r\n")
    c.close()


# -- stalls and resets ---------------------------------------------------------------
def stall_after_accept(c: Conn) -> None:
    c.read_until_closed()


def stall_after_greeting(c: Conn) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.read_until_closed()


def stall_before_354(c: Conn) -> None:
    greet(c)
    c.expect(b"MAIL FROM")
    c.expect(b"RCPT TO")
    c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
    c.expect(b"DATA")
    c.read_until_closed()


def reset_at(step: str) -> Callable[[Conn], None]:
    def handler(c: Conn) -> None:
        if step == "connect":
            c.reset()
            return
        c.send(b"220 hostile.test ESMTP\r\n")
        c.expect(b"EHLO")
        if step == "EHLO":
            c.reset()
            return
        c.send(EHLO)
        c.expect(b"MAIL FROM")
        c.expect(b"RCPT TO")
        if step == "MAIL":
            c.reset()
            return
        c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
        c.expect(b"DATA")
        if step == "DATA":
            c.reset()
            return
        c.send(b"354 go on\r\n")
        c.read_data()
        c.reset()

    return handler


CASES: list[tuple[str, Callable[[Conn], None], Expect]] = [
    ("endless-greeting-line", endless_greeting, Expect(76, ("greeting", "longer than"))),
    ("endless-ehlo-line", endless_ehlo, Expect(76, ("EHLO", "longer than"))),
    ("multiline-never-ends", never_ending_multiline, Expect(76, ("EHLO", "lines"))),
    ("non-numeric-code", non_numeric_greeting, Expect(76, ("greeting", "hello there"))),
    ("code-out-of-range", code_out_of_range, Expect(76, ("999",))),
    ("mixed-codes", mixed_codes, Expect(76, ("EHLO", "550"))),
    ("250-instead-of-354", wrong_reply_to_data, Expect(76, ("DATA", "250"))),
    ("421-then-close-at-RCPT", shutdown_421_at_rcpt, Expect(75, ("RCPT", "shutting down"))),
    ("stall-after-accept", stall_after_accept, Expect(75, ("greeting", "within"))),
    ("stall-after-greeting", stall_after_greeting, Expect(75, ("EHLO", "within"))),
    ("stall-before-354", stall_before_354, Expect(75, ("DATA", "within"))),
    *[(f"reset-at-{s}", reset_at(s), Expect(75, (step,)))
      for s, step in [("connect", "connect"), ("EHLO", "EHLO"), ("MAIL", "MAIL"),
                      ("DATA", "DATA"), ("final-dot", "end of DATA")]],
]


@pytest.mark.parametrize(("handler", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_smtp(root: Path, handler: Callable[[Conn], None], expect: Expect) -> None:
    run(root, handler, expect)


def test_replies_split_at_every_byte(root: Path) -> None:
    """Every server byte in its own TCP segment: the transaction still completes."""
    got: list[bytes] = []

    def dribble(c: Conn, data: bytes) -> None:
        for i in range(len(data)):
            c.send(data[i:i + 1])

    def handler(c: Conn) -> None:
        import socket

        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dribble(c, b"220-hostile.test ESMTP\r\n220 second line\r\n")
        c.expect(b"EHLO")
        dribble(c, EHLO)
        c.expect(b"MAIL FROM")
        c.expect(b"RCPT TO")
        dribble(c, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
        c.expect(b"DATA")
        dribble(c, b"354 go on\r\n")
        got.append(c.read_data())
        dribble(c, b"250 2.0.0 queued\r\n")
        c.expect(b"QUIT")
        dribble(c, b"221 bye\r\n")

    run(root, handler, Expect(0, error_line=False))
    assert got == [MSG + b".\r\n"]


# -- STARTTLS ------------------------------------------------------------------------
def test_starttls_injected_bytes_are_never_read_as_replies(root: Path, test_ca: Any) -> None:
    """CVE-2011-0411 class: bytes sent with the 220 before the handshake must be dropped."""
    seen: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c, b"250-hostile.test\r\n250 STARTTLS\r\n")
        c.expect(b"STARTTLS")
        c.send(b"220 2.0.0 go ahead\r\n535 5.7.8 INJECTED refusal\r\n250 INJECTED ok\r\n")
        c.starttls(test_ca.server_context())
        c.expect(b"EHLO")
        c.send(b"250-hostile.test\r\n250 AUTH PLAIN\r\n")
        seen.append(c.expect(b"AUTH PLAIN"))
        c.send(b"235 2.7.0 ok\r\n")
        seen.append(accept_all(c))

    run(root, handler, Expect(0, error_line=False), "--user", "ann", "--ca-file",
        str(test_ca.ca_file), tls="starttls")
    assert seen[-1] == MSG + b".\r\n"


def never_gets_credentials(c: Conn, received: list[bytes]) -> None:
    received.append(c.read_until_closed())


def test_starttls_refused_while_required(root: Path, test_ca: Any) -> None:
    received: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c, b"250-hostile.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")
        c.expect(b"STARTTLS")
        c.send(b"454 4.7.0 TLS not available due to temporary reason\r\n")
        never_gets_credentials(c, received)

    # 454 is "temporary" (75); a 5xx refusal is permanent (69). Either way: no cleartext.
    run(root, handler, Expect(75, ("STARTTLS", "454")), "--user", "ann",
        "--ca-file", str(test_ca.ca_file), tls="starttls")
    assert b"AUTH" not in received[0] and b"MAIL" not in received[0]


def test_starttls_refused_permanently_while_required(root: Path, test_ca: Any) -> None:
    received: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c, b"250-hostile.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")
        c.expect(b"STARTTLS")
        c.send(b"502 5.5.1 no TLS for you\r\n")
        never_gets_credentials(c, received)

    run(root, handler, Expect(69, ("STARTTLS", "502")), "--user", "ann",
        "--ca-file", str(test_ca.ca_file), tls="starttls")
    assert b"AUTH" not in received[0] and b"MAIL" not in received[0]


def test_starttls_stripped_from_capabilities(root: Path, test_ca: Any) -> None:
    received: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c, b"250-hostile.test\r\n250 AUTH PLAIN LOGIN\r\n")
        never_gets_credentials(c, received)

    run(root, handler, Expect(69, ("STARTTLS",)), "--user", "ann",
        "--ca-file", str(test_ca.ca_file), tls="starttls")
    assert b"AUTH" not in received[0] and b"MAIL" not in received[0]


@pytest.mark.parametrize("cert", ["expired", "self_signed", "wrong_host"])
def test_bad_certificates_implicit_tls(root: Path, test_ca: Any, cert: str) -> None:
    received: list[bytes] = []

    def handler(c: Conn) -> None:  # never reached: the handshake fails first
        received.append(b"connected")

    ctx = getattr(test_ca, cert)().server_context()
    run(root, handler, Expect(69, ("certificate",)), "--user", "ann", "--ca-file",
        str(test_ca.ca_file), tls="implicit", server_tls=ctx)
    assert received == []
    assert PASSWORD  # the password never left: there was no session to send it on
