"""SMTP client: a sans-I/O session (``session``) and the client that drives it (``client``)."""

from mailtool.protocol.smtp.client import (
    ProbeResult,
    SMTPClient,
    Timeouts,
    TransactionResult,
    reply_error,
)
from mailtool.protocol.smtp.session import Capabilities, SMTPSession, SMTPState, parse_ehlo

__all__ = [
    "Capabilities",
    "ProbeResult",
    "SMTPClient",
    "SMTPSession",
    "SMTPState",
    "Timeouts",
    "TransactionResult",
    "parse_ehlo",
    "reply_error",
]
