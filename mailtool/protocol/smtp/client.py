"""``SMTPClient``: drives an ``SMTPSession`` over a ``Transport``.

Theory of operation: ``SMTPClient.open`` connects, reads the greeting, says EHLO (HELO when
the server does not know EHLO), and applies the TLS mode: implicit TLS from the first byte,
STARTTLS required (no cleartext fallback: the stripping attack), opportunistic STARTTLS for
MX delivery on port 25, or none. After STARTTLS the transport drops every byte received
before the handshake and the client asks EHLO again (RFC 3207 section 4.2).

A transaction (``send_message``) sends MAIL FROM and every RCPT TO in one write when the
server offers PIPELINING (RFC 2920), then the content: BDAT chunks when CHUNKING is offered
(RFC 3030), else DATA with the content dot-stuffed and every line end made CRLF, so the data
never holds a bare CR or LF (SMTP smuggling). Small BDAT messages go out in the same write
as MAIL/RCPT, so a pipelining+chunking server costs one round trip per message.

Timeouts follow RFC 5321 section 4.5.3.2; the reply after the final dot gets at least ten
minutes whatever the global timeout is, because a server may run its filters then.

Refusals come back as replies (``TransactionResult``) for the caller to judge per recipient;
transport failures raise (``TransportError``, ``TransportTimeoutError``); a failed greeting,
EHLO, STARTTLS or AUTH raises a ``MailtoolError`` carrying the reply and the exit code the
reply maps to.

The client is also meant for probes (``diagnose``): ``mail_rcpt_probe`` asks MAIL/RCPT and
resets without sending any data; ``tls_info`` and ``capabilities`` expose what was learnt.
"""

from __future__ import annotations

import itertools
import os

from mailtool.errors import (
    AuthError,
    ConnectionLostError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    TLSError,
    UnavailableError,
    UnknownHostError,
    UnknownUserError,
)
from mailtool.exitcodes import ExitCode
from mailtool.protocol.replies import exit_code_for
from mailtool.protocol.smtp.session import (
    Capabilities,
    ReplyCode,
    SMTPSession,
    SMTPState,
    format_path,
)
from mailtool.protocol.tls import TLSMode, TLSSettings, must_upgrade
from mailtool.protocol.transport import Transport, connect_for_mode
from mailtool.protocol.wire import CHUNK, MAX_LINE, CRLFNormalizer, DotStuffer, dot_stuff
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail imports neither typing nor the modules
# below (sasl only when AUTH happens, transcript only with -v).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from mailtool.protocol import sasl
    from mailtool.protocol.replies import Reply
    from mailtool.protocol.smtp.session import ReplyEvent
    from mailtool.protocol.tls import TLSInfo
    from mailtool.protocol.transcript import Transcript

#: A reply line longer than this is hostile: RFC 5321 allows 512 octets per reply line.
MAX_REPLY_LINE = min(MAX_LINE, 16 * 1024)


@record(frozen=True)
class Timeouts:
    """Per-step timeouts in seconds (RFC 5321 section 4.5.3.2 minimums by default)."""

    connect: float = 60.0
    greeting: float = 300.0
    command: float = 300.0  # EHLO, STARTTLS, AUTH, RSET, QUIT
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    final_dot: float = 600.0

    @classmethod
    def scaled(cls, limit: float) -> Timeouts:
        """The RFC values, each capped at ``limit`` (the global ``--timeout``) except the wait
        after the final dot, which keeps its ten minutes (or ``limit`` when that is longer)."""
        base = cls()
        return cls(
            connect=min(base.connect, limit),
            greeting=min(base.greeting, limit),
            command=min(base.command, limit),
            mail=min(base.mail, limit),
            rcpt=min(base.rcpt, limit),
            data_init=min(base.data_init, limit),
            data_block=min(base.data_block, limit),
            final_dot=max(base.final_dot, limit),
        )


_ERROR_CLASS: dict[ExitCode, type[MailtoolError]] = {
    ExitCode.TEMPFAIL: TempFailError,
    ExitCode.NOUSER: UnknownUserError,
    ExitCode.NOHOST: UnknownHostError,
    ExitCode.NOPERM: AuthError,
}


def reply_error(step: str, reply: Reply, message: str = "refused") -> MailtoolError:
    """The ``MailtoolError`` for a refusal, its class and exit code chosen by the reply."""
    code = exit_code_for(reply)
    cls = _ERROR_CLASS.get(code, UnavailableError)
    return cls(message, step=step, reply=reply, exit_code=code)


@record
class TransactionResult:
    """What the server said to one mail transaction.

    ``data`` is the reply after the final dot (or the last BDAT); None when the content was
    never sent (MAIL refused, or no recipient accepted).
    """

    mail: Reply
    rcpt: list[tuple[str, Reply]] = field(default_factory=list)
    data: Reply | None = None
    data_step: str = "DATA"
    final_pending: bool = False  # the final reply comes later (send_message(on_final=))

    @property
    def accepted(self) -> list[str]:
        return [addr for addr, reply in self.rcpt if reply.is_positive]

    @property
    def delivered(self) -> bool:
        return self.data is not None and self.data.is_positive


@record(frozen=True)
class ProbeResult:
    """MAIL/RCPT answers to a probe that sent no data (then RSET)."""

    mail: Reply
    rcpt: list[tuple[str, Reply]]


def default_local_name() -> str:
    """Our name for EHLO: the host name (cheap; no DNS lookup)."""
    name = os.uname().nodename or "localhost"
    return name


class SMTPClient:
    """An SMTP client connection. Use ``SMTPClient.open(...)``; close with ``quit()``."""

    def __init__(
        self,
        transport: Transport,
        *,
        port: int = 0,
        timeouts: Timeouts | None = None,
        local_name: str | None = None,
        log_body: bool = False,
    ) -> None:
        self.transport = transport
        self.host = transport.host
        self.port = port
        self.timeouts = timeouts or Timeouts()
        self.local_name = local_name or default_local_name()
        self.log_body = log_body
        self.session = SMTPSession()
        self.greeting: Reply | None = None
        self.helo_fallback = False
        # Pipelining across messages (RFC 2920 section 3.1: the content of one message may
        # start a group, followed by the next MAIL/RCPT/DATA): the last write of a
        # transaction held back to go out with the next commands, and who waits for its
        # final reply.
        self._held = b""
        self._held_total = 0  # its size, for the transcript's summary
        self._final: Callable[[Reply | None, MailtoolError | None], None] | None = None

    # --- opening --------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        tls_mode: TLSMode = TLSMode.STARTTLS,
        tls: TLSSettings | None = None,
        timeouts: Timeouts | None = None,
        transcript: Transcript | None = None,
        addresses: list[str] | None = None,
        local_name: str | None = None,
        log_body: bool = False,
    ) -> SMTPClient:
        """Connect, read the greeting, EHLO, and set up TLS as ``tls_mode`` says.

        Raises:
            ConnectFailedError, TransportTimeoutError, ConnectionLostError: network trouble.
            TLSError: TLS required but not offered, or the handshake/certificate failed.
            MailtoolError: greeting or EHLO refused (exit code by the reply).
        """
        timeouts = timeouts or Timeouts()
        settings = tls or TLSSettings()
        transport = connect_for_mode(
            host,
            port,
            tls_mode,
            settings,
            timeout=timeouts.greeting,
            connect_timeout=timeouts.connect,
            transcript=transcript,
            addresses=addresses,
        )
        client = cls(
            transport, port=port, timeouts=timeouts, local_name=local_name, log_body=log_body
        )
        try:
            client._read_greeting()
            client.ehlo()
            if must_upgrade(tls_mode, client.capabilities.starttls, host=host,
                            command="STARTTLS", implicit_port=465):
                client.starttls(settings, required=tls_mode is TLSMode.STARTTLS)
        except BaseException:
            client.close()
            raise
        return client

    @property
    def capabilities(self) -> Capabilities:
        return self.session.capabilities

    @property
    def tls_info(self) -> TLSInfo | None:
        return self.transport.tls_info

    @property
    def tls_active(self) -> bool:
        return self.transport.tls_info is not None

    @property
    def closed(self) -> bool:
        return self.transport.closed or self.session.state is SMTPState.CLOSED

    # --- low level ------------------------------------------------------------------

    def _send(self, data: bytes, *, log_as: bytes | None = None) -> None:
        if self._held:
            held, self._held = self._held, b""
            if self.transport.transcript is not None:  # no log to build without one
                held_log = held if self.log_body else (
                    f"<message data: {self._held_total} octets>\r\n.\r\n".encode())
                log_as = held_log + (data if log_as is None else log_as)
            data = held + data
        try:
            self.transport.send(data, log_as=log_as)
        except BaseException:
            self.session.closed()
            raise

    @property
    def final_pending(self) -> bool:
        """A transaction's final reply is still to be read (``send_message(on_final=)``)."""
        return self._final is not None

    def finish(self) -> None:
        """Send what is held back and read the pending final reply, if any."""
        if self._held:
            self._send(b"")
        if self._final is not None:
            self._resolve_final()

    def _resolve_final(self) -> None:
        done, self._final = self._final, None
        assert done is not None
        try:
            reply = self._read(self.timeouts.final_dot).reply
        except MailtoolError as exc:
            done(None, exc)
            raise
        done(reply, None)

    def _read(self, timeout: float) -> ReplyEvent:
        """Read lines until one reply is complete; return it with its command."""
        if self._final is not None:
            self._resolve_final()  # it comes first: the replies arrive in order
        transport = self.transport
        transport.set_timeout(timeout)  # cheap: applied only if the read has to wait
        receive, readline = self.session.receive_line, transport.readline
        try:
            while True:
                event = receive(readline(MAX_REPLY_LINE))
                if event is not None:
                    return event
        except BaseException as exc:
            # A lost connection, a timeout or a malformed reply names the step it broke.
            label = self.session.awaiting
            if isinstance(exc, MailtoolError) and exc.step is None and label is not None:
                exc.step = "end of DATA" if label == "DOT" else label
            self.session.closed()
            raise

    def command(self, verb: str, argument: str | None = None, *, timeout: float | None = None,
                log_as: bytes | None = None) -> Reply:
        """Send one command and return its reply."""
        data = self.session.command(verb, argument)
        self._send(data, log_as=log_as)
        return self._read(self.timeouts.command if timeout is None else timeout).reply

    def _read_greeting(self) -> Reply:
        reply = self._read(self.timeouts.greeting).reply
        self.greeting = reply
        if reply.code != ReplyCode.SERVICE_READY:
            raise reply_error("greeting", reply, f"{self.host} refused the connection")
        return reply

    def ehlo(self) -> Capabilities:
        """EHLO; HELO when the server does not know EHLO (500/502 and friends)."""
        reply = self.command("EHLO", self.local_name)
        if reply.is_positive:
            return self.capabilities
        if reply.code in (
            ReplyCode.COMMAND_UNRECOGNIZED, ReplyCode.SYNTAX_ERROR, ReplyCode.NOT_IMPLEMENTED,
            504, 550,
        ):
            helo = self.command("HELO", self.local_name)
            if helo.is_positive:
                self.helo_fallback = True
                return self.capabilities
            raise reply_error("HELO", helo)
        raise reply_error("EHLO", reply)

    def starttls(self, settings: TLSSettings, *, required: bool = True) -> TLSInfo | None:
        """STARTTLS, the handshake, and EHLO again.

        Returns None when the server refused STARTTLS and TLS is not ``required``
        (opportunistic: the session carries on in cleartext).
        """
        reply = self.command("STARTTLS")
        if reply.code != ReplyCode.SERVICE_READY:
            if not required and reply.code != ReplyCode.SERVICE_UNAVAILABLE:
                return None
            if reply.is_transient:
                raise reply_error("STARTTLS", reply, "TLS refused")
            raise TLSError("TLS refused", step="STARTTLS", reply=reply)
        info = self.transport.starttls(settings)
        self.ehlo()
        return info

    def authenticate(
        self,
        creds: sasl.Credentials,
        *,
        mechanism: str | None = None,
        before_secret: Callable[[bool], None] | None = None,
    ) -> Reply:
        """SMTP AUTH (RFC 4954) with the shared SASL mechanisms; secrets never logged.

        Args:
            mechanism: force one mechanism (else the strongest offered and usable).
            before_secret: called with ``tls_active`` right before any credential is sent;
                it raises to refuse (``endpoint.check_plaintext_auth``).

        Raises:
            AuthError: not offered, refused (535 and friends, exit 77).
            TempFailError: 454 and other 4xx.
        """
        from mailtool.protocol import sasl  # here: only a login needs it
        offered = self.capabilities.auth_mechanisms
        if not offered:
            raise AuthError(f"{self.host} does not offer AUTH", step="AUTH",
                            hint="the server may offer AUTH only after STARTTLS")
        mech_cls = sasl.choose(offered, creds, wanted=mechanism, tls_active=self.tls_active)
        mech = mech_cls(creds, host=self.host, port=self.port)
        if before_secret is not None:
            before_secret(self.tls_active)
        hidden = sasl.redacted(mech.name)
        initial = mech.initial()
        if initial is not None:
            arg = mech.name + " " + (sasl.encode(initial).decode("ascii") or "=")
            data = self.session.command("AUTH", arg)
            self._send(data, log_as=b"AUTH " + mech.name.encode() + b" " + hidden + b"\r\n")
        else:
            self._send(self.session.command("AUTH", mech.name))
        step = f"AUTH {mech.name}"
        for _ in range(10):  # no mechanism of ours needs more round trips
            reply = self._read(self.timeouts.command).reply
            if reply.code == ReplyCode.AUTH_SUCCESS:
                return reply
            if reply.code != ReplyCode.AUTH_CONTINUE:
                if reply.is_transient:
                    raise reply_error(step, reply, "authentication failed")
                raise AuthError("authentication failed", step=step, reply=reply,
                                hint="check the user name and password (or app password)")
            challenge = sasl.decode((reply.lines[0] if reply.lines else "").encode())
            response = sasl.encode(mech.respond(challenge))
            self.session.expect_reply(step)
            self._send(response + b"\r\n", log_as=hidden + b"\r\n")
        raise ProtocolError("AUTH exchange does not end", step=step)

    # --- transactions -----------------------------------------------------------------

    def mail_rcpt(
        self,
        sender: str,
        recipients: Sequence[str],
        *,
        mail_params: Sequence[str] = (),
        rcpt_params: Sequence[str] = (),
        then: Sequence[tuple[str, str | None, str]] = (),
        then_data: bytes = b"",
    ) -> TransactionResult:
        """MAIL FROM and RCPT TO for every recipient, in one write when pipelining.

        With pipelining, ``then`` holds more commands ``(verb, argument, label)`` sent in the
        same write (DATA, or BDAT followed by ``then_data``, its chunk); the caller reads
        their replies. Without pipelining ``then`` must be empty.
        """
        mail_arg = "FROM:" + format_path(sender)
        if mail_params:
            mail_arg += " " + " ".join(mail_params)
        rcpt_suffix = " " + " ".join(rcpt_params) if rcpt_params else ""
        if "PIPELINING" in self.session.capabilities.extensions:
            command = self.session.command
            parts = [command("MAIL", mail_arg)]
            for rcpt in recipients:
                parts.append(command("RCPT", "TO:" + format_path(rcpt) + rcpt_suffix,
                                     label="RCPT " + rcpt))
            for verb, arg, label in then:
                parts.append(command(verb, arg, label=label))
            self._send_mixed(parts, then_data)
            timeouts = self.timeouts
            result = TransactionResult(self._read(timeouts.mail).reply)
            replies = result.rcpt
            for rcpt in recipients:
                replies.append((rcpt, self._read(timeouts.rcpt).reply))
            return result
        result = TransactionResult(mail=self.command("MAIL", mail_arg, timeout=self.timeouts.mail))
        if not result.mail.is_positive:
            return result
        for rcpt in recipients:
            reply = self.command("RCPT", "TO:" + format_path(rcpt) + rcpt_suffix,
                                 timeout=self.timeouts.rcpt)
            result.rcpt.append((rcpt, reply))
            if reply.code == ReplyCode.SERVICE_UNAVAILABLE:
                break
        return result

    def _send_mixed(self, commands: list[bytes], trailer: bytes) -> None:
        """Commands (logged) and a trailer whose message part is summarised in the log."""
        data = b"".join(commands)
        if not trailer:
            self._send(data)
            return
        if self.log_body:
            self._send(data + trailer)
        else:
            self._send(data + trailer, log_as=data + f"<{len(trailer)} octets>\r\n".encode())

    def send_message(
        self,
        sender: str,
        recipients: Sequence[str],
        content: Iterable[bytes],
        *,
        mail_params: Sequence[str] = (),
        rcpt_params: Sequence[str] = (),
        size_hint: int | None = None,
        use_chunking: bool = True,
        on_final: Callable[[TransactionResult, MailtoolError | None], None] | None = None,
    ) -> TransactionResult:
        """One whole transaction: MAIL, RCPT..., then DATA or BDAT with ``content``.

        ``content`` is the message in chunks (any line ends; made CRLF here). When every
        recipient is refused, no content is sent and the transaction is reset.

        With ``on_final`` (and PIPELINING, DATA), the end of the content is held back and
        goes out with the next command (the next message's MAIL, or QUIT, or ``finish()``),
        and the final reply is read then: ``on_final(result, None)`` gets the result with
        ``data`` set, or ``on_final(result, error)`` when the connection failed first. The
        returned result then has ``final_pending`` set. Without it, nothing changes.

        Raises:
            TransportError, TransportTimeoutError: the connection failed (mid-data too).
        """
        chunking = use_chunking and self.capabilities.chunking
        if chunking:
            return self._send_bdat(sender, recipients, content, mail_params, rcpt_params,
                                   size_hint)
        return self._send_data(sender, recipients, content, mail_params, rcpt_params,
                               on_final if self.capabilities.pipelining else None)

    def _send_data(self, sender: str, recipients: Sequence[str], content: Iterable[bytes],
                   mail_params: Sequence[str], rcpt_params: Sequence[str],
                   on_final: Callable[[TransactionResult, MailtoolError | None], None]
                   | None = None) -> TransactionResult:
        pipelining = self.capabilities.pipelining
        result = self.mail_rcpt(
            sender, recipients, mail_params=mail_params, rcpt_params=rcpt_params,
            then=[("DATA", None, "DATA")] if pipelining else (),
        )
        if self.session.state is SMTPState.CLOSED:
            return result  # a 421 ended the session (RFC 5321 3.8): its reply says why
        if pipelining:
            data_reply = self._read(self.timeouts.data_init).reply
        elif result.mail.is_positive and result.accepted:
            data_reply = self.command("DATA", timeout=self.timeouts.data_init)
        else:
            self.rset(quiet=True)
            return result
        if data_reply.code != ReplyCode.START_INPUT:
            if data_reply.is_positive:
                # Not 354: no content was sent, so this "success" would lose the message.
                raise ProtocolError("server answered DATA without asking for the content",
                                    step="DATA", reply=data_reply)
            result.data = data_reply if result.accepted and result.mail.is_positive else None
            result.data_step = "DATA"
            return result
        if not result.accepted or not result.mail.is_positive:
            # RFC 2920 section 3.1: the server took DATA although no RCPT succeeded; send
            # an empty message terminator so the session stays in step, and drop it.
            self.session.expect_reply("DOT")
            self._send(b".\r\n")
            self._read(self.timeouts.final_dot)
            return result
        self.session.expect_reply("DOT")
        result.data_step = "end of DATA"
        if on_final is not None:
            self._stream_dotted(content, hold=True)

            def done(reply: Reply | None, error: MailtoolError | None) -> None:
                result.final_pending = False
                result.data = reply
                on_final(result, error)

            result.final_pending = True
            self._final = done
            return result
        self._stream_dotted(content)
        result.data = self._read(self.timeouts.final_dot).reply
        return result

    def _stream_dotted(self, content: Iterable[bytes], *, hold: bool = False) -> None:
        self.transport.set_timeout(self.timeouts.data_block)
        chunks = iter(content)
        first = next(chunks, b"")
        second = next(chunks, None)
        if second is None:  # a message in one chunk (most): stuffed in one go
            data = dot_stuff(first)
            total = len(data)
        else:
            stuffer = DotStuffer()
            pending = bytearray(stuffer.feed(first))
            total = 0
            for chunk in itertools.chain((second,), chunks):
                pending += stuffer.feed(chunk)
                if len(pending) >= CHUNK:
                    total += len(pending)
                    self._send_body(bytes(pending))
                    pending.clear()
            pending += stuffer.finish()
            total += len(pending)
            data = bytes(pending)
        if hold:
            self._held = data
            self._held_total = total
            return
        self._send_body(data, final=True, total=total)

    def _send_body(self, data: bytes, *, final: bool = False, total: int = 0) -> None:
        if self.log_body:
            self._send(data)
        elif final:
            self._send(data, log_as=f"<message data: {total} octets>\r\n.\r\n".encode())
        else:
            self._send(data, log_as=b"")

    def _send_bdat(self, sender: str, recipients: Sequence[str], content: Iterable[bytes],
                   mail_params: Sequence[str], rcpt_params: Sequence[str],
                   size_hint: int | None) -> TransactionResult:
        chunks = _normalised_chunks(content)
        first = next(chunks, None)
        second = next(chunks, None) if first is not None else None
        pipelining = self.capabilities.pipelining
        if pipelining and second is None:
            # Small message: everything in one write, one round trip.
            body = first or b""
            result = self.mail_rcpt(sender, recipients, mail_params=mail_params,
                                    rcpt_params=rcpt_params,
                                    then=[("BDAT", f"{len(body)} LAST", "BDAT LAST")],
                                    then_data=body)
            reply = self._read(self.timeouts.final_dot).reply
            result.data_step = "BDAT"
            result.data = reply if result.accepted and result.mail.is_positive else None
            return result
        result = self.mail_rcpt(sender, recipients, mail_params=mail_params,
                                rcpt_params=rcpt_params)
        if not (result.mail.is_positive and result.accepted):
            self.rset(quiet=True)
            return result
        self.transport.set_timeout(self.timeouts.data_block)
        sent = 0
        pending_replies = 0
        current = first
        upcoming = second
        while True:
            body = current or b""
            last = upcoming is None
            verb_arg = f"{len(body)} LAST" if last else str(len(body))
            head = self.session.command("BDAT", verb_arg, label="BDAT LAST" if last else "BDAT")
            sent += len(body)
            log = head + (f"<{len(body)} octets>\r\n".encode() if not self.log_body else body)
            self._send(head + body, log_as=log)
            pending_replies += 1
            if not pipelining:
                answer = self._read(self.timeouts.final_dot if last else self.timeouts.data_block)
                pending_replies -= 1
                if not answer.reply.is_positive or last:
                    result.data = answer.reply
                    result.data_step = "BDAT"
                    if not last:
                        self.rset(quiet=True)
                    return result
            if last:
                break
            current, upcoming = upcoming, next(chunks, None)
        # Pipelined chunks: read one reply per BDAT; the first failure is the answer.
        failure: Reply | None = None
        final: Reply | None = None
        for index in range(pending_replies):
            is_last = index == pending_replies - 1
            event = self._read(self.timeouts.final_dot if is_last else self.timeouts.data_block)
            if not event.reply.is_positive and failure is None:
                failure = event.reply
            final = event.reply
        result.data = failure or final
        result.data_step = "BDAT"
        return result

    def rset(self, *, quiet: bool = False) -> Reply | None:
        """RSET; with ``quiet`` a failure (or lost connection) is ignored."""
        try:
            return self.command("RSET")
        except MailtoolError:
            if quiet:
                return None
            raise

    def mail_rcpt_probe(
        self, sender: str, recipients: Sequence[str], *, mail_params: Sequence[str] = ()
    ) -> ProbeResult:
        """Ask MAIL FROM / RCPT TO without sending data, then RSET (for ``diagnose``)."""
        result = self.mail_rcpt(sender, recipients, mail_params=mail_params)
        if not self.closed:
            self.rset(quiet=True)
        return ProbeResult(mail=result.mail, rcpt=result.rcpt)

    def quit(self) -> None:
        """QUIT politely and close; errors on the way out are not the caller's problem."""
        if not self.closed:
            try:
                self.command("QUIT", timeout=min(self.timeouts.command, 10.0))
            except MailtoolError:
                pass
        self.close()

    def close(self) -> None:
        self.session.closed()
        self.transport.close()
        self._held = b""
        if self._final is not None:
            done, self._final = self._final, None
            done(None, ConnectionLostError("connection closed before the reply to the "
                                           "end of the data", step="end of DATA"))

    def __enter__(self) -> SMTPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()


def _normalised_chunks(content: Iterable[bytes]) -> Iterator[bytes]:
    """The content with CRLF line ends, in chunks of about ``CHUNK`` (BDAT sizes are exact)."""
    norm = CRLFNormalizer()
    pending = bytearray()
    for chunk in content:
        pending += norm.feed(chunk)
        while len(pending) >= CHUNK:
            yield bytes(pending[:CHUNK])
            del pending[:CHUNK]
    pending += norm.finish()
    if pending:
        yield bytes(pending)
