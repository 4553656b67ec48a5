"""The only module that touches sockets and ``ssl``: connect, TLS, bounded reads, writes.

Theory: a ``Transport`` is a connected byte stream with a read buffer. ``connect`` tries
every address of a host in order (IPv6 and IPv4, as ``getaddrinfo`` returns them) until one
answers. Implicit TLS wraps the socket before the first byte; ``starttls`` wraps it later and
*discards whatever was buffered before the handshake* (the STARTTLS response injection class:
CVE-2011-0411, CVE-2020-14954, CVE-2021-22947). Reads are bounded: ``readline`` refuses lines
longer than its limit, ``iter_exact`` streams a counted body in chunks. Every operation has a
timeout. Everything sent and received can be recorded in a ``Transcript``; senders mark
secrets with ``log_as`` so the transcript never holds them.
"""

from __future__ import annotations

import _socket
import sys

from mailtool.errors import (
    ConnectFailedError,
    ConnectionLostError,
    LineTooLongError,
    TLSError,
    TransportTimeoutError,
)
from mailtool.protocol.wire import CHUNK, MAX_LINE

# Not ``typing.TYPE_CHECKING``: typing, datetime, zlib and ssl are imported only when
# needed (mailtool-sendmail over cleartext needs none of them).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    import zlib
    from collections.abc import Callable, Iterator
    from typing import Any

    from mailtool.protocol.tls import TLSInfo, TLSMode, TLSSettings
    from mailtool.protocol.tlssock import TLSSocket
    from mailtool.protocol.transcript import Transcript

#: Default per-operation timeout in seconds. RFC 5321 section 4.5.3.2 asks for minutes on
#: some SMTP steps; the SMTP client raises it where the RFC requires (after the final dot).
DEFAULT_TIMEOUT = 60.0


class _NoSSLError(Exception):
    """Stands for TLS errors while no TLS module is loaded: none can happen then."""


def _ssl_errors(*names: str) -> tuple[type[BaseException], ...]:
    """TLS exception classes by name, for ``except`` clauses; the TLS layer is imported
    only for TLS (it costs every cleartext start, mailtool-sendmail's included)."""
    if "mailtool.protocol.tlssock" not in sys.modules:
        return (_NoSSLError,)
    from mailtool.protocol.tlssock import errors

    return errors(*names)


def _tls_error(exc: BaseException, host: str) -> TLSError:
    from mailtool.protocol.tlssock import cert_verification_error

    if isinstance(exc, cert_verification_error()):
        detail = getattr(exc, "verify_message", None) or str(exc)
        return TLSError(
            f"certificate of {host} not trusted: {detail}",
            step="TLS handshake",
            hint="give the issuing CA with --ca-file, or --insecure to skip the check",
        )
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return TLSError(
            f"{host} did not answer in TLS (wrong version number)",
            step="TLS handshake",
            hint="this port probably expects STARTTLS or cleartext: try --tls starttls",
        )
    reason = getattr(exc, "reason", None) or text
    return TLSError(f"TLS handshake with {host} failed: {reason}", step="TLS handshake")


class _Socket(_socket.socket):
    """The C socket type, made weak-referenceable (a TLS session refers to its socket
    weakly). ``socket.socket`` would do as well, but the ``socket`` module costs ~8 ms of
    every start (it turns the constants into enums) and adds nothing else we use."""

    __slots__ = ("__weakref__",)


def _host_arg(host: str) -> str | bytes:
    """``host`` for ``getaddrinfo``: an ASCII name as bytes, which skips the ``idna`` codec
    (``getaddrinfo`` runs every ``str`` through it: ~3 ms of imports, for nothing when the
    name is ASCII); a non-ASCII name stays ``str`` and gets its IDNA encoding."""
    return host.encode("ascii") if host.isascii() else host


def _name(entries: object) -> str | None:
    if not isinstance(entries, tuple):
        return None
    for rdn in entries:
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    for rdn in entries:
        for key, value in rdn:
            if key == "organizationName":
                return str(value)
    return None


def connect_for_mode(host: str, port: int, tls_mode: TLSMode, settings: TLSSettings,
                     **kwargs: Any) -> Transport:
    """``Transport.connect`` as a protocol client's TLS mode asks: wrapped in TLS from the
    first byte when it is IMPLICIT; in cleartext otherwise (STARTTLS, or its absence, is
    the client's business). ``kwargs`` go to ``Transport.connect``."""
    from mailtool.protocol.tls import TLSMode

    return Transport.connect(host, port, tls=settings if tls_mode is TLSMode.IMPLICIT else None,
                             **kwargs)


class Transport:
    """A connected, optionally TLS-protected byte stream with bounded buffered reads."""

    def __init__(
        self,
        sock: _socket.socket,
        host: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Transcript | None = None,
        peer: tuple[str, int] | None = None,
    ) -> None:
        self._sock = sock
        self.host = host
        self.transcript = transcript
        self._buf = bytearray()
        self._pos = 0
        self._timeout = timeout  # wanted for the next blocking operation
        self._applied = timeout  # set on the socket (set_timeout is lazy: see there)
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self.tls_info: TLSInfo | None = None
        self.closed = False
        self._received_any = False
        self.discarded_before_tls = 0
        self._burst: bytearray | None = None  # the reusable receive buffer (recv_into)
        #: Called right before a read that has to wait for the peer: the caller's chance to
        #: do work of its own meanwhile (``send --batch`` reads its next message then).
        #: It must not use this transport, and should not raise.
        self.on_wait: Callable[[], None] | None = None
        sock.settimeout(timeout)
        if peer is None:
            # The server may already have reset the connection: its address is still known
            # to the caller that connected, so only ask the kernel as a fallback.
            try:
                address = sock.getpeername()
                peer = (str(address[0]), int(address[1]))
            except OSError:
                peer = ("?", 0)
        self.peer: tuple[str, int] = peer

    # --- connecting -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        tls: TLSSettings | None = None,
        transcript: Transcript | None = None,
        addresses: list[str] | None = None,
        while_waiting: Callable[[], object] | None = None,
    ) -> Transport:
        """Connect to the first address of ``host`` that answers; wrap in TLS if ``tls``.

        Args:
            addresses: IP addresses to try instead of resolving ``host`` (MX delivery
                resolves with DNS itself); ``host`` is still the TLS server name.
            while_waiting: run once while the server works on the new connection (its TLS
                handshake, after our first flight; or its greeting, in cleartext): the
                caller's chance to do start-up work of its own meanwhile, such as imports.
                It must not use the connection.

        Raises:
            ConnectFailedError: no address accepted (the last error is named).
            TLSError: the implicit TLS handshake or certificate check failed.
        """
        ctimeout = connect_timeout if connect_timeout is not None else timeout
        candidates: list[tuple[int, Any]] = []
        try:
            if addresses is not None:
                for addr in addresses:
                    for info in _socket.getaddrinfo(
                        _host_arg(addr), port, type=_socket.SOCK_STREAM,
                        flags=_socket.AI_NUMERICHOST,
                    ):
                        candidates.append((info[0], info[4]))
            else:
                for info in _socket.getaddrinfo(_host_arg(host), port, type=_socket.SOCK_STREAM):
                    candidates.append((info[0], info[4]))
        except _socket.gaierror as exc:
            raise ConnectFailedError(
                f"cannot resolve {host}: {exc.strerror}", step="connect"
            ) from exc
        errors: list[str] = []
        for family, sockaddr in candidates:
            sock = _Socket(family, _socket.SOCK_STREAM)
            sock.settimeout(ctimeout)
            if transcript is not None:
                transcript.note(f"connecting to {sockaddr[0]} port {sockaddr[1]}")
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
                errors.append(f"{sockaddr[0]}: {reason}")
                continue
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            transport = cls(
                sock, host, timeout=timeout, transcript=transcript,
                peer=(str(sockaddr[0]), int(sockaddr[1])),
            )
            if transcript is not None:
                transcript.note(f"connected to {sockaddr[0]} port {sockaddr[1]}")
            try:
                if tls is not None:
                    transport._wrap(tls, while_waiting)
                elif while_waiting is not None:
                    while_waiting()
            except BaseException:
                transport.close()  # the caller's work failed too: no socket left behind
                raise
            return transport
        detail = "; ".join(errors) if errors else "no addresses"
        raise ConnectFailedError(f"cannot connect to {host} port {port}: {detail}", step="connect")

    def _wrap(self, settings: TLSSettings,
              while_waiting: Callable[[], object] | None = None) -> TLSInfo:
        from mailtool.protocol import tlssock

        self._apply_timeout()
        ctx = tlssock.client_context(settings)
        server_name = settings.server_hostname or self.host
        try:
            tls_sock = tlssock.wrap(self._sock, ctx, server_name, while_waiting)
        except tlssock.errors("SSLError") as exc:
            self.close()
            raise _tls_error(exc, server_name) from exc
        except TimeoutError as exc:
            self.close()
            raise TransportTimeoutError(
                f"no TLS handshake from {server_name} within {self._timeout:g} s",
                step="TLS handshake",
                hint="if this port expects STARTTLS, use --tls starttls",
            ) from exc
        except OSError as exc:
            self.close()
            raise ConnectionLostError(
                f"connection lost during TLS handshake: {exc}", step="TLS handshake"
            ) from exc
        self._sock = tls_sock
        self.tls_info = self._tls_facts(tls_sock, verified=not settings.insecure)
        if self.transcript is not None:
            self.transcript.note(f"TLS established: {self.tls_info.summary()}")
        return self.tls_info

    def starttls(self, settings: TLSSettings) -> TLSInfo:
        """Upgrade to TLS after the server's go-ahead.

        Bytes that arrived before the handshake are discarded (and noted in the transcript):
        they were sent in cleartext and must never be read as part of the TLS session.
        """
        pending = len(self._buf) - self._pos
        if pending and self.transcript is not None:
            self.transcript.note(f"discarded {pending} bytes received before the TLS handshake")
        self.discarded_before_tls = pending
        self._buf = bytearray()
        self._pos = 0
        return self._wrap(settings)

    @staticmethod
    def _tls_facts(sock: TLSSocket | ssl.SSLSocket, *, verified: bool) -> TLSInfo:
        from mailtool.protocol.tls import TLSInfo

        cipher = sock.cipher()
        cert = sock.getpeercert() if verified else None
        subject = issuer = expires = None
        alt: tuple[str, ...] = ()
        if cert:
            subject = _name(cert.get("subject"))
            issuer = _name(cert.get("issuer"))
            raw_after = cert.get("notAfter")
            expires = raw_after if isinstance(raw_after, str) else None
            sans: Any = cert.get("subjectAltName", ())
            alt = tuple(str(entry[1]) for entry in sans)
        return TLSInfo(
            version=sock.version() or "?",
            cipher=cipher[0] if cipher else "?",
            bits=cipher[2] if cipher else None,
            verified=verified,
            subject=subject,
            issuer=issuer,
            expires=expires,
            alt_names=alt,
        )

    # --- compression (IMAP COMPRESS=DEFLATE, RFC 4978) -----------------------------

    def start_deflate(self) -> None:
        """Compress everything sent and received from now on (raw DEFLATE)."""
        import zlib

        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        rest = bytes(self._buf[self._pos :])
        self._buf = bytearray(self._inflate.decompress(rest)) if rest else bytearray()
        self._pos = 0

    # --- reading --------------------------------------------------------------------

    def set_timeout(self, seconds: float) -> None:
        """The timeout of the next blocking operation. Applied to the socket only when one
        comes (each ``settimeout`` is a system call, and a pipelined batch changes the
        timeout for every reply it reads, most of them already in the buffer)."""
        self._timeout = seconds

    def _apply_timeout(self) -> None:
        if self._applied != self._timeout:
            self._sock.settimeout(self._timeout)
            self._applied = self._timeout

    @property
    def timeout(self) -> float:
        return self._timeout

    def _fill(self) -> None:
        """Read more bytes into the buffer, or raise on EOF, reset or timeout."""
        if self._pos and self._pos > len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        if self._burst is None:
            # recv_into one buffer: recv(CHUNK) would allocate (mmap) and shrink (mremap)
            # a 256 kB object for every read, a few hundred bytes of replies included.
            self._burst = bytearray(CHUNK)
        if self.on_wait is not None:
            self.on_wait()
        self._apply_timeout()
        try:
            count = self._sock.recv_into(self._burst)
        except TimeoutError as exc:
            if not self._received_any and self.tls_info is None:
                # Silence from the very first byte, in cleartext: the classic sign of a
                # client speaking cleartext to an implicit-TLS port (himalaya #658).
                raise TransportTimeoutError(
                    f"no greeting from {self.host} within {self._timeout:g} s",
                    step="greeting",
                    hint="if this port expects implicit TLS (465, 993, 995), use --tls implicit",
                ) from exc
            raise TransportTimeoutError(
                f"no answer from {self.host} within {self._timeout:g} s"
            ) from exc
        except _ssl_errors("SSLError") as exc:
            raise ConnectionLostError(f"TLS error from {self.host}: {exc}") from exc
        except OSError as exc:
            raise ConnectionLostError(f"connection to {self.host} lost: {exc}") from exc
        if not count:
            raise ConnectionLostError(f"{self.host} closed the connection")
        self._received_any = True
        with memoryview(self._burst) as view:
            if self._inflate is not None:
                self._buf += self._inflate.decompress(view[:count])
            else:
                self._buf += view[:count]

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """Return the next line including its line end.

        Raises:
            LineTooLongError: no line end within ``limit`` bytes.
            ConnectionLostError, TransportTimeoutError.
        """
        start = self._pos
        scan = start
        while True:
            idx = self._buf.find(b"\n", scan)
            if idx >= 0:
                if idx + 1 - start > limit:
                    raise LineTooLongError(f"{self.host} sent a line longer than {limit} bytes")
                line = bytes(self._buf[start : idx + 1])
                self._pos = idx + 1
                if self.transcript is not None:
                    self.transcript.record("S", line)
                return line
            if len(self._buf) - start > limit:
                raise LineTooLongError(f"{self.host} sent a line longer than {limit} bytes")
            scan = len(self._buf)
            offset = self._pos
            self._fill()
            # _fill may compact the buffer: shift our indexes with it.
            shift = offset - self._pos
            start -= shift
            scan -= shift

    def iter_exact(self, n: int, chunk: int = CHUNK) -> Iterator[bytes]:
        """Yield exactly ``n`` bytes in chunks (an IMAP literal, a counted body)."""
        remaining = n
        if self.transcript is not None:
            self.transcript.record("S", f"<{n} bytes>".encode())
        while remaining > 0:
            if self._pos >= len(self._buf):
                self._buf = bytearray()
                self._pos = 0
                self._fill()
            take = min(remaining, len(self._buf) - self._pos, chunk)
            piece = bytes(self._buf[self._pos : self._pos + take])
            self._pos += take
            remaining -= take
            yield piece

    def read_exact(self, n: int) -> bytes:
        """Read exactly ``n`` bytes (callers bound ``n``)."""
        return b"".join(self.iter_exact(n))

    def read_available(self, limit: int = CHUNK) -> bytes:
        """Return up to ``limit`` bytes: those already buffered, else the next ones to arrive.

        For sans-I/O sessions that do their own framing (POP3 multi-line bodies). Nothing
        is recorded in the transcript: the session's client records what it parsed.
        """
        if self._pos >= len(self._buf):
            self._buf = bytearray()
            self._pos = 0
            self._fill()
        take = min(limit, len(self._buf) - self._pos)
        data = bytes(self._buf[self._pos : self._pos + take])
        self._pos += take
        return data

    def read_burst(self, limit: int = CHUNK) -> bytes:
        """Like ``read_available``, then also whatever else has already arrived (up to
        ``limit`` bytes in all) without waiting for more.

        For bulk transfers (a POP3 message stream): a TLS server sends records of a few
        kB, and handing them to the caller one by one costs a Python round per record. The
        extra reads go into one reusable buffer (``recv_into``), so a burst allocates only
        the bytes it returns. Errors are those of ``read_available``.
        """
        first = self.read_available(limit)
        if self._inflate is not None or len(first) >= limit:
            return first
        parts = [first]
        total = len(first)
        if self._burst is None:
            self._burst = bytearray(CHUNK)
        view = memoryview(self._burst)
        sock = self._sock
        would_block: tuple[type[BaseException], ...] = (
            BlockingIOError, *_ssl_errors("SSLWantReadError", "SSLWantWriteError"))
        sock.settimeout(0.0)
        try:
            while total < limit:
                try:
                    count = sock.recv_into(view, min(limit - total, len(view)))
                except would_block:
                    break
                except OSError:
                    break  # reported by the next blocking read, with its usual message
                if not count:
                    break  # end of stream: the next read reports it
                parts.append(bytes(view[:count]))
                total += count
        finally:
            view.release()
            sock.settimeout(self._timeout)
            self._applied = self._timeout
        return b"".join(parts) if len(parts) > 1 else first

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed."""
        return len(self._buf) - self._pos

    # --- writing --------------------------------------------------------------------

    def send(self, data: bytes, *, log_as: bytes | None = None) -> None:
        """Send ``data``; the transcript records ``log_as`` instead when given (secrets)."""
        if self.transcript is not None:
            self.transcript.record("C", data if log_as is None else log_as)
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(2)  # Z_SYNC_FLUSH
        self._apply_timeout()
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise TransportTimeoutError(f"{self.host} stopped reading within {self._timeout:g} s") from exc
        except OSError as exc:
            raise ConnectionLostError(f"connection to {self.host} lost while sending: {exc}") from exc

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
