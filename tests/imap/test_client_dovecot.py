"""The IMAP client against the harness's real Dovecot: TLS both ways, login, LIST, STATUS,
SELECT, SEARCH, streamed FETCH, STORE, APPEND, MOVE, EXPUNGE, ENABLE, IDLE, COMPRESS."""

from __future__ import annotations

import hashlib

import pytest

from mailtool.errors import AuthError, UnavailableError
from mailtool.protocol import sasl
from mailtool.protocol.imap.client import BodyInfo, IMAPClient
from mailtool.protocol.imap.types import StreamedLiteral
from mailtool.protocol.tls import TLSMode, TLSSettings
from mailtool.protocol.transcript import Transcript
from tests.imap.conftest import message, open_client
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User

pytestmark = pytest.mark.timeout(60)


def test_imaps_login_select_search_fetch(dovecot: Dovecot, test_ca: TestCA,
                                         mail_user: User) -> None:
    dovecot.deliver_many(mail_user, [message(i) for i in range(1, 6)])
    transcript = Transcript()
    client = open_client(dovecot, test_ca, mail_user, transcript=transcript)
    try:
        assert client.tls_active and client.authenticated
        assert client.has("IMAP4REV1")
        info = client.examine("INBOX", condstore=True)
        assert info.exists == 5 and info.uidvalidity and info.uidnext == 6
        assert info.highestmodseq is not None and info.readonly
        uids = client.uid_search("ALL")
        assert uids == [1, 2, 3, 4, 5]
        fetched = client.uid_fetch("1:*", ["UID", "FLAGS", "RFC822.SIZE", "ENVELOPE"])
        assert [f.uid for f in fetched] == uids
        env = fetched[2].envelope
        assert env is not None and env.subject == "message 3"
        assert env.from_[0].email == "alice@example.test" and env.from_[0].name == "Alice"
        assert env.message_id == "<m3@example.test>"
    finally:
        client.logout()
    sent = b"".join(e.data for e in transcript.entries if e.direction == "C")
    assert user_password_absent(sent, mail_user)


def user_password_absent(sent: bytes, user: User) -> bool:
    import base64

    plain = base64.b64encode(f"\0{user.name}\0{user.password}".encode())
    return user.password.encode() not in sent and plain not in sent


def test_starttls_verified_and_capabilities_reread(dovecot: Dovecot, test_ca: TestCA,
                                                   mail_user: User) -> None:
    transcript = Transcript()
    client = open_client(dovecot, test_ca, mail_user, transcript=transcript, starttls=True)
    try:
        assert client.tls_active and client.transport.tls_info is not None
        assert client.transport.tls_info.verified
        assert "LOGINDISABLED" not in client.capabilities
        sent = [e.data for e in transcript.entries if e.direction == "C"]
        # CAPABILITY asked again after the handshake
        starttls_at = next(i for i, d in enumerate(sent) if b"STARTTLS" in d)
        assert any(b"CAPABILITY" in d for d in sent[starttls_at + 1:])
    finally:
        client.logout()


def test_cleartext_login_disabled_is_refused(dovecot: Dovecot, mail_user: User) -> None:
    # The harness's strict address refuses cleartext logins (127.0.0.1 counts as secure).
    client = IMAPClient.connect(dovecot.strict_host, dovecot.imap_port, tls_mode=TLSMode.NONE,
                                timeout=20)
    try:
        assert client.has("LOGINDISABLED")
        with pytest.raises(AuthError, match="LOGINDISABLED"):
            client.login(mail_user.name, mail_user.password)
    finally:
        client.close()


def test_bad_password_is_auth_error(dovecot: Dovecot, test_ca: TestCA, mail_user: User) -> None:
    client = IMAPClient.connect(dovecot.host, dovecot.imaps_port,
                                tls=TLSSettings(ca_file=str(test_ca.ca_file)), timeout=20)
    try:
        with pytest.raises(AuthError) as info:
            client.authenticate(sasl.Credentials(user=mail_user.name, password="wrong"))
        assert info.value.exit_code == 77
        assert "AUTHENTICATIONFAILED" in str(info.value)
    finally:
        client.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_sasl_mechanisms(dovecot: Dovecot, test_ca: TestCA, mail_user: User, mech: str) -> None:
    client = IMAPClient.connect(dovecot.host, dovecot.imaps_port,
                                tls=TLSSettings(ca_file=str(test_ca.ca_file)), timeout=20)
    try:
        if not client.has(f"AUTH={mech}"):
            pytest.skip(f"{mech} not offered")
        client.authenticate(sasl.Credentials(user=mail_user.name, password=mail_user.password),
                            wanted=mech)
        assert client.authenticated
    finally:
        client.logout()


def test_streamed_fetch_to_sink(dovecot: Dovecot, test_ca: TestCA, mail_user: User,
                                imap: IMAPClient) -> None:
    big = b"".join(b"line %06d of a big message body\r\n" % i for i in range(40000))
    dovecot.deliver_many(mail_user, [message(1), message(2, body=big)])
    imap.examine("INBOX")

    class Sink:
        def __init__(self, info: BodyInfo) -> None:
            self.info = info
            self.digest = hashlib.sha256()
            self.chunks = 0
            self.finished = False

        def write(self, data: bytes) -> None:
            self.digest.update(data)
            self.chunks += 1

        def done(self) -> None:
            self.finished = True

    sinks: list[Sink] = []

    def factory(info: BodyInfo) -> Sink:
        sinks.append(Sink(info))
        return sinks[-1]

    done = []
    imap.uid_fetch("1:*", ["UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"],
                   sink=factory, on_fetch=done.append)
    assert [f.uid for f in done] == [1, 2]
    assert [s.info.uid for s in sinks] == [1, 2]
    second = done[1].body("")
    assert isinstance(second, StreamedLiteral) and second.sink is sinks[1]
    assert sinks[1].finished and sinks[1].chunks > 1
    assert sinks[1].info.rfc822_size == second.size
    expected = message(2, body=big)
    assert sinks[1].digest.hexdigest() == hashlib.sha256(expected).hexdigest()
    # BODY.PEEK did not set \Seen
    flags = imap.uid_fetch("1:*", ["FLAGS"])
    assert all("\\Seen" not in (f.flags or ()) for f in flags)


def test_list_status_store_move_expunge_append(dovecot: Dovecot, imap: IMAPClient) -> None:
    imap.simple("CREATE", imap.mailbox_arg("Entwürfe"))
    imap.simple("CREATE", imap.mailbox_arg("Archive"))
    result = imap.append("INBOX", message(1), flags=["\\Flagged"])
    assert result is not None and result[1] == 1
    imap.append("INBOX", message(2))
    boxes = imap.list_mailboxes(special_use=True, status=("MESSAGES", "UNSEEN"))
    by_name = {b.name: b for b in boxes}
    assert "Entwürfe" in by_name and by_name["INBOX"].status == {"MESSAGES": 2, "UNSEEN": 2}
    assert imap.status("Entwürfe", ("MESSAGES",)) == {"MESSAGES": 0}
    imap.select("INBOX")
    changed = imap.uid_store([2], "+FLAGS", ["\\Seen"])
    assert changed and "\\Seen" in (changed[0].flags or ())
    assert imap.uid_search("FLAGGED") == [1]
    assert imap.uid_search(["SUBJECT", "message 2", "SEEN"]) == [2]
    imap.uid_move([1], "Archive")
    assert imap.uid_search("ALL") == [2]
    assert imap.status("Archive", ("MESSAGES",)) == {"MESSAGES": 1}
    imap.uid_store([2], "+FLAGS.SILENT", ["\\Deleted"])
    imap.uid_expunge([2])
    assert imap.uid_search("ALL") == []
    with pytest.raises(UnavailableError) as err:
        imap.select("No such folder")
    assert err.value.exit_code == 69


def test_enable_qresync_reports_changes(dovecot: Dovecot, test_ca: TestCA, mail_user: User,
                                        imap: IMAPClient) -> None:
    dovecot.deliver_many(mail_user, [message(i) for i in range(1, 6)])
    enabled = imap.enable("CONDSTORE", "QRESYNC")
    assert "QRESYNC" in enabled
    first = imap.select("INBOX")
    assert first.highestmodseq
    other = open_client(dovecot, test_ca, mail_user)
    try:
        other.select("INBOX")
        other.uid_store([2], "+FLAGS.SILENT", ["\\Flagged"])
        other.uid_store([4], "+FLAGS.SILENT", ["\\Deleted"])
        other.uid_expunge([4])
    finally:
        other.logout()
    imap.unselect()
    again = imap.select("INBOX", qresync=(first.uidvalidity or 0, first.highestmodseq or 0, "1:5"))
    assert [u for s in again.vanished for u in s] == [4]
    assert [f.uid for f in again.fetches] == [2]
    assert again.highestmodseq and again.highestmodseq > first.highestmodseq
    changed = imap.uid_fetch("1:*", ["UID", "FLAGS"], changedsince=first.highestmodseq,
                             vanished=True, on_vanished=lambda v: None)
    assert [f.uid for f in changed] == [2]


def test_idle_sees_new_mail(dovecot: Dovecot, mail_user: User, imap: IMAPClient) -> None:
    imap.select("INBOX")
    imap.noop()
    dovecot.deliver(mail_user, message(1))
    seen = imap.idle(10, lambda r: getattr(r, "kind", "") == "EXISTS")
    assert any(getattr(r, "kind", "") == "EXISTS" for r in seen)
    assert imap.selected is not None and imap.selected.exists == 1


def test_compress_deflate(dovecot: Dovecot, mail_user: User, imap: IMAPClient) -> None:
    assert imap.has("COMPRESS=DEFLATE")
    dovecot.deliver_many(mail_user, [message(i) for i in range(1, 4)])
    assert imap.compress()
    imap.examine("INBOX")
    assert imap.uid_search("ALL") == [1, 2, 3]
    got = imap.uid_fetch("1:*", ["BODY.PEEK[]"])
    assert got[0].body("") == message(1)


def test_id_and_namespace(imap: IMAPClient) -> None:
    server = imap.id({"name": "mailtool"})
    assert isinstance(server, dict)
    personal, _other, _shared = imap.namespace()
    assert personal and personal[0][1] in ("/", ".")
