"""Direct (MX) delivery against scripted MX hosts: the next MX after a 4xx at greeting,
EHLO or MAIL; opportunistic STARTTLS on port 25 (unverified certificate, as between MTAs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.server import Conn, ScriptedServer
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(60)

EHLO = b"250-mx.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
MSG = b"From: a@src.test\r\nTo: x@fb.test\r\nSubject: t\r\n\r\nhello\r\n"


def accepting(seen: list[bytes]) -> Callable[[Conn], None]:
    def handler(c: Conn) -> None:
        c.send(b"220 mx2.fb.test ESMTP\r\n")
        c.expect(b"EHLO")
        c.send(EHLO)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        seen.append(c.read_data())
        c.send(b"250 2.0.0 taken\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    return handler


def failing(step: str) -> Callable[[Conn], None]:
    def handler(c: Conn) -> None:
        if step == "greeting":
            c.send(b"421 4.3.2 too busy, try mx2\r\n")
            c.read_until_closed()
            return
        c.send(b"220 mx1.fb.test ESMTP\r\n")
        c.expect(b"EHLO")
        if step == "EHLO":
            c.send(b"451 4.3.0 local problem\r\n")
            c.read_until_closed()
            return
        c.send(EHLO)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"451 4.7.1 greylisted\r\n503 5.5.1 MAIL first\r\n503 5.5.1 no recipients\r\n")
        c.expect(b"QUIT")  # the connection was kept for more mail until the end
        c.send(b"221 bye\r\n")

    return handler


@pytest.mark.parametrize("step", ["greeting", "EHLO", "MAIL"])
def test_next_mx_after_4xx(step: str, make_dnsmasq: Any) -> None:
    from tests.servers.dnsmasq import MX, A

    seen: list[bytes] = []
    with ScriptedServer(failing(step), host="127.0.0.5") as mx1:
        with ScriptedServer(accepting(seen), host="127.0.0.6", port=mx1.port) as mx2:
            dns = make_dnsmasq([MX("fb.test", "mx1.fb.test", 10),
                                MX("fb.test", "mx2.fb.test", 20),
                                A("mx1.fb.test", "127.0.0.5"), A("mx2.fb.test", "127.0.0.6")])
            r = run_cli("send", "--dns-server", "{}:{}".format(*dns.nameserver),
                        "--port", str(mx1.port), "--json", "-f", "a@src.test", "x@fb.test",
                        input=MSG)
    mx1.check()
    mx2.check()
    out = json.loads(r.stdout)["recipients"][0]
    assert out["status"] == "accepted" and out["host"] == "mx2.fb.test"
    assert mx1.connection_count == 1 and seen == [MSG + b".\r\n"]


def test_opportunistic_starttls_on_port_25(test_ca: Any) -> None:
    """The MX offers STARTTLS: the client upgrades without checking the certificate (an
    MX's certificate is rarely valid for its name; RFC 7435), asks EHLO again, and sends
    everything else inside TLS."""
    steps: list[str] = []
    context = test_ca.server_context()

    def handler(c: Conn) -> None:
        c.send(b"220 mx.test ESMTP\r\n")
        c.expect(b"EHLO")
        c.send(b"250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
        c.expect(b"STARTTLS")
        c.send(b"220 2.0.0 go ahead\r\n")
        c.starttls(context)
        steps.append(f"tls:{c.sock.version()}")  # type: ignore[attr-defined]
        c.expect(b"EHLO")
        c.send(b"250-mx.test\r\n250 PIPELINING\r\n")
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        steps.append(c.read_data().decode())
        c.send(b"250 2.0.0 ok\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler, host="127.0.0.7") as mx:
        r = run_cli("send", "--port", str(mx.port), "--json", "-f", "a@src.test",
                    "x@[127.0.0.7]", input=MSG)
    mx.check()
    assert json.loads(r.stdout)["recipients"][0]["status"] == "accepted"
    assert steps[0].startswith("tls:TLSv1.")
    assert steps[1] == (MSG + b".\r\n").decode()


def test_opportunistic_starttls_handshake_failure_falls_back_to_cleartext() -> None:
    """A broken TLS stack at the MX: the client connects again in cleartext, as MTAs do."""
    plain: list[bytes] = []

    def handler(c: Conn) -> None:
        c.send(b"220 mx.test ESMTP\r\n")
        c.expect(b"EHLO")
        if not plain:  # first connection: offer STARTTLS, then answer the handshake badly
            plain.append(b"offered")
            c.send(b"250-mx.test\r\n250 STARTTLS\r\n")
            c.expect(b"STARTTLS")
            c.send(b"220 go ahead\r\n")
            c.sock.recv(4096)  # the ClientHello, answered with garbage
            c.send(b"this is not TLS at all\r\n" * 4)
            c.read_until_closed()
            return
        c.send(b"250-mx.test\r\n250 STARTTLS\r\n")
        plain.append(c.expect(b"MAIL"))
        c.send(b"250 ok\r\n")
        c.expect(b"RCPT")
        c.send(b"250 ok\r\n")
        c.expect(b"DATA")
        c.send(b"354 go\r\n")
        plain.append(c.read_data())
        c.send(b"250 2.0.0 ok\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler, host="127.0.0.8") as mx:
        r = run_cli("send", "--port", str(mx.port), "--json", "-f", "a@src.test",
                    "x@[127.0.0.8]", input=MSG)
    mx.check()
    assert json.loads(r.stdout)["recipients"][0]["status"] == "accepted"
    assert plain[2] == MSG + b".\r\n"
    # Second connection: no STARTTLS again, straight to MAIL in cleartext.
    assert mx.connection_count == 2 and plain[1].startswith(b"MAIL FROM:<a@src.test>")

