"""Transport and SASL against the real Dovecot of the harness: TLS verified with the test CA
(and refused without it), STARTTLS, and PLAIN / LOGIN / CRAM-MD5 logins with the secrets
kept out of the transcript.

The SASL exchange here is a minimal POP3 AUTH loop written for the test: the point is the
shared ``sasl`` mechanisms and the transport, proven against a server we did not write.
"""

from __future__ import annotations

import base64

import pytest

from mailtool.errors import TLSError
from mailtool.protocol import sasl
from mailtool.protocol.tls import TLSSettings
from mailtool.protocol.transcript import Transcript
from mailtool.protocol.transport import Transport
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User

pytestmark = pytest.mark.timeout(60)


def test_imaps_verified_with_test_ca(dovecot: Dovecot, test_ca: TestCA) -> None:
    t = Transport.connect(dovecot.host, dovecot.imaps_port, timeout=10,
                          tls=TLSSettings(ca_file=str(test_ca.ca_file)))
    try:
        assert t.readline().startswith(b"* OK")
        assert t.tls_info is not None and t.tls_info.verified
        assert t.tls_info.version in ("TLSv1.2", "TLSv1.3")
    finally:
        t.close()


def test_imaps_refused_without_the_ca(dovecot: Dovecot) -> None:
    with pytest.raises(TLSError, match="not trusted"):
        Transport.connect(dovecot.host, dovecot.imaps_port, timeout=10, tls=TLSSettings())


def test_imaps_wrong_name_refused(dovecot: Dovecot, test_ca: TestCA) -> None:
    with pytest.raises(TLSError):
        Transport.connect(dovecot.host, dovecot.imaps_port, timeout=10,
                          tls=TLSSettings(ca_file=str(test_ca.ca_file),
                                          server_hostname="wrong.example"))


def test_imap_starttls_then_capabilities(dovecot: Dovecot, test_ca: TestCA) -> None:
    t = Transport.connect(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert t.readline().startswith(b"* OK")
        t.send(b"a1 STARTTLS\r\n")
        assert t.readline().startswith(b"a1 OK")
        info = t.starttls(TLSSettings(ca_file=str(test_ca.ca_file)))
        assert info.verified
        t.send(b"a2 CAPABILITY\r\n")
        caps = t.readline()
        assert caps.startswith(b"* CAPABILITY") and b"AUTH=PLAIN" in caps
        assert t.readline().startswith(b"a2 OK")
    finally:
        t.close()


def _pop3_auth(t: Transport, mech: sasl.Mechanism) -> bytes:
    """Run AUTH over POP3 (RFC 5034); return the final status line."""
    first = mech.initial()
    if first is not None:
        t.send(b"AUTH " + mech.name.encode() + b" " + sasl.encode(first) + b"\r\n",
               log_as=b"AUTH " + mech.name.encode() + b" " + sasl.redacted(mech.name) + b"\r\n")
    else:
        t.send(b"AUTH " + mech.name.encode() + b"\r\n")
    while True:
        line = t.readline()
        if not line.startswith(b"+ ") and line.rstrip() != b"+":
            return line
        challenge = sasl.decode(line[2:]) if len(line) > 3 else b""
        t.send(sasl.encode(mech.respond(challenge)) + b"\r\n", log_as=sasl.redacted(mech.name) + b"\r\n")


@pytest.mark.parametrize("mech_cls", [sasl.Plain, sasl.Login, sasl.CramMD5])
def test_sasl_against_dovecot(
    dovecot: Dovecot, test_ca: TestCA, mail_user: User, mech_cls: type[sasl.Mechanism]
) -> None:
    transcript = Transcript()
    t = Transport.connect(dovecot.host, dovecot.pop3s_port, timeout=10,
                          tls=TLSSettings(ca_file=str(test_ca.ca_file)), transcript=transcript)
    try:
        assert t.readline().startswith(b"+OK")
        creds = sasl.Credentials(user=mail_user.name, password=mail_user.password)
        assert _pop3_auth(t, mech_cls(creds)).startswith(b"+OK")
        wrong = sasl.Credentials(user=mail_user.name, password="not-" + mail_user.password)
    finally:
        t.close()
    t = Transport.connect(dovecot.host, dovecot.pop3s_port, timeout=10,
                          tls=TLSSettings(ca_file=str(test_ca.ca_file)), transcript=transcript)
    try:
        t.readline()
        assert _pop3_auth(t, mech_cls(wrong)).startswith(b"-ERR")
    finally:
        t.close()
    everything = b"".join(e.data for e in transcript.entries)
    secret = mail_user.password.encode()
    assert secret not in everything
    for form in (
        base64.b64encode(b"\0" + mail_user.name.encode() + b"\0" + secret),
        base64.b64encode(secret),
    ):
        assert form not in everything
