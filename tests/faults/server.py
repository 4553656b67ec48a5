"""Scripted fault servers: tiny loopback TCP servers whose every move a test writes.

For what real servers will not do on demand (4xx at a chosen step, a dropped connection
mid-body, bytes injected after STARTTLS, endless lines). Each accepted connection runs the
test's ``handler(conn)`` in a thread. Example::

    def handler(c: Conn) -> None:
        c.send(b"220 fault.test ESMTP\\r\\n")
        c.expect(b"EHLO")
        c.send(b"250 fault.test\\r\\n")
        c.expect(b"MAIL FROM")
        c.send(b"451 4.7.1 greylisted\\r\\n")
        c.read_until_closed()

    with ScriptedServer(handler) as srv:
        run_cli("send", "--smarthost", f"127.0.0.1:{srv.port}", ..., expect=75)
    srv.check()   # re-raises an assertion error from the handler thread, if any
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType

#: Every blocking operation of a scripted server gives up after this long, so a test can
#: never hang on it (the client under test has its own, shorter, timeouts).
SERVER_TIMEOUT = 20.0


class ScriptError(AssertionError):
    """The client did not say what the script expected."""


class Conn:
    """One accepted connection, seen from the scripted server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(SERVER_TIMEOUT)
        self.buf = b""
        self.received: list[bytes] = []  # every line read, for assertions
        self.closed = False

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def sendline(self, line: str | bytes) -> None:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("client closed the connection")
        return data

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            self.buf += self._recv()
        line, _, self.buf = self.buf.partition(b"\n")
        line += b"\n"
        self.received.append(line)
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def expect(self, prefix: bytes | str) -> bytes:
        """Read one line and check it starts with ``prefix`` (case-insensitive)."""
        if isinstance(prefix, str):
            prefix = prefix.encode()
        line = self.readline()
        if not line.upper().startswith(prefix.upper()):
            raise ScriptError(f"expected {prefix!r}, client sent {line!r}")
        return line

    def read_data(self) -> bytes:
        """Read SMTP DATA up to and including the ``.CRLF`` line; return it raw."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line == b".\r\n":
                return b"".join(lines)

    def read_until_closed(self) -> bytes:
        """Read and keep everything until the client closes (or the timeout)."""
        data = self.buf
        self.buf = b""
        try:
            while True:
                data += self._recv()
        except (EOFError, OSError):
            pass
        return data

    def starttls(self, context: ssl.SSLContext) -> None:
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.buf = b""

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close()


Handler = Callable[[Conn], None]


class ScriptedServer:
    """A loopback server running ``handler`` for each connection (up to ``max_connections``).

    Args:
        handler: the script; exceptions other than a closed connection are kept and
            re-raised by ``check()``.
        tls: a server ``SSLContext`` for implicit TLS.
        host: ``127.0.0.1`` by default (any 127.0.0.0/8 address works on Linux).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 50,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(16)
        self.host, self.port = self.listener.getsockname()[:2]
        self.max_connections = max_connections
        self.connections: list[Conn] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> ScriptedServer:
        self._acceptor.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stopping and len(self.connections) < self.max_connections:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self._stopping:
                sock.close()
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock.settimeout(SERVER_TIMEOUT)
                sock = self.tls.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            sock.close()
            return
        conn = Conn(sock)
        self.connections.append(conn)
        try:
            self.handler(conn)
        except (EOFError, ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except BaseException as exc:  # reported by check()
            self.errors.append(exc)
        finally:
            conn.close()

    @property
    def connection_count(self) -> int:
        return len(self.connections)

    def stop(self) -> None:
        self._stopping = True
        try:
            self.listener.close()
        except OSError:
            pass
        for conn in list(self.connections):
            conn.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def check(self) -> None:
        """Re-raise the first error of a handler thread (a script the client did not follow)."""
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def dead_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` where nothing listens (connections are refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port
