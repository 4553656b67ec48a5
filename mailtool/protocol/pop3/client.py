"""``POP3Client``: drives a ``POP3Session`` over a ``Transport``.

Theory of operation: every command goes through the session, which pairs replies with
commands; the client reads from the transport only when the session needs data. Public
methods are one command each (``capa``, ``stls``, ``login``, ``stat``, ``list``, ``uidl``,
``retr``, ``top``, ``dele``, ``rset``, ``noop``, ``quit``) plus the pipelined helpers
``retr_many``/``dele_many`` that send a window of commands at once when the server
advertises PIPELINING (RFC 2449 section 6.6) and one by one otherwise.

Bodies stream: ``retr`` yields unstuffed chunks as they arrive and must be consumed before
the next command's reply is read. Failures are ``MailtoolError`` subclasses with the step
(the command) and the server reply; the exit code comes from ``replies.exit_code_for`` (RFC
2449/3206 response codes: IN-USE, LOGIN-DELAY, SYS/TEMP -> 75; AUTH -> 77; SYS/PERM -> 69).

TLS: ``open`` does implicit TLS, or STLS (RFC 2595) when the mode says STARTTLS; a server
without STLS is refused then, never silently used in cleartext. After STLS, bytes received
before the handshake are discarded and CAPA is asked again (RFC 2595 section 4).

Used by ``pop-fetch`` (``mailtool.retrieve``) and by ``diagnose`` (connect, CAPA, TLS, login).
"""

from __future__ import annotations

from mailtool.errors import (
    AuthError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    TLSError,
    UnavailableError,
)
from mailtool.exitcodes import ExitCode
from mailtool.protocol import sasl
from mailtool.protocol.pop3.session import (
    Challenge,
    Data,
    End,
    Event,
    Greeting,
    Line,
    NeedData,
    POP3Session,
    Status,
    apop_digest,
    parse_capa,
    parse_list,
    parse_scan_line,
    parse_stat,
    parse_uidl,
    parse_uidl_line,
)
from mailtool.protocol.replies import Reply, exit_code_for
from mailtool.protocol.tls import TLSInfo, TLSMode, TLSSettings, must_upgrade
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import DEFAULT_TIMEOUT, Transport, connect_for_mode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

#: Most commands in flight at once when pipelining. Commands are ~12 bytes, so a window
#: this size (3 kB) stays far below any TCP send buffer (RFC 2449 section 6.6's deadlock
#: warning): we never block writing while the server blocks writing answers to us.
PIPELINE_WINDOW = 256

#: Most messages a maildrop may list; beyond this the server is hostile or broken. A listing
#: is held in memory (about 60 bytes a line), so this also bounds what a never-ending LIST
#: or UIDL can cost: 10 million lines took gigabytes.
MAX_MESSAGES = 250_000

#: Most AUTH round trips before we give up on a looping server.
MAX_AUTH_STEPS = 10

_CODE_MEANING = {
    "IN-USE": "the mailbox is locked by another session",
    "LOGIN-DELAY": "the server allows logins only every so often",
    "SYS/TEMP": "temporary server problem",
    "SYS/PERM": "permanent server problem",
    "AUTH": "authentication failed",
}

_EXIT_ERROR: dict[ExitCode, type[MailtoolError]] = {
    ExitCode.TEMPFAIL: TempFailError,
    ExitCode.NOPERM: AuthError,
    ExitCode.UNAVAILABLE: UnavailableError,
    ExitCode.PROTOCOL: ProtocolError,
}


def reply_error(
    step: str, reply: Reply, what: str = "refused", *, default: ExitCode | None = None
) -> MailtoolError:
    """The ``MailtoolError`` for a ``-ERR`` reply to ``step``.

    Args:
        default: exit code when the reply carries no response code (e.g. 77 for a login
            step, where RFC 3206 servers would say [AUTH]).
    """
    code = exit_code_for(reply)
    if reply.resp_code is None and default is not None:
        code = default
    meaning = _CODE_MEANING.get(reply.resp_code or "")
    message = f"{what} ({meaning})" if meaning else what
    cls = _EXIT_ERROR.get(code, MailtoolError)
    return cls(message, step=step, reply=reply, exit_code=code)


def _uidl_unsupported(exc: MailtoolError) -> bool:
    """A plain -ERR to UIDL means "no UIDL here"; a lost connection, a transient response
    code or a grammar violation is an error like any other."""
    if isinstance(exc, ProtocolError) or not isinstance(exc.reply, Reply):
        return False
    return not exc.reply.is_transient


class POP3Client:
    """A POP3 client connection. Build one with ``POP3Client.open``.

    Attributes:
        greeting: the server greeting.
        apop_timestamp: the greeting's APOP timestamp, or None.
        capabilities: the last CAPA answer, ``{NAME: (args...)}`` (empty when CAPA failed).
        authenticated: True after a successful login.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.session = POP3Session()
        self.greeting: Reply | None = None
        self.apop_timestamp: str | None = None
        self.capabilities: dict[str, tuple[str, ...]] = {}
        self.capa_supported = False
        self.authenticated = False
        self.discarded_before_tls = 0

    # --- opening ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        tls_mode: TLSMode = TLSMode.IMPLICIT,
        tls: TLSSettings | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Transcript | None = None,
        while_waiting: Callable[[], object] | None = None,
    ) -> POP3Client:
        """Connect, read the greeting, CAPA, and set up TLS as ``tls_mode`` says.

        ``STARTTLS`` requires STLS (refused otherwise), ``OPPORTUNISTIC`` uses it when
        offered, ``NONE`` stays in cleartext, ``IMPLICIT`` wraps before the greeting.
        ``while_waiting``: the caller's work, run once while the server answers the TLS
        handshake or prepares its greeting (see ``Transport.connect``).

        Raises:
            ConnectFailedError, TransportTimeoutError, ConnectionLostError: network trouble.
            TLSError: TLS required but STLS not offered, refused, or the handshake failed.
            MailtoolError: the greeting was -ERR (exit code from its response code).
        """
        settings = tls or TLSSettings()
        transport = connect_for_mode(host, port, tls_mode, settings, timeout=timeout,
                                     transcript=transcript, while_waiting=while_waiting)
        client = cls(transport)
        try:
            client.read_greeting()
            client.capa()
            if must_upgrade(tls_mode, "STLS" in client.capabilities, host=host,
                            command="STLS", implicit_port=995):
                client.stls(settings)
        except BaseException:
            client.close()
            raise
        return client

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def tls_info(self) -> TLSInfo | None:
        return self.transport.tls_info

    @property
    def tls_active(self) -> bool:
        return self.transport.tls_info is not None

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.capabilities

    @property
    def sasl_mechanisms(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in self.capabilities.get("SASL", ()))

    # --- low level ----------------------------------------------------------------

    def _send(self, data: bytes, *, log_as: bytes | None = None) -> None:
        self.transport.send(data, log_as=log_as)

    def send_command(self, name: str, *args: str, log_as: bytes | None = None) -> None:
        """Send one command (its reply is read with ``read_status``)."""
        self._send(self.session.send_command(name, *args), log_as=log_as)

    def send_commands(self, commands: Sequence[tuple[str, ...]]) -> None:
        """Send several commands in one write (pipelining; caller checks it is allowed)."""
        if not commands:
            return
        data = b"".join(self.session.send_command(*cmd) for cmd in commands)
        self._send(data)

    def next_event(self) -> Event:
        """The next session event, reading from the transport as needed."""
        while True:
            event = self.session.next_event()
            if not isinstance(event, NeedData):
                if self.transport.transcript is not None and isinstance(event, Line):
                    self.transport.transcript.record("S", event.line + b"\r\n")
                return event
            try:
                self.session.receive_data(self.transport.read_burst())
            except MailtoolError as exc:
                # A lost connection or a timeout names the command it interrupted.
                if exc.step is None:
                    exc.step = self.session.awaiting
                raise

    def read_status(self, step: str) -> Reply:
        """Read the status line of the oldest pending command."""
        event = self.next_event()
        if not isinstance(event, Status | Greeting):
            raise ProtocolError(f"expected a status line, got {type(event).__name__}", step=step)
        if self.transport.transcript is not None:
            prefix = b"+OK" if event.reply.is_positive else b"-ERR"
            text = event.reply.one_line()[len(event.reply.status) :]
            self.transport.transcript.record("S", prefix + text.encode("utf-8") + b"\r\n")
        return event.reply

    def command(
        self,
        name: str,
        *args: str,
        what: str = "refused",
        log_as: bytes | None = None,
        default: ExitCode | None = None,
    ) -> Reply:
        """Send a single-line command and return its positive reply (raise on -ERR)."""
        step = " ".join((name, *args)) if log_as is None else name
        self.send_command(name, *args, log_as=log_as)
        reply = self.read_status(step)
        if not reply.is_positive:
            raise reply_error(step, reply, what, default=default)
        return reply

    def _listing(self, name: str, *args: str, what: str = "refused") -> list[bytes]:
        step = " ".join((name, *args))
        self.send_command(name, *args)
        reply = self.read_status(step)
        if not reply.is_positive:
            raise reply_error(step, reply, what)
        return self._read_lines(step)

    def _read_lines(self, step: str) -> list[bytes]:
        lines: list[bytes] = []
        transcript = self.transport.transcript
        while True:
            bulk = self.session.take_lines()  # a whole buffer of lines at once
            if bulk:
                if transcript is not None:
                    for line in bulk:
                        transcript.record("S", line + b"\r\n")
                lines += bulk
                if len(lines) > MAX_MESSAGES:
                    raise ProtocolError(
                        f"{step} listing longer than {MAX_MESSAGES} lines", step=step
                    )
            event = self.next_event()
            if isinstance(event, End):
                return lines
            if not isinstance(event, Line):
                raise ProtocolError(f"unexpected {type(event).__name__}", step=step)
            lines.append(event.line)
            if len(lines) > MAX_MESSAGES:
                raise ProtocolError(f"{step} listing longer than {MAX_MESSAGES} lines", step=step)

    # --- greeting, CAPA, STLS -----------------------------------------------------

    def read_greeting(self) -> Reply:
        event = self.next_event()
        if not isinstance(event, Greeting):
            raise ProtocolError("no greeting", step="greeting")
        if self.transport.transcript is not None:
            self.transport.transcript.record("S", event.reply.one_line().encode() + b"\r\n")
        self.greeting = event.reply
        if not event.reply.is_positive:
            raise reply_error("greeting", event.reply, f"{self.host} refused the session")
        self.apop_timestamp = event.timestamp
        return event.reply

    def capa(self) -> dict[str, tuple[str, ...]]:
        """Ask CAPA (RFC 2449); a server without it gives an empty dict, not an error."""
        self.send_command("CAPA")
        reply = self.read_status("CAPA")
        if not reply.is_positive:
            self.capabilities = {}
            self.capa_supported = False
            return self.capabilities
        self.capabilities = parse_capa(self._read_lines("CAPA"))
        self.capa_supported = True
        return self.capabilities

    def stls(self, settings: TLSSettings) -> TLSInfo:
        """STLS (RFC 2595 section 4): handshake, drop pre-TLS bytes, forget and re-ask CAPA.

        Raises:
            TLSError: the server refused STLS or the handshake/certificate check failed.
        """
        self.send_command("STLS")
        reply = self.read_status("STLS")
        if not reply.is_positive:
            raise TLSError("TLS refused", step="STLS", reply=reply)
        # Anything already received was sent in cleartext: never read it as TLS data.
        self.discarded_before_tls = self.session.discard_buffer()
        if self.discarded_before_tls and self.transport.transcript is not None:
            self.transport.transcript.note(
                f"discarded {self.discarded_before_tls} bytes received before the TLS handshake"
            )
        info = self.transport.starttls(settings)
        self.discarded_before_tls += getattr(self.transport, "discarded_before_tls", 0)
        self.capabilities = {}
        self.capa()
        return info

    # --- login --------------------------------------------------------------------

    def login(
        self,
        creds: sasl.Credentials,
        *,
        method: str | None = None,
        before_secret: Callable[[bool], None] | None = None,
    ) -> str:
        """Log in; return the method used (``"USER"``, ``"APOP"`` or a SASL name).

        Args:
            method: force ``USER``, ``APOP`` or a SASL mechanism; else the first of: a SASL
                mechanism offered in CAPA and usable with ``creds``; APOP when the greeting
                has a timestamp and there is no TLS; USER/PASS.
            before_secret: called with ``tls_active`` right before any credential is sent;
                it raises to refuse (``endpoint.check_plaintext_auth``).

        Raises:
            AuthError: refused (exit 77), or nothing usable offered.
            TempFailError: [IN-USE], [LOGIN-DELAY], [SYS/TEMP] (exit 75).
        """
        wanted = method.upper() if method else None
        if wanted in ("USER", "PASS"):
            self.user_pass(creds, before_secret=before_secret)
            return "USER"
        if wanted == "APOP":
            self.apop(creds, before_secret=before_secret)
            return "APOP"
        if wanted:
            return self.auth(creds, mechanism=wanted, before_secret=before_secret)
        if self.sasl_mechanisms:
            try:
                sasl.choose(self.sasl_mechanisms, creds, tls_active=self.tls_active)
            except AuthError:
                pass
            else:
                return self.auth(creds, before_secret=before_secret)
        if self.apop_timestamp and not self.tls_active and creds.password is not None:
            self.apop(creds, before_secret=before_secret)
            return "APOP"
        self.user_pass(creds, before_secret=before_secret)
        return "USER"

    def user_pass(
        self, creds: sasl.Credentials, *, before_secret: Callable[[bool], None] | None = None
    ) -> None:
        """USER and PASS (RFC 1939 section 7); the password is redacted in transcripts."""
        if creds.password is None:
            raise AuthError("no password for USER/PASS login", step="PASS")
        if before_secret is not None:
            before_secret(self.tls_active)
        self.command("USER", creds.user, what="user refused", default=ExitCode.NOPERM)
        self.command(
            "PASS",
            creds.password,
            what="login refused",
            log_as=b"PASS <redacted>\r\n",
            default=ExitCode.NOPERM,
        )
        self.authenticated = True

    def apop(
        self, creds: sasl.Credentials, *, before_secret: Callable[[bool], None] | None = None
    ) -> None:
        """APOP (RFC 1939 section 7): MD5 of the greeting timestamp and the password."""
        if not self.apop_timestamp:
            raise AuthError("server greeting has no APOP timestamp", step="APOP")
        if creds.password is None:
            raise AuthError("no password for APOP", step="APOP")
        if before_secret is not None:
            before_secret(self.tls_active)
        digest = apop_digest(self.apop_timestamp, creds.password)
        self.command(
            "APOP",
            creds.user,
            digest,
            what="login refused",
            log_as=f"APOP {creds.user} <digest redacted>\r\n".encode(),
            default=ExitCode.NOPERM,
        )
        self.authenticated = True

    def auth(
        self,
        creds: sasl.Credentials,
        *,
        mechanism: str | None = None,
        before_secret: Callable[[bool], None] | None = None,
    ) -> str:
        """AUTH (RFC 5034) with the shared SASL mechanisms; SASL-IR when the mechanism has
        an initial response (RFC 5034 section 4 allows it on the command line).
        Returns the mechanism name."""
        mech_cls = sasl.choose(self.sasl_mechanisms, creds, wanted=mechanism,
                               tls_active=self.tls_active)
        mech = mech_cls(creds, host=self.host, port=self.transport.peer[1])
        if before_secret is not None:
            before_secret(self.tls_active)
        step = f"AUTH {mech.name}"
        initial = mech.initial()
        redacted = sasl.redacted(mech.name)
        if initial is not None:
            arg = sasl.encode(initial).decode("ascii") or "="
            self.send_command(
                "AUTH", mech.name, arg, log_as=f"AUTH {mech.name} ".encode() + redacted + b"\r\n"
            )
        else:
            self.send_command("AUTH", mech.name)
        for _ in range(MAX_AUTH_STEPS):
            event = self.next_event()
            if isinstance(event, Challenge):
                if self.transport.transcript is not None:
                    self.transport.transcript.record("S", b"+ " + event.data + b"\r\n")
                response = mech.respond(sasl.decode(event.data))
                self._send(
                    self.session.send_auth_response(sasl.encode(response)),
                    log_as=redacted + b"\r\n",
                )
                continue
            if not isinstance(event, Status):
                raise ProtocolError(f"unexpected {type(event).__name__}", step=step)
            if self.transport.transcript is not None:
                self.transport.transcript.record("S", event.reply.one_line().encode() + b"\r\n")
            if not event.reply.is_positive:
                raise reply_error(step, event.reply, "login refused", default=ExitCode.NOPERM)
            self.authenticated = True
            return mech.name
        raise ProtocolError(f"more than {MAX_AUTH_STEPS} AUTH round trips", step=step)

    # --- transaction state --------------------------------------------------------

    def stat(self) -> tuple[int, int]:
        """STAT -> (message count, total octets)."""
        return parse_stat(self.command("STAT"))

    def list(self, msgno: int | None = None) -> dict[int, int]:
        """LIST -> {msgno: octets} (one entry when ``msgno`` is given)."""
        if msgno is not None:
            reply = self.command("LIST", str(msgno))
            num, size = parse_scan_line(reply.text.encode("utf-8", "replace"))
            return {num: size}
        return parse_list(self._listing("LIST"))

    def uidl(self, msgno: int | None = None) -> dict[int, str]:
        """UIDL -> {msgno: unique-id}, checked (RFC 1939 section 7).

        Raises:
            UnavailableError: the server does not implement UIDL (-ERR).
        """
        if msgno is not None:
            reply = self.command("UIDL", str(msgno))
            num, uid = parse_uidl_line(reply.text.encode("utf-8", "replace"))
            return {num: uid}
        return parse_uidl(self._listing("UIDL", what="not supported"))

    def uidl_or_none(self) -> dict[int, str] | None:
        """UIDL of every message, or None when the server answers a plain -ERR (no UIDL).

        A -ERR carrying a response code that says "try later" ([SYS/TEMP], [IN-USE]...)
        raises like any other error.
        """
        try:
            return self.uidl()
        except MailtoolError as exc:
            if _uidl_unsupported(exc):
                return None
            raise

    def list_each(self, msgnos: Sequence[int]) -> dict[int, int | None]:
        """``LIST n`` for each message (pipelined when allowed): {msgno: octets}.

        The value is None where the server answered a plain -ERR ("no such message"); a
        transient -ERR raises. Cheaper than a whole LIST when a few of many are wanted.
        """
        sizes: dict[int, int | None] = {}
        window = PIPELINE_WINDOW if self.pipelining else 1
        for start in range(0, len(msgnos), window):
            part = msgnos[start : start + window]
            self.send_commands([("LIST", str(n)) for n in part])
            for num in part:
                step = f"LIST {num}"
                reply = self.read_status(step)
                if not reply.is_positive:
                    if reply.is_transient:
                        raise reply_error(step, reply)
                    sizes[num] = None
                    continue
                got, size = parse_scan_line(reply.text.encode("utf-8", "replace"))
                if got != num:
                    raise ProtocolError(f"LIST {num} answered for message {got}", step=step)
                sizes[num] = size
        return sizes

    def list_and_uidl(self) -> tuple[dict[int, int], dict[int, str] | None]:
        """LIST and UIDL, sent in one write when the server allows PIPELINING.

        Returns ``(sizes, uids)``; ``uids`` is None when the server answers UIDL with a
        plain -ERR (no UIDL support). A -ERR carrying a response code that says "try
        later" ([SYS/TEMP], [IN-USE]...) raises like any other error.
        """
        if not self.pipelining:
            sizes = self.list()
            try:
                return sizes, self.uidl()
            except MailtoolError as exc:
                if _uidl_unsupported(exc):
                    return sizes, None
                raise
        self.send_commands([("LIST",), ("UIDL",)])
        reply = self.read_status("LIST")
        if not reply.is_positive:
            raise reply_error("LIST", reply)
        sizes = parse_list(self._read_lines("LIST"))
        reply = self.read_status("UIDL")
        if not reply.is_positive:
            error = reply_error("UIDL", reply, "not supported")
            if _uidl_unsupported(error):
                return sizes, None
            raise error
        return sizes, parse_uidl(self._read_lines("UIDL"))

    def retr(self, msgno: int, *, max_bytes: int | None = None) -> Iterator[bytes]:
        """RETR: yield the message, unstuffed, in chunks (CRLF line ends as sent)."""
        self.send_command("RETR", str(msgno))
        yield from self.read_body(f"RETR {msgno}", max_bytes=max_bytes)

    def top(self, msgno: int, lines: int = 0, *, max_bytes: int | None = None) -> Iterator[bytes]:
        """TOP: yield the header and the first ``lines`` body lines, in chunks."""
        self.send_command("TOP", str(msgno), str(lines))
        yield from self.read_body(f"TOP {msgno} {lines}", max_bytes=max_bytes)

    def read_body(self, step: str, *, max_bytes: int | None = None) -> Iterator[bytes]:
        """Read the status and body of the oldest pending RETR/TOP, yielding chunks.

        Raises:
            MailtoolError: -ERR (exit code by response code).
            ProtocolError: the body exceeds ``max_bytes``.
        """
        reply = self.read_status(step)
        if not reply.is_positive:
            raise reply_error(step, reply)
        total = 0
        while True:
            event = self.next_event()
            if isinstance(event, End):
                if self.transport.transcript is not None:
                    self.transport.transcript.note(f"{step}: {total} bytes of message data")
                return
            if not isinstance(event, Data):
                raise ProtocolError(f"unexpected {type(event).__name__}", step=step)
            total += len(event.data)
            if max_bytes is not None and total > max_bytes:
                raise ProtocolError(
                    f"message larger than the {max_bytes} bytes announced", step=step
                )
            yield event.data

    def retr_many(
        self,
        msgnos: Iterable[int],
        *,
        top_lines: int | None = None,
        max_bytes: Callable[[int], int | None] | None = None,
    ) -> Iterator[tuple[int, Iterator[bytes]]]:
        """RETR (or TOP) each message, pipelined when the server allows it.

        Yields ``(msgno, chunks)``; ``chunks`` must be consumed fully before asking for the
        next pair. A -ERR for one message raises from its ``chunks``.
        """
        numbers = list(msgnos)
        window = PIPELINE_WINDOW if self.pipelining else 1
        sent = 0

        def command(num: int) -> tuple[str, ...]:
            if top_lines is None:
                return ("RETR", str(num))
            return ("TOP", str(num), str(top_lines))

        for index, num in enumerate(numbers):
            if sent <= index:
                upto = min(len(numbers), index + window)
                self.send_commands([command(n) for n in numbers[sent:upto]])
                sent = upto
            elif sent < len(numbers) and sent - index < window // 2:
                # Top the window up while the server streams the current message.
                upto = min(len(numbers), index + window)
                self.send_commands([command(n) for n in numbers[sent:upto]])
                sent = upto
            step = " ".join(command(num))
            limit = max_bytes(num) if max_bytes is not None else None
            yield num, self.read_body(step, max_bytes=limit)

    def dele(self, msgno: int) -> Reply:
        """DELE (the deletion happens only at a successful QUIT, RFC 1939 section 6)."""
        return self.command("DELE", str(msgno))

    def dele_many(self, msgnos: Sequence[int]) -> dict[int, Reply]:
        """DELE each message (pipelined when allowed); return every reply (-ERR included)."""
        replies: dict[int, Reply] = {}
        window = PIPELINE_WINDOW if self.pipelining else 1
        for start in range(0, len(msgnos), window):
            part = msgnos[start : start + window]
            self.send_commands([("DELE", str(n)) for n in part])
            for num in part:
                replies[num] = self.read_status(f"DELE {num}")
        return replies

    def rset(self) -> Reply:
        """RSET: unmark every message marked for deletion."""
        return self.command("RSET")

    def noop(self) -> Reply:
        return self.command("NOOP")

    def quit(self) -> Reply:
        """QUIT: commit deletions (UPDATE state) and close.

        Raises:
            MailtoolError: -ERR (some deletions may not have happened, RFC 1939 section 6).
        """
        try:
            reply = self.command("QUIT", what="deletions not committed")
        finally:
            self.close()
        return reply

    def close(self) -> None:
        """Close without QUIT: the server deletes nothing (RFC 1939 section 6)."""
        self.transport.close()

    def __enter__(self) -> POP3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
