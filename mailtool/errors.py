"""The one error tree. Every failure a user can meet is a ``MailtoolError``.

Each class carries its sysexits code; an instance carries the step it happened at and the
server reply when there is one. The CLI prints ``mailtool: <step>: <message>: <reply>`` and
exits with ``exit_code``. Anything that is not a ``MailtoolError`` is a bug (exit 70).

This module is a leaf: it imports nothing from mailtool but the exit codes.
"""

from __future__ import annotations

from mailtool.exitcodes import ExitCode

# Not ``typing.TYPE_CHECKING``: this module is on the --version path, typing is not.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class ReplyLike(Protocol):
        """What an error needs of a server reply (see ``mailtool.protocol.replies``)."""

        def one_line(self) -> str: ...


class MailtoolError(Exception):
    """Base class: an expected failure with an exit code, a step and maybe a reply."""

    exit_code: ExitCode = ExitCode.SOFTWARE

    def __init__(
        self,
        message: str,
        *,
        step: str | None = None,
        reply: ReplyLike | None = None,
        hint: str | None = None,
        exit_code: ExitCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.reply = reply
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def one_line(self) -> str:
        """``<step>: <message>: <reply>``, the line the CLI prints after ``mailtool:``."""
        parts = []
        if self.step:
            parts.append(self.step)
        parts.append(self.message)
        if self.reply is not None:
            parts.append(self.reply.one_line())
        return ": ".join(parts)

    def __str__(self) -> str:
        return self.one_line()


class UsageError(MailtoolError):
    """The command line is wrong."""

    exit_code = ExitCode.USAGE


class DataError(MailtoolError):
    """Input data we refuse: a header with CR/LF, a malformed address, an unparsable message."""

    exit_code = ExitCode.DATAERR


class NoInputError(MailtoolError):
    """An input file is missing or unreadable."""

    exit_code = ExitCode.NOINPUT


class UnknownUserError(MailtoolError):
    """The server says the mailbox does not exist (5.1.x)."""

    exit_code = ExitCode.NOUSER


class UnknownHostError(MailtoolError):
    """Host or domain unknown, no MX, or a null MX."""

    exit_code = ExitCode.NOHOST


class UnavailableError(MailtoolError):
    """A permanent failure: retrying will not help."""

    exit_code = ExitCode.UNAVAILABLE


class CantCreateError(MailtoolError):
    """An output file or directory cannot be written."""

    exit_code = ExitCode.CANTCREAT


class LocalIOError(MailtoolError):
    """A local input/output error (disk full, fsync failed, ...)."""

    exit_code = ExitCode.IOERR


class TempFailError(MailtoolError):
    """A temporary failure: try again later."""

    exit_code = ExitCode.TEMPFAIL


class ProtocolError(MailtoolError):
    """The server broke the protocol: unparsable or oversized replies, wrong sequence."""

    exit_code = ExitCode.PROTOCOL


class AuthError(MailtoolError):
    """Authentication or permission refused."""

    exit_code = ExitCode.NOPERM


class ConfigError(MailtoolError):
    """The configuration is broken or incomplete."""

    exit_code = ExitCode.CONFIG


class InternalError(MailtoolError):
    """A bug in mailtool."""

    exit_code = ExitCode.SOFTWARE


# Transport errors also inherit the builtin exceptions, so generic code can catch them.


class TransportError(TempFailError, ConnectionError):
    """The connection could not be made or was lost."""


class ConnectFailedError(TransportError):
    """No address of the host accepted a connection."""


class ConnectionLostError(TransportError):
    """The server closed or reset the connection."""


class TransportTimeoutError(TempFailError, TimeoutError):
    """The server did not answer in time."""


class TLSError(UnavailableError):
    """The TLS handshake or certificate check failed where TLS was required."""


class LineTooLongError(ProtocolError):
    """The server sent a line (or literal) beyond our bound."""
