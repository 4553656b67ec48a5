"""Scripted hostile IMAP servers: what a real server will not do on demand.

Each case checks the error class (and so the exit code), and that nothing unbounded
happened: a huge literal is refused before a byte of it is read.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailtool.errors import ConnectionLostError, ProtocolError, TempFailError, TLSError
from mailtool.protocol.imap.client import BodyInfo, IMAPClient
from mailtool.protocol.tls import TLSMode
from tests.faults.server import Conn, ScriptedServer

pytestmark = pytest.mark.timeout(30)

GREETING = b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] scripted\r\n"


def _client(srv: ScriptedServer, mode: TLSMode = TLSMode.NONE) -> IMAPClient:
    return IMAPClient.connect("127.0.0.1", srv.port, tls_mode=mode, timeout=10)


def _fetch_script(reply: bytes, *, close: bool = True) -> Any:
    def handler(c: Conn) -> None:
        c.send(GREETING)
        c.expect(b"A0001 UID FETCH")
        c.send(reply)
        if close:
            c.close()
        else:
            c.read_until_closed()

    return handler


class Recorder:
    def __init__(self) -> None:
        self.data = b""
        self.aborted = False
        self.finished = False

    def write(self, data: bytes) -> None:
        self.data += data

    def done(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


def _fetch(srv: ScriptedServer, sinks: list[Recorder]) -> None:
    client = _client(srv)
    try:
        def factory(info: BodyInfo) -> Recorder:
            sinks.append(Recorder())
            return sinks[-1]

        client.uid_fetch("1:*", ["UID", "BODY.PEEK[]"], sink=factory)
    finally:
        client.close()


def test_huge_literal_refused_without_allocating() -> None:
    with ScriptedServer(_fetch_script(b"* 1 FETCH (UID 1 BODY[] {999999999999}\r\n",
                                      close=False)) as srv:
        with pytest.raises(ProtocolError, match="above the limit") as err:
            _fetch(srv, [])
    assert err.value.exit_code == 76


def test_body_larger_than_announced_size_refused() -> None:
    script = b"* 1 FETCH (UID 1 RFC822.SIZE 10 BODY[] {50000000}\r\n"
    with ScriptedServer(_fetch_script(script, close=False)) as srv:
        with pytest.raises(ProtocolError, match="10 bytes"):
            _fetch(srv, [])


def test_unterminated_literal_is_never_complete() -> None:
    sinks: list[Recorder] = []
    with ScriptedServer(_fetch_script(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly ten b")) as srv:
        with pytest.raises(ConnectionLostError) as err:
            _fetch(srv, sinks)
    assert err.value.exit_code == 75
    assert len(sinks) == 1 and sinks[0].aborted and not sinks[0].finished


def test_mismatched_tag() -> None:
    with ScriptedServer(_fetch_script(b"B0099 OK UID FETCH done\r\n", close=False)) as srv:
        with pytest.raises(ProtocolError, match="no command in flight") as err:
            _fetch(srv, [])
    assert err.value.exit_code == 76


def test_malformed_envelope() -> None:
    script = b'* 1 FETCH (UID 1 ENVELOPE ("date" "subject" (("x"))))\r\nA0001 OK done\r\n'
    with ScriptedServer(_fetch_script(script, close=False)) as srv:
        with pytest.raises(ProtocolError, match="ENVELOPE") as err:
            _fetch(srv, [])
    assert err.value.exit_code == 76


def test_bye_in_the_middle_of_a_fetch() -> None:
    sinks: list[Recorder] = []
    script = (b"* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n"
              b"* BYE server shutting down for maintenance\r\n")
    with ScriptedServer(_fetch_script(script)) as srv:
        with pytest.raises(TempFailError, match="shutting down") as err:
            _fetch(srv, sinks)
    assert err.value.exit_code == 75
    assert sinks[0].finished and sinks[0].data == b"hello"


def test_preauth_in_cleartext_refused_when_tls_required() -> None:
    lines: list[bytes] = []

    def handler(c: Conn) -> None:
        c.send(b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in already\r\n")
        lines.append(c.read_until_closed())

    with ScriptedServer(handler) as srv:
        with pytest.raises(TLSError, match="PREAUTH") as err:
            _client(srv, TLSMode.STARTTLS)
    srv.stop()
    assert err.value.exit_code == 69
    assert lines == [b""]  # not a single command went out in cleartext


def test_starttls_not_offered_is_refused() -> None:
    def handler(c: Conn) -> None:
        c.send(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no tls here\r\n")
        c.read_until_closed()

    with ScriptedServer(handler) as srv:
        with pytest.raises(TLSError, match="STARTTLS"):
            _client(srv, TLSMode.STARTTLS)


def test_bye_greeting_is_temporary() -> None:
    def handler(c: Conn) -> None:
        c.send(b"* BYE [UNAVAILABLE] too many connections\r\n")

    with ScriptedServer(handler) as srv:
        with pytest.raises(TempFailError, match="too many connections") as err:
            _client(srv)
    assert err.value.exit_code == 75


@pytest.mark.parametrize(("reply", "code"), [
    (b"A0001 NO [OVERQUOTA] quota exceeded\r\n", 75),
    (b"A0001 NO [NONEXISTENT] no such mailbox\r\n", 69),
    (b"A0001 NO [NOPERM] not allowed\r\n", 77),
    (b"A0001 BAD syntax error\r\n", 76),
    (b"A0001 NO failed\r\n", 69),
])
def test_response_codes_map_to_exit_codes(reply: bytes, code: int) -> None:
    with ScriptedServer(_fetch_script(reply, close=False)) as srv:
        with pytest.raises(Exception) as err:
            _fetch(srv, [])
    assert getattr(err.value, "exit_code", None) == code
    assert reply.split(b"] ")[-1].strip().decode().split()[-1] in str(err.value)


def test_login_disabled_never_sends_credentials() -> None:
    seen: list[bytes] = []

    def handler(c: Conn) -> None:
        c.send(b"* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] no cleartext login\r\n")
        seen.append(c.read_until_closed())

    from mailtool.errors import AuthError

    with ScriptedServer(handler) as srv:
        client = _client(srv)
        with pytest.raises(AuthError, match="LOGINDISABLED"):
            client.login("joe", "secret")
        client.close()
    srv.stop()
    assert b"secret" not in b"".join(seen)


def test_injected_bytes_after_starttls_are_discarded(test_ca: Any) -> None:
    """The STARTTLS response-injection class: bytes after the OK must never be parsed."""
    from mailtool.protocol.tls import TLSSettings

    def handler(c: Conn) -> None:
        c.send(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")
        c.expect(b"A0001 STARTTLS")
        c.send(b"A0001 OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN INJECTED] x\r\n")
        c.starttls(test_ca.server_context())
        c.expect(b"A0002 CAPABILITY")
        c.send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA0002 OK done\r\n")
        c.read_until_closed()

    with ScriptedServer(handler) as srv:
        client = IMAPClient.connect("127.0.0.1", srv.port, tls_mode=TLSMode.STARTTLS,
                                    tls=TLSSettings(ca_file=str(test_ca.ca_file),
                                                    server_hostname="localhost"),
                                    timeout=10)
        assert client.tls_active and "INJECTED" not in client.capabilities
        client.close()
    srv.check()


# --- the same hostile answers over TLS, where responses are read in bulk ----------------
_HOSTILE = [
    pytest.param(b"* 1 FETCH (UID 1 BODY[] {999999999999}\r\n", ProtocolError,
                 "above the limit", id="huge-literal"),
    pytest.param(b"* 1 FETCH (UID 1 BODY[] {100}\r\nonly ten b", ConnectionLostError,
                 "closed", id="unterminated-literal"),
    pytest.param(b"B0099 OK UID FETCH done\r\n", ProtocolError, "no command in flight",
                 id="mismatched-tag"),
    pytest.param(b"* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n* BYE going down\r\n",
                 TempFailError, "going down", id="bye-mid-fetch"),
    pytest.param(b"* 1 FETCH (UID 1 FLAGS (" + b"\\Seen " * 2_000_000, ProtocolError,
                 "longer than", id="endless-line"),
]


@pytest.mark.parametrize(("reply", "error", "match"), _HOSTILE)
def test_hostile_answers_over_tls(test_ca: Any, reply: bytes, error: type[Exception],
                                  match: str) -> None:
    """Under TLS the client hands whatever arrived to the session in one piece (not line
    by line): every bound and every error is the same as in cleartext."""
    from mailtool.protocol.tls import TLSSettings

    def handler(c: Conn) -> None:
        c.send(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")
        c.expect(b"A0001 STARTTLS")
        c.send(b"A0001 OK begin TLS\r\n")
        c.starttls(test_ca.server_context())
        c.expect(b"A0002 CAPABILITY")
        c.send(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\nA0002 OK done\r\n")
        c.expect(b"A0003 UID FETCH")
        c.send(reply)
        if error is ConnectionLostError or error is TempFailError:
            c.close()
        else:
            c.read_until_closed()

    sinks: list[Recorder] = []
    with ScriptedServer(handler) as srv:
        client = IMAPClient.connect("127.0.0.1", srv.port, tls_mode=TLSMode.STARTTLS,
                                    tls=TLSSettings(ca_file=str(test_ca.ca_file),
                                                    server_hostname="localhost"),
                                    timeout=10)
        assert client.tls_active and client.transport.transcript is None
        try:
            def factory(info: BodyInfo) -> Recorder:
                sinks.append(Recorder())
                return sinks[-1]

            with pytest.raises(error, match=match):
                client.uid_fetch("1:*", ["UID", "BODY.PEEK[]"], sink=factory)
        finally:
            client.close()
    assert all(s.aborted or s.finished for s in sinks)
