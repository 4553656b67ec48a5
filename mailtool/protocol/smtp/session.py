"""SMTP session state and grammar, without I/O (RFC 5321, with RFC 1869/2920/3030/3207/4954).

Theory of operation: the client asks the session for the bytes of each command
(``command(...)``); the session checks the argument (no CR, LF or other control character:
command injection), records which command is waiting for a reply, and returns the wire
bytes. Reply lines go in with ``receive_line``; when a reply is complete the session pairs it
with the *oldest* command still waiting (replies come back in order, RFC 2920 section 3.1)
and returns a ``ReplyEvent``. So a pipelined batch cannot pair a reply with the wrong
command, and a reply nobody asked for is a protocol error instead of being silently used.

The state (``SMTPState``) follows the transaction: GREETING -> READY (after EHLO/HELO) ->
MAIL -> RCPT -> DATA/BDAT -> READY, and CLOSED after QUIT or a 421. ``parse_ehlo`` turns an
EHLO reply into ``Capabilities`` (pure).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable

from mailtool.errors import ProtocolError
from mailtool.protocol.replies import Reply, SMTPReplyReader
from mailtool.protocol.wire import guard_argument
from mailtool.record import field, record


class ReplyCode:
    """The SMTP reply codes the client acts on, named by meaning (RFC 5321 section 4.2.3).

    Plain ``int`` constants, not an ``IntEnum``: creating the enum class cost every
    ``mailtool-sendmail`` start a third of a millisecond, and nothing needs more than the
    names (a ``Reply`` keeps its code as a plain ``int``).
    """

    SERVICE_READY = 220
    CLOSING = 221
    AUTH_SUCCESS = 235
    OK = 250
    START_INPUT = 354
    AUTH_CONTINUE = 334
    SERVICE_UNAVAILABLE = 421
    COMMAND_UNRECOGNIZED = 500
    SYNTAX_ERROR = 501
    NOT_IMPLEMENTED = 502


class SMTPState(enum.Enum):
    """Where the session is in the dialogue."""

    GREETING = "greeting"  # connected, waiting for the 220
    CONNECTED = "connected"  # greeted, no EHLO/HELO yet (or capabilities forgotten by TLS)
    READY = "ready"  # EHLO/HELO done, no transaction open
    MAIL = "mail"  # MAIL FROM sent
    RCPT = "rcpt"  # at least one RCPT TO sent
    DATA = "data"  # DATA accepted (354), message content being sent
    BDAT = "bdat"  # BDAT chunks being sent
    CLOSED = "closed"  # QUIT, 421, or the connection is gone


@record(frozen=True)
class Capabilities:
    """What an EHLO reply advertises (RFC 5321 section 4.1.1.1; keywords upper-cased)."""

    domain: str = ""
    extensions: dict[str, str] = field(default_factory=dict)
    esmtp: bool = True  # False after a HELO fallback: no extensions at all

    def has(self, keyword: str) -> bool:
        return keyword.upper() in self.extensions

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.extensions

    @property
    def chunking(self) -> bool:
        return "CHUNKING" in self.extensions

    @property
    def eightbitmime(self) -> bool:
        return "8BITMIME" in self.extensions

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.extensions

    @property
    def dsn(self) -> bool:
        return "DSN" in self.extensions

    @property
    def enhanced_status_codes(self) -> bool:
        return "ENHANCEDSTATUSCODES" in self.extensions

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return tuple(self.extensions.get("AUTH", "").upper().split())

    @property
    def size_limit(self) -> int | None:
        """The server's SIZE limit in octets; None when SIZE is not offered or unlimited (0)."""
        if "SIZE" not in self.extensions:
            return None
        value = self.extensions["SIZE"].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
        return None

    def as_dict(self) -> dict[str, str]:
        return dict(self.extensions)


def parse_ehlo(reply: Reply) -> Capabilities:
    """EHLO reply -> ``Capabilities``. The first line is the domain; each further line is
    ``KEYWORD [params]``. Also accepts the old ``AUTH=PLAIN LOGIN`` form some servers send.
    """
    lines = list(reply.lines)
    domain = lines[0].split(" ", 1)[0] if lines else ""
    ext: dict[str, str] = {}
    for line in lines[1:]:
        line = line.strip()
        if not line:
            continue
        keyword, _, params = line.partition(" ")
        if keyword.upper().startswith("AUTH="):
            # Legacy form: merge into AUTH without overriding a proper AUTH line.
            legacy = keyword[5:] + (" " + params if params else "")
            if "AUTH" not in ext:
                ext["AUTH"] = legacy
            continue
        keyword = keyword.upper()
        if not keyword or not all(c.isalnum() or c == "-" for c in keyword):
            continue  # not an ehlo-keyword: ignore rather than guess
        ext[keyword] = params.strip()
    return Capabilities(domain=domain, extensions=ext)


@record(frozen=True, slots=True)
class ReplyEvent:
    """A complete reply, paired with the command it answers (``"greeting"`` for the 220)."""

    command: str
    reply: Reply


def format_path(address: str) -> str:
    """``<address>`` for MAIL FROM / RCPT TO (the null reverse-path is ``<>``)."""
    guard_argument(address, "address")
    if "<" in address or ">" in address or " " in address:
        raise ProtocolError(f"address {address!r} contains '<', '>' or a space")
    return f"<{address}>"


def encode_command(verb: str, argument: str | None = None) -> bytes:
    """One command line with the argument checked (no control characters: injection).

    Arguments are UTF-8: only meaningful when the server offers SMTPUTF8 (RFC 6531), which the
    caller checks before it puts a non-ASCII address in a command.
    """
    line = verb if argument is None else f"{verb} {guard_argument(argument, verb + ' argument')}"
    return line.encode("utf-8") + b"\r\n"


class SMTPSession:
    """The state of one SMTP connection and the queue of commands awaiting replies."""

    def __init__(self) -> None:
        self.state = SMTPState.GREETING
        self.capabilities = Capabilities(esmtp=False)
        self._reader = SMTPReplyReader()
        self._pending: deque[str] = deque(["greeting"])

    @property
    def pending(self) -> int:
        """Commands sent whose replies have not arrived yet."""
        return len(self._pending)

    def command(self, verb: str, argument: str | None = None, *, label: str | None = None) -> bytes:
        """Bytes of a command; its reply will be paired with ``label`` (default: the verb).

        Raises:
            ProtocolError: the session is closed.
            DataError: the argument holds a control character.
        """
        if self.state is SMTPState.CLOSED:
            raise ProtocolError(f"{verb}: the SMTP session is closed")
        data = encode_command(verb, argument)
        self._pending.append(label or verb)
        upper = verb.upper()
        if upper == "MAIL":
            self.state = SMTPState.MAIL
        elif upper == "RCPT":
            self.state = SMTPState.RCPT
        elif upper == "BDAT":
            self.state = SMTPState.BDAT
        elif upper == "RSET":
            self.state = SMTPState.READY
        return data

    @property
    def awaiting(self) -> str | None:
        """Label of the command whose reply is read next (None when none is pending)."""
        return self._pending[0] if self._pending else None

    def expect_reply(self, label: str) -> None:
        """Wait for a reply that no command asks for (the one after the final dot)."""
        self._pending.append(label)

    def receive_line(self, line: bytes) -> ReplyEvent | None:
        """Feed one reply line; return the event when the reply is complete.

        Raises:
            ProtocolError: malformed reply, or a reply while no command is waiting.
        """
        reply = self._reader.feed(line)
        if reply is None:
            return None
        if not self._pending:
            if reply.code == ReplyCode.SERVICE_UNAVAILABLE:
                # A server may send 421 at any moment before closing (RFC 5321 3.8).
                self.state = SMTPState.CLOSED
                return ReplyEvent("unsolicited", reply)
            raise ProtocolError(f"server sent a reply nobody asked for: {reply.one_line()}")
        command = self._pending.popleft()
        self._advance(command, reply)
        return ReplyEvent(command, reply)

    def _advance(self, command: str, reply: Reply) -> None:
        if reply.code == ReplyCode.SERVICE_UNAVAILABLE:
            self.state = SMTPState.CLOSED
            self._pending.clear()
            return
        verb = command.partition(" ")[0].upper()
        if verb == "RCPT":
            return  # the most frequent: a RCPT reply changes no state
        ok = reply.is_positive
        if verb == "GREETING":
            self.state = SMTPState.CONNECTED if ok else SMTPState.CLOSED
        elif verb in ("EHLO", "HELO"):
            if ok:
                self.state = SMTPState.READY
                self.capabilities = (
                    parse_ehlo(reply) if verb == "EHLO" else Capabilities(
                        domain=reply.lines[0].split(" ", 1)[0] if reply.lines else "",
                        esmtp=False,
                    )
                )
        elif verb == "STARTTLS":
            if ok:
                # RFC 3207 section 4.2: forget everything learnt before TLS.
                self.state = SMTPState.CONNECTED
                self.capabilities = Capabilities(esmtp=False)
        elif verb == "MAIL":
            if not ok:
                self.state = SMTPState.READY
        elif verb == "DATA":
            if reply.code == ReplyCode.START_INPUT:
                self.state = SMTPState.DATA
            else:
                self.state = SMTPState.READY
        elif verb == "DOT":
            if self.state is SMTPState.DATA:  # not when the next MAIL went out before it
                self.state = SMTPState.READY
        elif verb == "RSET" or (verb == "BDAT" and ("LAST" in command or not ok)):
            self.state = SMTPState.READY
        elif verb == "QUIT":
            self.state = SMTPState.CLOSED

    def closed(self) -> None:
        """The connection is gone: nothing more will come."""
        self.state = SMTPState.CLOSED
        self._pending.clear()


def mail_parameters(
    *,
    size: int | None = None,
    body: str | None = None,
    smtputf8: bool = False,
    ret: str | None = None,
    envid: str | None = None,
) -> list[str]:
    """ESMTP parameters of MAIL FROM (SIZE, BODY=8BITMIME, SMTPUTF8, RET, ENVID)."""
    params: list[str] = []
    if size is not None:
        params.append(f"SIZE={size}")
    if body:
        params.append(f"BODY={body}")
    if smtputf8:
        params.append("SMTPUTF8")
    if ret:
        params.append(f"RET={ret.upper()}")
    if envid:
        params.append(f"ENVID={xtext(envid)}")
    return params


def rcpt_parameters(*, notify: Iterable[str] | None = None, orcpt: str | None = None) -> list[str]:
    """DSN parameters of RCPT TO (RFC 3461: NOTIFY, ORCPT)."""
    params: list[str] = []
    if notify:
        params.append("NOTIFY=" + ",".join(n.upper() for n in notify))
    if orcpt:
        params.append(f"ORCPT=rfc822;{xtext(orcpt)}")
    return params


def xtext(value: str) -> str:
    """RFC 3461 section 4 xtext: '+', '=' and characters outside 33..126 as ``+HH``."""
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)
