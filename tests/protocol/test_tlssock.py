"""The TLS layer on ``_ssl`` (tlssock) and its ``ssl`` module fallback: the same context
settings as ``ssl.create_default_context``, and the same behaviour through ``Transport``
(verification, host names, ragged EOF, big writes) on both paths."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailtool.errors import ConnectionLostError, TLSError
from mailtool.protocol import tlssock
from mailtool.protocol.tls import TLSSettings
from mailtool.protocol.transport import Transport
from tests.faults.server import Conn, ScriptedServer
from tests.servers.ca import TestCA

pytestmark = pytest.mark.timeout(30)

SETTINGS = ("options", "verify_mode", "check_hostname", "minimum_version", "maximum_version",
            "verify_flags", "security_level", "post_handshake_auth")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def _settings_of(ctx: object, store: bool = True) -> dict[str, object]:
    found = {name: getattr(ctx, name) for name in SETTINGS}
    found["ciphers"] = [c["name"] for c in ctx.get_ciphers()]  # type: ignore[attr-defined]
    if store:
        found["store"] = ctx.cert_store_stats()  # type: ignore[attr-defined]
    return found


def _reference(settings: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@pytest.mark.skipif(not tlssock.NATIVE, reason="this Python's _ssl lacks the native API")
@pytest.mark.parametrize("with_ca", [True, False], ids=["ca-file", "system-store"])
def test_native_context_matches_create_default_context(ca: TestCA, with_ca: bool) -> None:
    settings = TLSSettings(ca_file=str(ca.ca_file) if with_ca else None)
    ours = tlssock.client_context(settings)
    assert not isinstance(ours, ssl.SSLContext)  # really the C type, not the ssl module's
    # The system store may be loaded lazily (see the trust_system tests below).
    assert _settings_of(ours, with_ca) == _settings_of(_reference(settings), with_ca)
    assert ours.verify_mode == ssl.CERT_REQUIRED and ours.check_hostname
    assert ours.minimum_version == ssl.TLSVersion.TLSv1_2


def test_insecure_context_checks_nothing_and_loads_no_store() -> None:
    ctx = tlssock.client_context(TLSSettings(insecure=True))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


def _greet_and_echo(conn: Conn) -> None:
    conn.send(b"* OK hello\r\n")
    line = conn.readline()
    conn.send(b"echo " + line)
    conn.read_until_closed()


@pytest.fixture(params=["native", "stdlib"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the ``_ssl`` path and on the ``ssl`` module fallback."""
    if request.param == "native":
        if not tlssock.NATIVE:
            pytest.skip("this Python's _ssl lacks the native API")
    else:
        monkeypatch.setattr(tlssock, "NATIVE", False)
    return str(request.param)


@pytest.fixture
def tls_server(ca: TestCA) -> Iterator[ScriptedServer]:
    with ScriptedServer(_greet_and_echo, tls=ca.server_context()) as srv:
        yield srv


def test_verified_session_reads_writes_and_reports(path: str, ca: TestCA,
                                                   tls_server: ScriptedServer) -> None:
    t = Transport.connect("localhost", tls_server.port, timeout=5,
                          tls=TLSSettings(ca_file=str(ca.ca_file)))
    try:
        expected = tlssock.TLSSocket if path == "native" else ssl.SSLSocket
        assert isinstance(t._sock, expected)
        assert t.readline() == b"* OK hello\r\n"
        t.send(b"ping\r\n")
        assert t.readline() == b"echo ping\r\n"
        info = t.tls_info
        assert info is not None and info.verified and info.version.startswith("TLSv1.")
        assert info.subject and "localhost" in info.alt_names and info.bits
    finally:
        t.close()


@pytest.mark.parametrize("kind", ["wrong_host", "untrusted", "expired"])
def test_bad_certificate_refused(path: str, ca: TestCA, kind: str) -> None:
    with ScriptedServer(_greet_and_echo, tls=getattr(ca, kind)().server_context()) as srv:
        with pytest.raises(TLSError) as err:
            Transport.connect("localhost", srv.port, timeout=5,
                              tls=TLSSettings(ca_file=str(ca.ca_file)))
    assert "not trusted" in str(err.value) and err.value.step == "TLS handshake"


def test_close_without_close_notify_is_end_of_stream(path: str, ca: TestCA) -> None:
    def half_line_then_gone(conn: Conn) -> None:
        conn.send(b"* OK hel")
        conn.close()  # the TCP connection ends with no TLS close_notify

    with ScriptedServer(half_line_then_gone, tls=ca.server_context()) as srv:
        t = Transport.connect("localhost", srv.port, timeout=5,
                              tls=TLSSettings(ca_file=str(ca.ca_file)))
        try:
            with pytest.raises(ConnectionLostError) as err:
                t.readline()
        finally:
            t.close()
    assert "closed the connection" in str(err.value)


def test_big_write_arrives_whole(path: str, ca: TestCA) -> None:
    size = 3 * 1024 * 1024 + 7  # many TLS records, more than a socket buffer holds

    def count(conn: Conn) -> None:
        conn.send(b"* OK\r\n")
        data = conn.read_exact(size)
        conn.send(f"got {len(data)} {data.count(b'x')}\r\n".encode())
        conn.read_until_closed()

    with ScriptedServer(count, tls=ca.server_context()) as srv:
        t = Transport.connect("localhost", srv.port, timeout=10,
                              tls=TLSSettings(ca_file=str(ca.ca_file)))
        try:
            assert t.readline() == b"* OK\r\n"
            t.send(b"x" * size)
            assert t.readline() == f"got {size} {size}\r\n".encode()
        finally:
            t.close()


# --- the system store: the hashed directory alone when it is complete ------------------

def _hashed_dir(directory: Path, *pems: bytes) -> Path:
    """A directory of certificates named by OpenSSL subject hash, as c_rehash makes."""
    directory.mkdir()
    for index, pem in enumerate(pems):
        source = directory.parent / f"cert{index}.pem"
        source.write_bytes(pem)
        digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(source)],
                                capture_output=True, text=True, check=True).stdout.strip()
        (directory / f"{digest}.0").write_bytes(pem)
    return directory


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="the openssl command computes the subject hashes")


@pytest.fixture
def system_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    yield tmp_path


@needs_openssl
@pytest.mark.skipif(not tlssock.NATIVE, reason="this Python's _ssl lacks the native API")
def test_complete_hashed_directory_is_read_lazily_and_verifies(
        ca: TestCA, tls_server: ScriptedServer, system_store: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = system_store / "bundle.pem"
    bundle.write_bytes(ca.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(_hashed_dir(system_store / "certs", ca.ca_pem)))
    ctx = tlssock.client_context(TLSSettings())
    assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing parsed up front
    t = Transport.connect("localhost", tls_server.port, timeout=5, tls=TLSSettings())
    try:
        assert t.readline() == b"* OK hello\r\n"
        assert t.tls_info is not None and t.tls_info.verified
    finally:
        t.close()


@needs_openssl
@pytest.mark.skipif(not tlssock.NATIVE, reason="this Python's _ssl lacks the native API")
def test_bundle_with_more_certificates_than_the_directory_is_loaded_whole(
        ca: TestCA, tls_server: ScriptedServer, system_store: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    other = trustme.CA(organization_name="mailtool other CA").cert_pem.bytes()
    bundle = system_store / "bundle.pem"
    bundle.write_bytes(other + ca.ca_pem)  # our CA appended by hand, never hashed
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(_hashed_dir(system_store / "certs", other)))
    ctx = tlssock.client_context(TLSSettings())
    assert ctx.cert_store_stats()["x509_ca"] == 2
    t = Transport.connect("localhost", tls_server.port, timeout=5, tls=TLSSettings())
    try:
        assert t.tls_info is not None and t.tls_info.verified
    finally:
        t.close()


@pytest.mark.skipif(not tlssock.NATIVE, reason="this Python's _ssl lacks the native API")
def test_no_hashed_directory_loads_the_bundle(ca: TestCA, system_store: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = system_store / "bundle.pem"
    bundle.write_bytes(ca.ca_pem)
    (system_store / "empty").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(system_store / "empty"))
    assert tlssock.client_context(TLSSettings()).cert_store_stats()["x509_ca"] == 1


def test_system_store_still_refuses_an_unknown_ca(ca: TestCA, system_store: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    other = trustme.CA(organization_name="mailtool other CA").cert_pem.bytes()
    bundle = system_store / "bundle.pem"
    bundle.write_bytes(other)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(system_store / "none"))
    with ScriptedServer(_greet_and_echo, tls=ca.server_context()) as srv:
        with pytest.raises(TLSError) as err:
            Transport.connect("localhost", srv.port, timeout=5, tls=TLSSettings())
    assert "not trusted" in str(err.value)


# --- work done while the server answers the handshake ------------------------------------

def test_while_waiting_runs_between_the_client_hello_and_the_server_answer(
        path: str, ca: TestCA) -> None:
    """The server only answers the handshake once the work has run: a handshake that
    waited for the server before running it would time out instead."""
    import threading

    ran = threading.Event()
    calls: list[int] = []

    def answer_after_the_work(conn: Conn) -> None:
        assert ran.wait(10)
        conn.starttls(ca.server_context())
        conn.send(b"* OK hello\r\n")
        conn.read_until_closed()

    def work() -> None:
        calls.append(1)
        ran.set()

    with ScriptedServer(answer_after_the_work) as srv:
        t = Transport.connect("localhost", srv.port, timeout=3, while_waiting=work,
                              tls=TLSSettings(ca_file=str(ca.ca_file)))
        try:
            assert t.readline() == b"* OK hello\r\n"
            assert t.tls_info is not None and t.tls_info.verified
        finally:
            t.close()
    assert calls == [1]


def test_while_waiting_in_cleartext_runs_once_before_the_greeting_is_read() -> None:
    import threading

    ran = threading.Event()

    def greet_after_the_work(conn: Conn) -> None:
        assert ran.wait(10)
        conn.send(b"* OK hello\r\n")
        conn.read_until_closed()

    with ScriptedServer(greet_after_the_work) as srv:
        t = Transport.connect("127.0.0.1", srv.port, timeout=3, while_waiting=ran.set)
        try:
            assert ran.is_set() and t.readline() == b"* OK hello\r\n"
        finally:
            t.close()


def test_handshake_failure_after_the_work_is_still_reported(path: str, ca: TestCA) -> None:
    calls: list[int] = []
    with ScriptedServer(_greet_and_echo, tls=ca.untrusted().server_context()) as srv:
        with pytest.raises(TLSError) as err:
            Transport.connect("localhost", srv.port, timeout=5, while_waiting=lambda: calls.append(1),
                              tls=TLSSettings(ca_file=str(ca.ca_file)))
    assert "not trusted" in str(err.value) and calls == [1]


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "cleartext"])
def test_failing_work_closes_the_connection(ca: TestCA, tls: bool) -> None:
    import threading

    closed = threading.Event()

    def wait_for_the_close(conn: Conn) -> None:
        conn.sock.settimeout(20)
        try:
            while conn.sock.recv(4096):  # a ClientHello, maybe: never answered
                pass
        except ConnectionResetError:
            pass
        closed.set()  # EOF or reset: the client let go of the socket (not a timeout)

    def boom() -> None:
        raise RuntimeError("the caller's work failed")

    with ScriptedServer(wait_for_the_close) as srv:
        with pytest.raises(RuntimeError) as err:
            Transport.connect("localhost", srv.port, timeout=3, while_waiting=boom,
                              tls=TLSSettings(ca_file=str(ca.ca_file)) if tls else None)
        # Closed by the transport, not by the garbage collector: the traceback (kept
        # alive here, as a caller reporting the error would) still holds the socket.
        assert closed.wait(5) and err.value.__traceback__ is not None
