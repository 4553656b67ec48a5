"""connect_endpoint's ``while_connecting`` (run once during the TLS handshake, before any
IMAP byte) and ``while_waiting`` (run once after the login went out and before its answer
was read, while the server checks the password), never again."""

from __future__ import annotations

import pytest

from mailtool.endpoint import ConnectionOptions, resolve_endpoint
from mailtool.imapconn import connect_endpoint
from mailtool.protocol.transcript import Transcript
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User


@pytest.mark.servers
@pytest.mark.timeout(60)
def test_while_waiting_runs_once_during_the_login(dovecot: Dovecot, test_ca: TestCA,
                                                  mail_user: User,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILTOOL_PASSWORD", mail_user.password)
    endpoint = resolve_endpoint("imap", ConnectionOptions(
        host=dovecot.host, port=dovecot.imaps_port, tls="implicit", user=mail_user.name,
        ca_file=str(test_ca.ca_file)), None)
    transcript = Transcript()
    seen: list[list[tuple[str, bytes]]] = []

    def work() -> None:
        seen.append([(e.direction, e.data) for e in transcript.entries if e.direction != "*"])

    connecting: list[int] = []

    def before_the_greeting() -> None:
        # the TLS handshake is under way: nothing read or sent at the IMAP level yet
        connecting.append(len([e for e in transcript.entries if e.direction != "*"]))

    client = connect_endpoint(endpoint, timeout=10, transcript=transcript, while_waiting=work,
                              while_connecting=before_the_greeting)
    try:
        assert client.authenticated and client.tls_active
        client.noop()  # more waits: the work is not run again
        assert len(seen) == 1 and connecting == [0]
        direction, data = seen[0][-1]
        assert direction == "C" and b" AUTHENTICATE " in data  # sent, its answer not yet read
        assert client.transport.on_wait is None
    finally:
        client.logout()
        client.close()
