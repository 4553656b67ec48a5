"""POP3 (RFC 1939, 2449, 2595, 5034): a sans-I/O session and a client over the transport."""

from mailtool.protocol.pop3.client import POP3Client
from mailtool.protocol.pop3.session import POP3Session

__all__ = ["POP3Client", "POP3Session"]
