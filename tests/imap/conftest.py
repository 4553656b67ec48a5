"""Shared helpers for the IMAP tests: a logged-in client on the harness's Dovecot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailtool.protocol import sasl
from mailtool.protocol.imap.client import IMAPClient
from mailtool.protocol.tls import TLSMode, TLSSettings
from mailtool.protocol.transcript import Transcript
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User


def message(n: int, *, subject: str | None = None, sender: str = "alice@example.test",
            body: bytes | None = None) -> bytes:
    subject = subject or f"message {n}"
    text = body if body is not None else f"body of message {n}\r\n".encode()
    return (
        f"From: Alice <{sender}>\r\nTo: bob@example.test\r\nSubject: {subject}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{n % 60:02d}:00 +0000\r\nMessage-ID: <m{n}@example.test>\r\n"
        "\r\n"
    ).encode() + text


def open_client(dovecot: Dovecot, test_ca: TestCA, user: User, *,
                transcript: Transcript | None = None, starttls: bool = False) -> IMAPClient:
    settings = TLSSettings(ca_file=str(test_ca.ca_file))
    if starttls:
        client = IMAPClient.connect(dovecot.host, dovecot.imap_port, tls_mode=TLSMode.STARTTLS,
                                    tls=settings, timeout=20, transcript=transcript)
    else:
        client = IMAPClient.connect(dovecot.host, dovecot.imaps_port, tls_mode=TLSMode.IMPLICIT,
                                    tls=settings, timeout=20, transcript=transcript)
    client.authenticate(sasl.Credentials(user=user.name, password=user.password))
    return client


@pytest.fixture
def imap(dovecot: Dovecot, test_ca: TestCA, mail_user: User) -> Iterator[IMAPClient]:
    client = open_client(dovecot, test_ca, mail_user)
    yield client
    client.logout()
