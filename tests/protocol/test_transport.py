"""The transport against scripted loopback servers: TLS verification, STARTTLS buffer
discarding, bounded reads, timeouts, lost connections, transcript redaction."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailtool.errors import (
    ConnectFailedError,
    ConnectionLostError,
    LineTooLongError,
    TLSError,
    TransportTimeoutError,
)
from mailtool.exitcodes import ExitCode
from mailtool.protocol.tls import TLSSettings
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import Transport
from tests.faults.server import Conn, ScriptedServer, dead_port
from tests.servers.ca import TestCA

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def greet_and_echo(conn: Conn) -> None:
    conn.send(b"* OK hello\r\n")
    line = conn.readline()
    conn.send(b"echo " + line)
    conn.read_until_closed()


@pytest.fixture
def tls_server(ca: TestCA) -> Iterator[ScriptedServer]:
    with ScriptedServer(greet_and_echo, tls=ca.server_context()) as srv:
        yield srv


def test_implicit_tls_verified_with_test_ca(ca: TestCA, tls_server: ScriptedServer) -> None:
    t = Transport.connect("localhost", tls_server.port, timeout=5, tls=TLSSettings(ca_file=str(ca.ca_file)))
    try:
        assert t.readline() == b"* OK hello\r\n"
        t.send(b"ping\r\n")
        assert t.readline() == b"echo ping\r\n"
        info = t.tls_info
        assert info is not None and info.verified
        assert info.version.startswith("TLSv1.")
        assert info.days_left is not None and info.days_left > 0
        assert "localhost" in info.alt_names
    finally:
        t.close()


def test_implicit_tls_fails_without_the_ca(tls_server: ScriptedServer) -> None:
    with pytest.raises(TLSError) as err:
        Transport.connect("localhost", tls_server.port, timeout=5, tls=TLSSettings())
    assert err.value.exit_code == ExitCode.UNAVAILABLE
    assert "not trusted" in str(err.value)


@pytest.mark.parametrize("kind", ["expired", "wrong_host", "self_signed", "untrusted"])
def test_bad_certificates_refused(ca: TestCA, kind: str) -> None:
    files = getattr(ca, kind)()
    with ScriptedServer(greet_and_echo, tls=files.server_context()) as srv:
        with pytest.raises(TLSError):
            Transport.connect("localhost", srv.port, timeout=5, tls=TLSSettings(ca_file=str(ca.ca_file)))


def test_insecure_skips_checks_but_says_so(ca: TestCA) -> None:
    with ScriptedServer(greet_and_echo, tls=ca.self_signed().server_context()) as srv:
        t = Transport.connect("localhost", srv.port, timeout=5, tls=TLSSettings(insecure=True))
        assert t.tls_info is not None and not t.tls_info.verified
        assert "NOT verified" in t.tls_info.summary()
        t.close()


def test_implicit_tls_against_a_cleartext_server_names_the_mismatch() -> None:
    def banner(conn: Conn) -> None:
        conn.send(b"220 cleartext ESMTP\r\n" * 20)
        conn.read_until_closed()

    with ScriptedServer(banner) as srv, pytest.raises(TLSError) as err:
        Transport.connect("127.0.0.1", srv.port, timeout=5, tls=TLSSettings())
    assert err.value.hint and "starttls" in err.value.hint


def test_starttls_discards_bytes_injected_before_the_handshake(ca: TestCA) -> None:
    """CVE-2011-0411 class: the injected line must never be read as a TLS-protected reply."""

    def injector(conn: Conn) -> None:
        conn.send(b"220 ready\r\n")
        conn.expect(b"STARTTLS")
        conn.send(b"220 go ahead\r\n250 INJECTED\r\n")
        conn.starttls(ca.server_context())
        conn.send(b"250 genuine\r\n")
        conn.read_until_closed()

    transcript = Transcript()
    with ScriptedServer(injector) as srv:
        t = Transport.connect("localhost", srv.port, timeout=5, transcript=transcript)
        assert t.readline() == b"220 ready\r\n"
        t.send(b"STARTTLS\r\n")
        # Read the go-ahead; the injected line is now sitting in our buffer.
        assert t.readline() == b"220 go ahead\r\n"
        t.starttls(TLSSettings(ca_file=str(ca.ca_file)))
        assert t.readline() == b"250 genuine\r\n"
        t.close()
        srv.check()
    notes = [e.data for e in transcript.entries if e.direction == "*"]
    assert any(b"discarded 14 bytes" in n for n in notes)


def test_endless_line_is_refused_quickly() -> None:
    def flood(conn: Conn) -> None:
        chunk = b"x" * 65536
        try:
            for _ in range(200):
                conn.send(chunk)
        except OSError:
            pass

    with ScriptedServer(flood) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5)
        with pytest.raises(LineTooLongError) as err:
            t.readline(limit=100_000)
        assert err.value.exit_code == ExitCode.PROTOCOL
        t.close()


def test_line_split_at_every_byte_boundary() -> None:
    payload = b"+OK first\r\n* second line\r\nthird\n"

    def dribble(conn: Conn) -> None:
        for i in range(len(payload)):
            conn.send(payload[i : i + 1])
        conn.read_until_closed()

    with ScriptedServer(dribble) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5)
        assert [t.readline(), t.readline(), t.readline()] == payload.splitlines(keepends=True)
        t.close()


def test_read_exact_and_iter_exact_stream() -> None:
    body = bytes(range(256)) * 4000

    def sender(conn: Conn) -> None:
        conn.send(b"{%d}\r\n" % len(body) + body + b")\r\n")
        conn.read_until_closed()

    with ScriptedServer(sender) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5)
        assert t.readline() == b"{%d}\r\n" % len(body)
        chunks = list(t.iter_exact(len(body), chunk=10000))
        assert max(len(c) for c in chunks) <= 10000
        assert b"".join(chunks) == body
        assert t.readline() == b")\r\n"
        t.close()


def test_silent_server_times_out() -> None:
    def silent(conn: Conn) -> None:
        conn.read_until_closed()

    with ScriptedServer(silent) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(TransportTimeoutError) as err:
            t.readline()
        assert time.monotonic() - start < 3
        assert err.value.exit_code == ExitCode.TEMPFAIL
        assert isinstance(err.value, TimeoutError)
        # Nothing at all from a cleartext server: the hint names the likely mistake.
        assert err.value.step == "greeting" and "--tls implicit" in (err.value.hint or "")
        t.close()


def test_timeout_after_greeting_has_no_tls_hint() -> None:
    def greet_then_silence(conn: Conn) -> None:
        conn.send(b"220 hi\r\n")
        conn.read_until_closed()

    with ScriptedServer(greet_then_silence) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=0.3)
        t.readline()
        with pytest.raises(TransportTimeoutError) as err:
            t.readline()
        assert err.value.hint is None
        t.close()


def test_connection_closed_mid_line() -> None:
    def half(conn: Conn) -> None:
        conn.send(b"+OK partial")
        conn.close()

    with ScriptedServer(half) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5)
        with pytest.raises(ConnectionLostError) as err:
            t.readline()
        assert isinstance(err.value, ConnectionError)
        assert err.value.exit_code == ExitCode.TEMPFAIL
        t.close()


def test_connection_reset() -> None:
    def rst(conn: Conn) -> None:
        conn.send(b"+OK hi\r\n")
        conn.reset()

    with ScriptedServer(rst) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5)
        # The kernel may drop the unread line when the RST arrives first: either way the
        # reset surfaces as ConnectionLostError, never as a hang or another exception.
        with pytest.raises(ConnectionLostError):
            for _ in range(3):
                assert t.readline() == b"+OK hi\r\n"
        t.close()


def test_refused_connection_names_every_address() -> None:
    port = dead_port()
    with pytest.raises(ConnectFailedError) as err:
        Transport.connect("127.0.0.1", port, timeout=2)
    assert err.value.exit_code == ExitCode.TEMPFAIL
    assert f"port {port}" in str(err.value) and "127.0.0.1" in str(err.value)


def test_tries_every_address_in_turn() -> None:
    """The first address refuses, the second answers: the connection still succeeds."""
    with ScriptedServer(greet_and_echo, host="127.0.0.1") as srv:
        refused = "127.0.0.2"
        probe = socket.socket()
        try:
            probe.bind((refused, srv.port))  # make sure nothing listens there
        finally:
            probe.close()
        t = Transport.connect("multi.test", srv.port, timeout=3, addresses=[refused, "127.0.0.1"])
        assert t.peer[0] == "127.0.0.1"
        assert t.readline() == b"* OK hello\r\n"
        t.close()


def test_transcript_records_redacted_secret() -> None:
    transcript = Transcript()
    with ScriptedServer(greet_and_echo) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=5, transcript=transcript)
        t.readline()
        t.send(b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", log_as=b"AUTH PLAIN <redacted>\r\n")
        t.readline()
        t.close()
    sent = b"".join(e.data for e in transcript.entries if e.direction == "C")
    assert b"AHVzZXIAc2VjcmV0" not in sent
    assert b"<redacted>" in sent
    # the entries carry increasing elapsed times
    times = [e.elapsed_ms for e in transcript.entries]
    assert times == sorted(times)


def test_source_tree_keeps_socket_in_transport() -> None:
    """Only the transport layer (transport.py and its TLS half, tlssock.py) may import
    socket or ssl, or the C modules under them (import boundary, STYLE.md)."""
    root = Path(__file__).resolve().parents[2] / "mailtool"
    layer = {root / "protocol" / "transport.py", root / "protocol" / "tlssock.py"}
    offenders = []
    for path in root.rglob("*.py"):
        if path in layer:
            continue
        text = path.read_text()
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("import socket", "import ssl", "from socket", "from ssl",
                                    "import _socket", "import _ssl", "from _socket",
                                    "from _ssl")):
                offenders.append(f"{path.relative_to(root)}: {stripped}")
    assert offenders == []
