"""IMAP client: drives an ``IMAPSession`` over a ``Transport``.

API (everything a caller needs; names are stable, additions welcome)::

    from mailtool.protocol.imap.client import IMAPClient

    client = mailtool.imapconn.connect_endpoint(endpoint, ...)      # TLS + login, ready
    # or by hand:
    client = IMAPClient.connect(host, port, tls_mode=TLSMode.IMPLICIT, tls=TLSSettings())
    client.authenticate(creds)            # SASL (SASL-IR) or LOGIN; never under LOGINDISABLED
    client.enable("CONDSTORE", "QRESYNC") # -> set of what the server enabled (only offered)
    client.capabilities                   # frozenset of upper-case words; client.has("MOVE")

    client.list_mailboxes("", "*", special_use=True, status=("MESSAGES", "UNSEEN"))
        -> list[Mailbox]  (entry: ListEntry, name: str, status: dict | None)
    client.status("INBOX", ("MESSAGES", "UIDNEXT")) -> dict[str, int]
    client.status_many(["a", "b"], items)           -> dict[name, dict]  (pipelined)
    info = client.select("INBOX", readonly=True, condstore=True,
                         qresync=(uidvalidity, modseq, known_uids or None))
        -> SelectInfo(exists, uidvalidity, uidnext, highestmodseq, nomodseq, flags,
                      permanentflags, readonly, vanished: list[UIDSet], fetches: list)
    client.examine(name, ...)                       (select readonly)
    client.uid_search("ALL") or client.uid_search(["FROM", "bob", Raw("UNSEEN")])
        -> list[int] (ESEARCH used when offered)
    client.uid_fetch(uids, ["UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"],
                     sink=factory, on_fetch=callback, changedsince=None, vanished=False,
                     on_vanished=None) -> list[FetchData] (empty when on_fetch is given)
    client.uid_fetch_many(uid_sets, items, window=4, ...)  several UID FETCH in flight
    client.uid_store(uids, "+FLAGS.SILENT", ["\\Seen"], unchangedsince=None)
    client.uid_expunge(uids); client.expunge(); client.uid_move(uids, dest)
    client.append(mailbox, data_or_LiteralData, flags=(), date=None) -> (uidvalidity, uid)|None
    client.noop(); client.idle(seconds, on_response); client.compress()
    client.id({"name": "mailtool"}); client.namespace(); client.logout(); client.close()

Body streaming. For every message body literal in a FETCH response (``BODY[...]``,
``BINARY[...]``, ``RFC822``), ``sink(info: BodyInfo)`` is called *before* the first byte with
what is known from the text before the literal (sequence number, item, size, and UID/FLAGS/
RFC822.SIZE/INTERNALDATE/MODSEQ when the server sent them first, which Dovecot does), and
must return an object with ``write(bytes)``; each chunk (at most ``wire.CHUNK`` bytes) is
written to it, then its ``done()`` is called if it has one. When the connection fails
mid-body, ``abort()`` is called if it has one: a body is complete only once ``on_fetch``
receives the ``FetchData``, whose body item is then ``StreamedLiteral(size, sink)``.
Without a ``sink``, bodies are collected in memory up to ``max_memory_body`` bytes each and
returned as ``bytes``.

Errors: a NO/BAD becomes the ``MailtoolError`` subclass that its response code maps to via
``replies.exit_code_for`` (RFC 5530 codes: AUTHENTICATIONFAILED -> 77, UNAVAILABLE -> 75,
NONEXISTENT -> 69, ...), with the step (the command) and the server's reply. A grammar
violation or a bound exceeded is an ``IMAPParseError`` (76); a lost connection is a
``ConnectionLostError`` (75) unless the server said BYE, whose text is then reported.

Extension points: new commands are small methods built on ``self.run(parts, ...)`` /
``self.submit`` + ``self.wait``; ``self.session.command(name, *args)`` renders arguments.

Layout: ``core.py`` (IMAPCore: submission, the event loop, body sinks, shared types),
``mailboxes.py`` (LIST, STATUS, SELECT...), ``messages.py`` (SEARCH, FETCH, STORE, EXPUNGE,
MOVE, APPEND, NOOP, IDLE), this module (connecting, TLS, authentication, capabilities,
ENABLE/ID/NAMESPACE, COMPRESS, LOGOUT). ``IMAPClient`` is the one class to use.
"""

from __future__ import annotations

from mailtool.errors import (
    AuthError,
    MailtoolError,
    ProtocolError,
    TempFailError,
    TLSError,
)
from mailtool.exitcodes import ExitCode
from mailtool.protocol import sasl
from mailtool.protocol.imap.core import (
    IDLE_MAX,
    MAX_MEMORY_BODY,
    SIZE_MARGIN,
    BodyInfo,
    BodySink,
    IMAPCore,
    SelectInfo,
    SinkFactory,
    _quoted,
    error_for,
)
from mailtool.protocol.imap.mailboxes import Mailbox, MailboxCommands
from mailtool.protocol.imap.messages import MessageCommands
from mailtool.protocol.imap.session import (
    CommandParts,
    Raw,
    ResponseReceived,
)
from mailtool.protocol.imap.types import (
    StatusResponse,
    Untagged,
)
from mailtool.protocol.tls import TLSMode, TLSSettings, must_upgrade
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import DEFAULT_TIMEOUT, Transport, connect_for_mode

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "IDLE_MAX",
    "MAX_MEMORY_BODY",
    "SIZE_MARGIN",
    "BodyInfo",
    "BodySink",
    "IMAPClient",
    "IMAPCore",
    "Mailbox",
    "SelectInfo",
    "SinkFactory",
    "error_for",
]


class IMAPClient(MailboxCommands, MessageCommands):
    """One IMAP connection. See the module doc for the API."""

    # --- connecting -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        tls_mode: TLSMode = TLSMode.IMPLICIT,
        tls: TLSSettings | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transcript: Transcript | None = None,
        transport: Transport | None = None,
        **kwargs: Any,
    ) -> IMAPClient:
        """Connect, read the greeting, and secure the connection as ``tls_mode`` says.

        ``transport``: a connection to ``host`` made already (implicit TLS included when
        ``tls_mode`` is IMPLICIT), e.g. by ``Transport.connect(..., while_waiting=...)``.

        Raises:
            TLSError: TLS required but STARTTLS not offered, the handshake failed, or a
                PREAUTH greeting arrived in cleartext (fetchmail CVE-2021-39272 class).
            TempFailError: the greeting was BYE (server busy, too many connections).
        """
        settings = tls or TLSSettings()
        if transport is None:
            transport = connect_for_mode(host, port, tls_mode, settings, timeout=timeout,
                                         transcript=transcript)
        client = cls(transport, **kwargs)
        try:
            client._read_greeting()
            preauth = client.greeting is not None and client.greeting.status == "PREAUTH"
            if preauth and tls_mode is TLSMode.STARTTLS:
                assert client.greeting is not None
                raise TLSError(
                    "server greeted with PREAUTH on a cleartext connection; "
                    "refusing to continue without TLS",
                    step="STARTTLS",
                    reply=client.greeting.reply(),
                )
            # A PREAUTH session can no longer upgrade (RFC 9051 App. E): opportunistic
            # mode stays in cleartext then, required mode has refused above.
            if not preauth and must_upgrade(tls_mode, client.has("STARTTLS"), host=host,
                                            command="STARTTLS", implicit_port=993):
                client.starttls(settings)
        except BaseException:
            transport.close()
            raise
        return client

    def _read_greeting(self) -> None:
        while self.greeting is None:
            event = self._next_event()
            if isinstance(event, ResponseReceived) and isinstance(event.response, StatusResponse):
                self.greeting = event.response
                self._observe(event.response)
            else:
                raise ProtocolError("server did not start with a greeting", step="greeting")
        greeting = self.greeting
        if greeting.status == "BYE":
            raise TempFailError(
                "server refused the connection", step="greeting", reply=greeting.reply()
            )
        if greeting.status not in ("OK", "PREAUTH"):
            raise ProtocolError("unexpected greeting", step="greeting", reply=greeting.reply())
        self.authenticated = greeting.status == "PREAUTH"
        if not self.capabilities:
            self.capability()
    def capability(self) -> frozenset[str]:
        command = self.simple("CAPABILITY")
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "CAPABILITY":
                self._set_capabilities(response.value)
        return self.capabilities

    def starttls(self, settings: TLSSettings) -> None:
        """Upgrade with STARTTLS; forget and re-read capabilities afterwards."""
        if not self.has("STARTTLS"):
            raise TLSError(
                "server does not offer STARTTLS; refusing to continue in cleartext",
                step="STARTTLS",
                hint="use --tls implicit (port 993), or --tls none if you really mean it",
            )
        self.simple("STARTTLS")
        if self.session.literal_remaining or self.session.in_flight:
            raise ProtocolError("data after STARTTLS before the handshake", step="STARTTLS")
        self.transport.starttls(settings)
        self.capabilities = frozenset()
        self.alerts = []
        self._trust_untagged = True
        self.capability()

    def login(self, user: str, password: str) -> None:
        """LOGIN (RFC 9051 section 6.2.3); refused under LOGINDISABLED."""
        if self.has("LOGINDISABLED"):
            raise AuthError(
                "server disables LOGIN on this connection (LOGINDISABLED)",
                step="LOGIN",
                hint="use TLS (--tls implicit or starttls)",
            )
        parts = self.session.command("LOGIN", user, password)
        self._log_as = f"{parts.command.tag} LOGIN {user} <password redacted>\r\n".encode()
        self._finish_auth(parts, "LOGIN")

    def _finish_auth(self, parts: CommandParts, step: str) -> None:
        try:
            command = self.submit(parts)
        finally:
            self._log_as = None
        result = self.wait(command)
        if result.status != "OK":
            err = error_for(result, step, "authentication failed")
            if err.exit_code not in (ExitCode.TEMPFAIL, ExitCode.NOPERM):
                err = AuthError(err.message, step=step, reply=err.reply)
            raise err
        self.authenticated = True
        if not (result.code is not None and result.code.name == "CAPABILITY"):
            self.capability()

    def authenticate(self, creds: sasl.Credentials, *, wanted: str | None = None) -> None:
        """Log in with the best SASL mechanism offered (or ``wanted``), else LOGIN."""
        offered = [c[5:] for c in self.capabilities if c.startswith("AUTH=")]
        mech_cls: type[sasl.Mechanism] | None = None
        if wanted and wanted.upper() not in sasl.MECHANISMS:
            raise AuthError(f"unsupported authentication mechanism {wanted}", step="AUTHENTICATE")
        try:
            mech_cls = sasl.choose(offered, creds, wanted=wanted, tls_active=self.tls_active)
        except AuthError:
            if wanted or creds.password is None:
                raise
        if mech_cls is None:
            self.login(creds.user, creds.password or "")
            return
        host, port = self.transport.host, self.transport.peer[1]
        mech = mech_cls(creds, host=host, port=port)
        step = f"AUTHENTICATE {mech.name}"
        initial = mech.initial()
        redacted = sasl.redacted(mech.name)
        if initial is not None and self.has("SASL-IR"):
            ir = sasl.encode(initial) or b"="
            parts = self.session.command("AUTHENTICATE", Raw(mech.name), Raw(ir.decode()))
            self._log_as = f"{parts.command.tag} AUTHENTICATE {mech.name} ".encode() + redacted + b"\r\n"
            initial = None
        else:
            parts = self.session.command("AUTHENTICATE", Raw(mech.name))
        try:
            command = self.submit(parts)
        finally:
            self._log_as = None
        while command.result is None:
            self._continuation = None
            while self._continuation is None and command.result is None:
                self._pump()
            if command.result is not None:
                break
            cont, self._continuation = self._continuation, None
            assert cont is not None
            if initial is not None and not cont.data.strip():
                response, initial = initial, None
            else:
                initial = None
                try:
                    response = mech.respond(sasl.decode(cont.data))
                except MailtoolError:
                    self.transport.send(b"*\r\n")
                    raise
            self.transport.send(
                self.session.continuation_line(sasl.encode(response)), log_as=redacted + b"\r\n"
            )
        result = command.result
        self.last_result = result
        if result.status != "OK":
            err = error_for(result, step, "authentication failed")
            if err.exit_code not in (ExitCode.TEMPFAIL, ExitCode.NOPERM):
                err = AuthError(err.message, step=step, reply=err.reply)
            raise err
        self.authenticated = True
        if not (result.code is not None and result.code.name == "CAPABILITY"):
            self.capability()

    def enable(self, *extensions: str) -> set[str]:
        """ENABLE what the server offers among ``extensions`` (RFC 5161); return what it
        enabled. Must precede SELECT."""
        wanted = [e.upper() for e in extensions if self.has(e) or e.upper() == "IMAP4REV2"]
        wanted = [e for e in wanted if self.has(e)]
        if not wanted or not self.has("ENABLE"):
            return set()
        command = self.simple("ENABLE", *[Raw(e) for e in wanted])
        now: set[str] = set()
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "ENABLED":
                now.update(response.value)
        self.enabled |= now
        return now

    def id(self, fields: dict[str, str] | None = None) -> dict[str, str | None]:
        """ID (RFC 2971): send ours, return the server's."""
        if not self.has("ID"):
            return {}
        arg: Any = Raw("NIL")
        if fields:
            arg = [x for kv in fields.items() for x in (Raw(_quoted(kv[0])), Raw(_quoted(kv[1])))]
        command = self.simple("ID", arg)
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "ID":
                return dict(response.value)
        return {}

    def namespace(self) -> tuple[Any, ...]:
        """NAMESPACE (RFC 2342): (personal, other users, shared), each ((prefix, delim), ...)."""
        if not self.has("NAMESPACE") and not self.has("IMAP4REV2"):
            return ((("", None),), (), ())
        command = self.simple("NAMESPACE")
        for response in command.untagged:
            if isinstance(response, Untagged) and response.kind == "NAMESPACE":
                return tuple(response.value)
        return ((), (), ())

    def compress(self) -> bool:
        """COMPRESS=DEFLATE (RFC 4978) when offered; True when compression is on."""
        if not self.has("COMPRESS=DEFLATE") or self.session.in_flight:
            return False
        self.line_mode = True  # nothing after the OK may be read as uncompressed
        try:
            command = self.run(self.session.command("COMPRESS", Raw("DEFLATE")), check=False)
            if command.result is None or command.result.status != "OK":
                return False  # e.g. NO [COMPRESSIONACTIVE]
            self.transport.start_deflate()
        finally:
            self.line_mode = False
        return True

    def logout(self) -> None:
        """LOGOUT and close; errors on the way out are ignored (the work is done)."""
        try:
            if not self.transport.closed:
                self.simple("LOGOUT")
        except MailtoolError:
            pass
        finally:
            self.close()

    def __enter__(self) -> IMAPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is None:
            self.logout()
        else:
            self.close()
