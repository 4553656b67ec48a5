"""Client TLS on a connected socket, built on the ``_ssl`` extension (part of ``transport``).

Why not the ``ssl`` module: importing ``ssl`` (with the ``socket`` module it needs) costs
about 20 ms of every TLS start here, most of it turning constants into enums; ``_ssl`` is the
C extension ``ssl`` itself wraps, and loads in about 2 ms. We use four things of it: a client
context, ``_wrap_socket``, the handshake and the record reads and writes. The certificate and
host name checks are OpenSSL's in both cases; the context gets the same settings as
``ssl.create_default_context`` (tests/protocol/test_tlssock.py compares them).

``_ssl`` is CPython's private API. Where it lacks what we use (another implementation, a
future release), ``NATIVE`` is False and the ``ssl`` module does the same job: the rest of the
transport sees the same methods either way (``settimeout``, ``recv_into``, ``sendall``,
``close``, ``getpeername``, ``cipher``, ``version``, ``getpeercert``).
"""

from __future__ import annotations

import _ssl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from mailtool.protocol.tls import TLSSettings

#: Whether this interpreter's ``_ssl`` offers what ``wrap`` uses (tests switch it off to run
#: the ``ssl`` module fallback).
NATIVE = (hasattr(_ssl, "_SSLContext") and hasattr(_ssl._SSLContext, "_wrap_socket")
          and hasattr(_ssl, "PROTOCOL_TLS_CLIENT") and hasattr(_ssl, "SSLCertVerificationError"))

#: TLS 1.2, the lowest version we speak (RFC 8996 retired 1.0 and 1.1; RFC 8314 asks 1.2+).
TLS_1_2 = 0x0303
_CERT_NONE = 0


class TLSSocket:
    """A TLS session over a connected ``_socket.socket``, with the socket-like methods
    ``Transport`` uses. Timeouts are the raw socket's (``_ssl`` reads them per call)."""

    __slots__ = ("_raw", "_tls")

    def __init__(self, raw: Any, tls: Any) -> None:
        self._raw = raw
        self._tls = tls

    def settimeout(self, seconds: float | None) -> None:
        self._raw.settimeout(seconds)

    def gettimeout(self) -> float | None:
        return self._raw.gettimeout()  # type: ignore[no-any-return]

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        try:
            return int(self._tls.read(nbytes or len(buffer), buffer))
        except _ssl.SSLEOFError:
            return 0  # the peer closed without close_notify: end of stream, as ssl reports it

    def sendall(self, data: Any) -> None:
        write = self._tls.write
        with memoryview(data) as view:
            sent = write(view)
            while sent < len(view):
                sent += write(view[sent:])

    def close(self) -> None:
        self._raw.close()

    def getpeername(self) -> Any:
        return self._raw.getpeername()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()  # type: ignore[no-any-return]

    def version(self) -> str | None:
        return self._tls.version()  # type: ignore[no-any-return]

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)


def client_context(settings: TLSSettings) -> Any:
    """A client context: the system CAs (or ``ca_file``), host names checked, TLS 1.2 at
    least; nothing checked with ``insecure``.

    The system CA store is loaded only when something will be verified against it: not
    with ``ca_file`` and not with ``insecure`` (opportunistic MX delivery), where loading
    it (tens of milliseconds for a full bundle) would cost every connection for nothing;
    and then lazily where it can be (``trust_system``).
    """
    if not NATIVE:
        return _stdlib_context(settings)
    ctx = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    if settings.ca_file:
        ctx.load_verify_locations(settings.ca_file)
    elif not settings.insecure:
        trust_system(ctx)
    ctx.minimum_version = TLS_1_2
    if settings.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = _CERT_NONE
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not settings.insecure:
        # What ssl.create_default_context honours too: session keys for Wireshark.
        ctx.keylog_filename = keylog
    return ctx


def trust_system(ctx: Any) -> None:
    """Trust the system's CAs: OpenSSL's default bundle file and hashed directory, as
    ``set_default_verify_paths`` does, but only the directory when it holds every
    certificate of the bundle.

    OpenSSL reads the bundle file whole, parsing each of its ~150 certificates (about
    45 ms here, on every connection), while it looks a directory up by subject hash and
    reads just the CA a chain needs. Debian's update-ca-certificates keeps both complete;
    when the directory has fewer hashed names than the file has certificates (a CA
    appended to the bundle by hand, a system with no hashed directory), both are loaded.
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` override the defaults, as in OpenSSL.
    """
    file_env, default_file, dir_env, default_dir = _ssl.get_default_verify_paths()
    bundle = os.environ.get(file_env) or default_file
    directory = os.environ.get(dir_env) or default_dir
    hashed = _hashed_names(directory) if directory else 0
    if hashed and hashed >= _certificates_in(bundle):
        ctx.load_verify_locations(None, directory)
    else:
        ctx.set_default_verify_paths()


def _hashed_names(directory: str) -> int:
    """How many ``HHHHHHHH.N`` names (OpenSSL's subject-hash links) ``directory`` holds."""
    count = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if (len(name) > 9 and name[8] == "." and name[9:].isdigit()
                        and all(c in "0123456789abcdef" for c in name[:8])):
                    count += 1
    except OSError:
        return 0
    return count


def _certificates_in(bundle: str | None) -> int:
    """How many PEM certificates the bundle file holds (0 when there is none)."""
    if not bundle:
        return 0
    try:
        with open(bundle, "rb") as handle:
            return handle.read().count(b"-----BEGIN CERTIFICATE-----")
    except OSError:
        return 0


def _stdlib_context(settings: TLSSettings) -> Any:
    import ssl

    if settings.insecure and not settings.ca_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        ctx = ssl.create_default_context(cafile=settings.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wrap(raw: Any, ctx: Any, server_name: str,
         while_waiting: Callable[[], object] | None = None) -> Any:
    """Run the client handshake on the connected socket ``raw``; return the TLS socket.

    ``server_name`` is sent as SNI and checked against the certificate (OpenSSL does both;
    an IP address is checked as one and sends no SNI). ``while_waiting`` runs once after
    our first flight went out, while the server computes its answer (the handshake then
    goes on where it stopped).

    Raises:
        ssl errors (``_ssl.SSLError`` and subclasses), TimeoutError, OSError.
    """
    # An ASCII name goes as it is: the idna codec would cost ~2.5 ms of imports for nothing.
    name = server_name if server_name.isascii() else server_name.encode("idna").decode("ascii")
    if NATIVE:
        session = ctx._wrap_socket(raw, False, name)
        tls = TLSSocket(raw, session)
    else:
        session = tls = ctx.wrap_socket(raw, server_hostname=name, do_handshake_on_connect=False)
    if while_waiting is not None:
        timeout = tls.gettimeout()
        tls.settimeout(0.0)
        try:
            session.do_handshake()
            done = True
        except (_ssl.SSLWantReadError, _ssl.SSLWantWriteError):
            done = False  # the ClientHello is out: the server's turn
        finally:
            tls.settimeout(timeout)
        while_waiting()
        if done:
            return tls
    session.do_handshake()
    return tls


def cert_verification_error() -> type[BaseException]:
    """The class of a failed certificate check (the same class ``ssl`` exports)."""
    return _ssl.SSLCertVerificationError


def errors(*names: str) -> tuple[type[BaseException], ...]:
    """``_ssl`` exception classes by name (``ssl`` re-exports these very classes)."""
    return tuple(getattr(_ssl, name) for name in names)
