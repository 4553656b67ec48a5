"""Smoke tests of the real-server harness, with stdlib clients and verified TLS."""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.servers import (
    MX,
    A,
    DNSMasq,
    Dovecot,
    NullMX,
    Postfix,
    ServerSet,
    TestCA,
    User,
    ports,
)
from tests.servers._process import MissingBinaryError, alive, find_binary, make_servers_dir

pytestmark = [pytest.mark.servers, pytest.mark.timeout(60)]

T = TypeVar("T")
NET_TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], T], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def message(subject: str, to: str = "someone@mail.test") -> bytes:
    return (f"From: sender@example.test\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.test>\r\n\r\nbody of {subject}\r\n").encode()


# -- Dovecot -----------------------------------------------------------------------
def test_imaps_login_with_verified_tls(dovecot: Dovecot, mail_user: User,
                                       test_ca: TestCA) -> None:
    with imaplib.IMAP4_SSL("localhost", dovecot.imaps_port, ssl_context=test_ca.client_context(),
                           timeout=NET_TIMEOUT) as imap:
        assert imap.login(mail_user.name, mail_user.password)[0] == "OK"
        assert imap.select("INBOX") == ("OK", [b"0"])


def test_imap_starttls_then_cram_md5(dovecot: Dovecot, mail_user: User,
                                     test_ca: TestCA) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=NET_TIMEOUT) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(test_ca.client_context())
        assert "AUTH=CRAM-MD5" in imap.capabilities
        typ, _ = imap.login_cram_md5(mail_user.address, mail_user.password)
        assert typ == "OK"


def test_servers_answer_on_ipv6_loopback_too(dovecot: Dovecot, postfix: Postfix,
                                             mail_user: User, test_ca: TestCA) -> None:
    if not ports.ipv6_loopback():
        pytest.skip("this machine has no ::1")
    with imaplib.IMAP4_SSL("::1", dovecot.imaps_port, ssl_context=test_ca.client_context(),
                           timeout=NET_TIMEOUT) as imap:
        assert imap.login(mail_user.name, mail_user.password)[0] == "OK"
    with smtplib.SMTP("::1", postfix.submission_port, timeout=NET_TIMEOUT) as smtp:
        smtp.starttls(context=test_ca.client_context())
        smtp.login(mail_user.name, mail_user.password)


def test_strict_host_refuses_cleartext_login(dovecot: Dovecot, mail_user: User,
                                             test_ca: TestCA) -> None:
    with imaplib.IMAP4(dovecot.strict_host, dovecot.imap_port, timeout=NET_TIMEOUT) as imap:
        assert "LOGINDISABLED" in imap.capabilities
        imap.starttls(test_ca.client_context())
        assert "LOGINDISABLED" not in imap.capabilities
        assert imap.login(mail_user.name, mail_user.password)[0] == "OK"
        assert "COMPRESS=DEFLATE" in imap.capability()[1][0].decode().split()
    pop = poplib.POP3(dovecot.strict_host, dovecot.pop3_port, timeout=NET_TIMEOUT)
    try:
        assert "USER" not in pop.capa()
    finally:
        pop.quit()


def test_imap_wrong_password_is_refused_quickly(dovecot: Dovecot, mail_user: User) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=NET_TIMEOUT) as imap:
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login(mail_user.name, "wrong")
        assert time.monotonic() - started < 3


def test_pop3s_login_and_apop(dovecot: Dovecot, mail_user: User, test_ca: TestCA) -> None:
    dovecot.deliver(mail_user, message("pop-one"))
    pop = poplib.POP3_SSL("localhost", dovecot.pop3s_port, context=test_ca.client_context(),
                          timeout=NET_TIMEOUT)
    try:
        pop.user(mail_user.name)
        assert pop.pass_(mail_user.password).startswith(b"+OK")
        count, _size = pop.stat()
        assert count == 1
        assert b"Subject: pop-one" in b"\r\n".join(pop.retr(1)[1])
    finally:
        pop.quit()
    plain = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=NET_TIMEOUT)
    try:
        assert "STLS" in plain.capa()
        plain.stls(test_ca.client_context())
        assert plain.apop(mail_user.name, mail_user.password).startswith(b"+OK")
    finally:
        plain.quit()


def test_deliver_many_is_fast_and_visible(dovecot: Dovecot, mail_user: User) -> None:
    started = time.monotonic()
    count = dovecot.deliver_many(mail_user, (message(f"bulk-{i}") for i in range(2000)))
    elapsed = time.monotonic() - started
    assert count == 2000
    # Typically about 1 s; the bound only catches a pathological slowdown on a busy machine.
    assert elapsed < 15, f"deliver_many of 2000 took {elapsed:.1f} s"
    dovecot.deliver_many(mail_user, [message("archived")], mailbox="Archive", seen=True)
    dovecot.deliver_lmtp(mail_user, [message("via-lmtp-1"), message("via-lmtp-2")])
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=NET_TIMEOUT) as imap:
        imap.login(mail_user.name, mail_user.password)
        assert imap.select("INBOX", readonly=True) == ("OK", [b"2002"])
        assert imap.select("Archive", readonly=True) == ("OK", [b"1"])
        assert imap.search(None, "SEEN") == ("OK", [b"1"])


def test_user_added_at_runtime_logs_in_at_once(dovecot: Dovecot) -> None:
    for _ in range(5):
        user = dovecot.add_user()
        with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=NET_TIMEOUT) as imap:
            assert imap.login(user.name, user.password)[0] == "OK"
    named = dovecot.add_user(f"carol-{os.getpid()}", "carol-pw")
    assert named.address == f"carol-{os.getpid()}@mail.test"
    with pytest.raises(ValueError):
        dovecot.add_user(named.name)


def test_lmtp_refuses_unknown_user(dovecot: Dovecot) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=NET_TIMEOUT) as lmtp:
        lmtp.ehlo("test.example")
        lmtp.mail("a@example.test")
        code, text = lmtp.rcpt("nobody-here@mail.test")
    assert code == 550 and text.startswith(b"5.1.1")


# -- Postfix -----------------------------------------------------------------------
def test_submission_starttls_auth_delivers_into_maildir(postfix: Postfix, dovecot: Dovecot,
                                                        mail_user: User,
                                                        test_ca: TestCA) -> None:
    sender = dovecot.add_user()
    with smtplib.SMTP(postfix.host, postfix.submission_port, timeout=NET_TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        assert not smtp.has_extn("auth"), "AUTH must not be offered before TLS"
        smtp.starttls(context=test_ca.client_context())
        smtp.ehlo("client.example")
        assert "CRAM-MD5" in smtp.esmtp_features["auth"]
        smtp.login(sender.name, sender.password)
        refused = smtp.sendmail(sender.address, [mail_user.address, "far@example.org"],
                                message("submitted", mail_user.address))
        assert refused == {}
    files = wait_for(lambda: dovecot.messages(mail_user))
    assert b"Subject: submitted" in files[0].read_bytes()
    postfix.wait_queue_empty()


def test_submission_needs_tls_and_auth(postfix: Postfix, mail_user: User,
                                       test_ca: TestCA) -> None:
    with smtplib.SMTP(postfix.host, postfix.submission_port, timeout=NET_TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        code, text = smtp.docmd("MAIL FROM:<a@example.test>")
        assert code == 530 and text.startswith(b"5.7.0")
        smtp.starttls(context=test_ca.client_context())
        smtp.ehlo("client.example")
        smtp.mail("a@example.test")
        code, _ = smtp.rcpt(mail_user.address)
        assert code == 554


def test_smtp_port_refuses_unknown_user_and_relay(postfix: Postfix, mail_user: User,
                                                  test_ca: TestCA) -> None:
    with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=NET_TIMEOUT) as smtp:
        smtp.ehlo("client.example")
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        smtp.starttls(context=test_ca.client_context())
        smtp.ehlo("client.example")
        smtp.mail("a@example.test")
        code, text = smtp.rcpt("no-such-user@mail.test")
        assert code == 550 and text.startswith(b"5.1.1"), text
        code, text = smtp.rcpt("someone@example.org")
        assert code == 554 and text.startswith(b"5.7.1"), text
        code, _ = smtp.rcpt(mail_user.address)
        assert code == 250
        code, _ = smtp.rcpt(f"{mail_user.name}@two.test")
        assert code == 250
        code, _ = smtp.rcpt(f"{mail_user.name}@nullmx.test")
        assert code == 554


def test_user_added_at_runtime_is_a_postfix_recipient(postfix: Postfix,
                                                      dovecot: Dovecot) -> None:
    for _ in range(5):
        user = dovecot.add_user()
        with smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=NET_TIMEOUT) as smtp:
            smtp.ehlo("client.example")
            smtp.mail("a@example.test")
            code, text = smtp.rcpt(user.address)
            assert code == 250, text
            assert smtp.data(message("runtime", user.address))[0] == 250
    wait_for(lambda: dovecot.messages(user))


def test_smtp_sink(postfix: Postfix) -> None:
    sink = postfix.smtp_sink()
    with smtplib.SMTP(sink.host, sink.port, timeout=NET_TIMEOUT) as smtp:
        smtp.ehlo("bench.example")
        assert smtp.sendmail("a@example.test", ["b@example.test"], message("sink")) == {}
    pids = sink.pids()
    sink.stop()
    assert not [p for p in pids if alive(p)]


# -- dnsmasq -----------------------------------------------------------------------
def query(server: DNSMasq, name: str, rtype: str, *, tcp: bool = False) -> dns.message.Message:
    request = dns.message.make_query(name, rtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(request, server.host, port=server.port, timeout=NET_TIMEOUT)


def answers(reply: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset)


def test_dns_mx_a_aaaa_txt(dnsmasq: DNSMasq) -> None:
    assert answers(query(dnsmasq, "mail.test", "MX")) == ["10 mx1.mail.test.",
                                                           "20 mx2.mail.test."]
    assert answers(query(dnsmasq, "mail.test", "MX", tcp=True)) == ["10 mx1.mail.test.",
                                                                    "20 mx2.mail.test."]
    assert answers(query(dnsmasq, "mx1.mail.test", "A")) == ["127.0.0.1"]
    assert answers(query(dnsmasq, "mx2.mail.test", "A")) == ["127.0.0.2"]
    assert answers(query(dnsmasq, "mx1.mail.test", "AAAA")) == ["::1"]
    assert answers(query(dnsmasq, "mail.test", "TXT")) == ['"v=spf1 ip4:127.0.0.1 -all"']
    assert answers(query(dnsmasq, "_dmarc.mail.test", "TXT")) == ['"v=DMARC1; p=reject"']
    assert answers(query(dnsmasq, "two.test", "MX")) == ["10 mxa.two.test.", "10 mxb.two.test."]
    assert answers(query(dnsmasq, "dead.test", "MX")) == ["10 mx1.dead.test.",
                                                          "20 mx2.dead.test."]
    assert answers(query(dnsmasq, "mx1.dead.test", "A")) == ["127.0.0.3"]
    assert answers(query(dnsmasq, "_submission._tcp.mail.test", "SRV")) == [
        "0 0 587 smtp.mail.test."]
    assert answers(query(dnsmasq, "1.0.0.127.in-addr.arpa", "PTR")) == ["mx1.mail.test."]


def test_dns_null_mx_no_mx_and_missing_records(dnsmasq: DNSMasq) -> None:
    null = query(dnsmasq, "nullmx.test", "MX")
    assert null.rcode() == dns.rcode.NOERROR
    [rrset] = null.answer
    [rdata] = list(rrset)
    assert rdata.preference == 0 and rdata.exchange.to_text() == "."
    nomx = query(dnsmasq, "nomx.test", "MX")
    assert nomx.rcode() == dns.rcode.NOERROR and nomx.answer == []
    assert answers(query(dnsmasq, "nomx.test", "A")) == ["127.0.0.1"]
    other = query(dnsmasq, "other.test", "TXT")
    assert other.rcode() == dns.rcode.NOERROR and other.answer == []
    assert query(dnsmasq, "_dmarc.other.test", "TXT").rcode() == dns.rcode.NXDOMAIN


def test_dns_nxdomain_and_nothing_forwarded(dnsmasq: DNSMasq) -> None:
    for name in ("nx.test", "deep.under.nx.test", "unknown.test"):
        assert query(dnsmasq, name, "MX").rcode() == dns.rcode.NXDOMAIN, name
    started = time.monotonic()
    outside = query(dnsmasq, "example.com", "A")
    assert outside.rcode() == dns.rcode.REFUSED
    assert time.monotonic() - started < 1


def test_custom_dnsmasq_records(make_dnsmasq: Callable[..., DNSMasq]) -> None:
    server = make_dnsmasq([MX("custom.test", "mx.custom.test", 5), A("mx.custom.test",
                                                                    "127.0.0.9"),
                           NullMX("nomail.test")])
    assert answers(query(server, "custom.test", "MX")) == ["5 mx.custom.test."]
    assert answers(query(server, "mx.custom.test", "A")) == ["127.0.0.9"]
    assert answers(query(server, "nomail.test", "MX")) == ["0 ."]
    assert query(server, "mail.test", "MX").rcode() == dns.rcode.NXDOMAIN


# -- test CA -----------------------------------------------------------------------
def handshake_error(test_ca: TestCA, server_context: ssl.SSLContext,
                    server_name: str = "localhost") -> str | None:
    """TLS-handshake a verifying client against ``server_context``; return the error."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(NET_TIMEOUT)
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=NET_TIMEOUT) as raw:
            try:
                with test_ca.client_context().wrap_socket(raw, server_hostname=server_name):
                    return None
            except ssl.SSLCertVerificationError as exc:
                return exc.verify_message
    finally:
        thread.join(NET_TIMEOUT)
        listener.close()


def test_ca_bad_certificates(test_ca: TestCA) -> None:
    assert handshake_error(test_ca, test_ca.server_context()) is None
    assert handshake_error(test_ca, test_ca.server_context(), "::1") is None
    assert "expired" in (handshake_error(test_ca, test_ca.expired().server_context()) or "")
    assert "match" in (handshake_error(test_ca, test_ca.wrong_host().server_context()) or "")
    assert "self-signed" in (handshake_error(test_ca, test_ca.self_signed().server_context())
                             or "")
    assert "issuer" in (handshake_error(test_ca, test_ca.untrusted().server_context()) or "")
    assert len(test_ca.server.sha256) == 64


# -- lifecycle ---------------------------------------------------------------------
def test_all_start_fast_and_leave_no_process() -> None:
    servers = ServerSet(make_servers_dir())
    started = time.monotonic()
    try:
        servers.start()
        elapsed = time.monotonic() - started
        pids = set().union(*(server.pids() for server in servers.servers))
        assert len(pids) >= 6
        assert elapsed < 10, servers.startup_seconds
        sink = servers.postfix.smtp_sink()
        pids |= sink.pids()
    finally:
        servers.stop()
        import shutil

        shutil.rmtree(servers.workdir, ignore_errors=True)
    assert pids and not [pid for pid in pids if alive(pid)]
    assert not any(server.running for server in servers.servers)


def test_missing_program_names_the_install_script() -> None:
    with pytest.raises(MissingBinaryError, match="scripts/install-deps.sh"):
        find_binary("no-such-mail-server")


def test_servers_die_with_a_killed_harness(tmp_path: Path) -> None:
    """A harness killed by SIGKILL (no teardown) still leaves no server running."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tests.servers import DNSMasq
        server = DNSMasq(Path({str(tmp_path / "dns")!r})).start()
        print(" ".join(str(p) for p in server.pids()), flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=env)
    try:
        assert child.stdout is not None
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) >= 2 and all(alive(p) for p in pids)
    finally:
        child.kill()
        child.wait(NET_TIMEOUT)
    wait_for(lambda: not [p for p in pids if alive(p)], timeout=10)


def test_failure_report_has_server_log_and_servers_start_on_demand(tmp_path: Path) -> None:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent("""
        import dns.message, dns.query

        def test_fails(dnsmasq):
            dns.query.udp(dns.message.make_query("marker-name.test", "A"), dnsmasq.host,
                          port=dnsmasq.port, timeout=5)
            assert False, "expected failure"

        def test_needs_no_server():
            pass
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.servers.fixtures", "-p",
         "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=50,
        stdin=subprocess.DEVNULL,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out
    assert "dnsmasq log" in out and "marker-name.test" in out, out
