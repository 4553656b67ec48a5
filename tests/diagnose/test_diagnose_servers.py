"""``mailtool diagnose`` against dnsmasq records, the real Postfix, and scripted faults."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.faults.server import Conn, ScriptedServer, dead_port
from tests.helpers import run_cli
from tests.servers.dnsmasq import MX, PTR, TXT, A

pytestmark = pytest.mark.timeout(90)


def findings(doc: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for s in doc["sections"] for f in s["findings"] if f["check"] == check]


def diagnose(*args: str, expect: int, timeout: str = "30") -> dict[str, Any]:
    r = run_cli("--timeout", timeout, "diagnose", "--json", *args, expect=expect)
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["exit_code"] == expect
    return doc


@pytest.fixture
def healthy_dns(make_dnsmasq: Any) -> str:
    server = make_dnsmasq([
        MX("healthy.test", "mx1.mail.test", 10),
        A("mx1.mail.test", "127.0.0.1"),
        PTR("1.0.0.127.in-addr.arpa", "mx1.mail.test"),
        TXT("healthy.test", "v=spf1 mx -all"),
        TXT("_dmarc.healthy.test", "v=DMARC1; p=reject"),
    ])
    host, port = server.nameserver
    return f"{host}:{port}"


def test_healthy_domain(healthy_dns: str, postfix: Any, test_ca: Any, mail_user: Any) -> None:
    doc = diagnose("healthy.test", "--dns-server", healthy_dns, "--port", str(postfix.smtp_port),
                   "--ca-file", str(test_ca.ca_file), "--rcpt", mail_user.address, expect=0)
    assert findings(doc, "mx")[0]["detail"] == "10 mx1.mail.test"
    assert findings(doc, "ptr")[0]["status"] == "ok"
    assert findings(doc, "banner")[0]["reply"].startswith("220 ")
    assert "STARTTLS" in findings(doc, "ehlo")[0]["detail"]
    assert "STARTTLS" not in findings(doc, "ehlo-tls")[0]["detail"]  # asked again after TLS
    assert findings(doc, "starttls")[0]["status"] == "ok"
    assert findings(doc, "tls")[0]["data"]["version"].startswith("TLSv1.")
    assert findings(doc, "certificate")[0]["data"]["days_left"] > 0
    assert findings(doc, "rcpt")[0]["detail"] == "would be accepted"
    assert findings(doc, "spf")[0]["status"] == "ok"
    assert findings(doc, "dmarc")[0]["detail"] == "policy p=reject"
    # no mail was queued or delivered by the probe
    assert not any(mail_user.maildir.rglob("*,S=*"))


def test_unknown_user_is_67_with_explanation(healthy_dns: str, postfix: Any, test_ca: Any) -> None:
    doc = diagnose("healthy.test", "--dns-server", healthy_dns, "--port", str(postfix.smtp_port),
                   "--ca-file", str(test_ca.ca_file), "--rcpt", "nobody-here@mail.test",
                   expect=67)
    rcpt = findings(doc, "rcpt")[0]
    assert rcpt["status"] == "failure" and rcpt["reply"].startswith("550 5.1.1")
    assert "Bad destination mailbox address" in rcpt["explanation"]
    assert rcpt["next_step"]


def test_human_view_fits_80_columns(healthy_dns: str, postfix: Any, test_ca: Any) -> None:
    r = run_cli("diagnose", "healthy.test", "--dns-server", healthy_dns, "--port",
                str(postfix.smtp_port), "--ca-file", str(test_ca.ca_file), "-v")
    assert r.stdout.startswith("healthy.test: 0 failures, 0 warnings")
    assert "\x1b[" not in r.stdout
    assert "transcript:" in r.stdout and "-> EHLO" in r.stdout
    body = r.stdout.split("transcript:")[0]
    assert all(len(line) <= 80 for line in body.splitlines())


def test_null_mx(dnsmasq: Any) -> None:
    host, port = dnsmasq.nameserver
    doc = diagnose("nullmx.test", "--dns-server", f"{host}:{port}", expect=68)
    mx = findings(doc, "mx")[0]
    assert mx["status"] == "failure" and "null MX" in mx["detail"]


def test_missing_spf_and_dmarc_are_warnings(dnsmasq: Any) -> None:
    host, port = dnsmasq.nameserver
    doc = diagnose("other.test", "--dns-server", f"{host}:{port}", "--max-mx", "0", expect=1)
    assert findings(doc, "spf")[0]["status"] == "warning"
    assert findings(doc, "dmarc")[0]["status"] == "warning"
    assert "v=spf1" in findings(doc, "spf")[0]["next_step"]


def test_first_mx_dead_is_a_warning_when_the_next_works(dnsmasq: Any, postfix: Any) -> None:
    host, port = dnsmasq.nameserver
    doc = diagnose("dead.test", "--dns-server", f"{host}:{port}", "--port",
                   str(postfix.smtp_port), "--insecure", expect=1)
    first, second = (s for s in doc["sections"] if s["name"].startswith("MX "))
    assert first["name"] == "MX 10 mx1.dead.test"
    connect = first["findings"][0]
    assert connect["check"] == "connect" and connect["status"] == "warning"
    assert "still flows" in connect["detail"]
    assert second["status"] == "ok"


def test_mx_refusing_connections(make_dnsmasq: Any) -> None:
    server = make_dnsmasq([MX("refuse.test", "mx.refuse.test", 10),
                           A("mx.refuse.test", "127.0.0.1")])
    host, port = server.nameserver
    doc = diagnose("refuse.test", "--dns-server", f"{host}:{port}", "--port",
                   str(dead_port()), expect=75)
    connect = findings(doc, "connect")[0]
    assert connect["status"] == "failure" and "cannot connect" in connect["detail"]
    assert "firewall" in connect["next_step"]


def _greets(greeting: bytes, ehlo: bytes = b"250-fault.test\r\n250 PIPELINING\r\n"):  # type: ignore[no-untyped-def]
    def handler(c: Conn) -> None:
        c.send(greeting)
        if greeting.startswith(b"220"):
            c.expect(b"EHLO")
            c.send(ehlo)
            c.expect(b"QUIT")
            c.send(b"221 bye\r\n")
        c.read_until_closed()

    return handler


def test_banner_421() -> None:
    with ScriptedServer(_greets(b"421 4.3.2 fault.test too busy, try later\r\n")) as srv:
        doc = diagnose(f"smtp://127.0.0.1:{srv.port}", expect=75)
    banner = findings(doc, "greeting")[0]
    assert banner["reply"] == "421 4.3.2 fault.test too busy, try later"
    assert banner["explanation"].startswith("System not accepting network messages")
    assert banner["next_step"].startswith("Retry later")


def test_starttls_missing() -> None:
    with ScriptedServer(_greets(b"220 fault.test ESMTP\r\n")) as srv:
        doc = diagnose(f"smtp://127.0.0.1:{srv.port}", expect=1)
        assert findings(doc, "starttls")[0]["status"] == "warning"
        # on the submission port STARTTLS is required: a failure
        doc = diagnose(f"submission://127.0.0.1:{srv.port}", expect=69)
        assert findings(doc, "starttls")[0]["status"] == "failure"
    srv.check()


def _tls_server(context: Any):  # type: ignore[no-untyped-def]
    def handler(c: Conn) -> None:
        c.send(b"220 fault.test ESMTP\r\n")
        c.expect(b"EHLO")
        c.send(b"250-fault.test\r\n250 STARTTLS\r\n")
        c.expect(b"STARTTLS")
        c.send(b"220 go ahead\r\n")
        try:
            c.starttls(context)
        except OSError:
            return  # the client refused our certificate
        c.expect(b"EHLO")
        c.send(b"250 fault.test\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    return handler


@pytest.mark.parametrize(("cert", "words"), [("expired", "expired"), ("wrong_host", "mismatch")])
def test_bad_certificate(test_ca: Any, cert: str, words: str) -> None:
    context = getattr(test_ca, cert)().server_context()
    with ScriptedServer(_tls_server(context)) as srv:
        doc = diagnose(f"smtp://localhost:{srv.port}", "--ca-file", str(test_ca.ca_file),
                       expect=69)
    bad = findings(doc, "certificate")[0]
    assert bad["status"] == "failure" and words in bad["detail"].lower()
    assert "certificate" in bad["next_step"]
    tls = findings(doc, "tls")  # learnt without verification, for the record
    assert tls and tls[0]["status"] == "info"


def test_three_dead_mx_answer_in_about_one_timeout(make_dnsmasq: Any) -> None:
    addresses = ["127.0.0.5", "127.0.0.6", "127.0.0.7"]
    server = make_dnsmasq(
        [MX("slow.test", f"mx{n}.slow.test", 10 * n) for n in range(1, 4)]
        + [A(f"mx{n}.slow.test", addr) for n, addr in enumerate(addresses, start=1)]
    )
    host, dns_port = server.nameserver

    def silent(c: Conn) -> None:
        c.read_until_closed()  # accept, never greet

    first = ScriptedServer(silent, host=addresses[0]).start()
    servers = [first] + [ScriptedServer(silent, host=a, port=first.port).start()
                         for a in addresses[1:]]
    try:
        start = time.monotonic()
        doc = diagnose("slow.test", "--dns-server", f"{host}:{dns_port}", "--port",
                       str(first.port), "--no-policy-fetch", timeout="2", expect=75)
        elapsed = time.monotonic() - start
    finally:
        for s in servers:
            s.stop()
    sections = [s for s in doc["sections"] if s["name"].startswith("MX ")]
    assert len(sections) == 3 and all(s["status"] == "failure" for s in sections)
    # Three greeting timeouts of 2 s each: one after the other they would take 6 s or
    # more; in parallel the run takes about one timeout (the report's own clock, so the
    # interpreter's start-up on a loaded machine does not count).
    assert 2000 <= doc["elapsed_ms"] < 4500, doc["elapsed_ms"]
    assert elapsed < 30
