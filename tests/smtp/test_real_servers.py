"""send against the real Postfix (submission, STARTTLS + AUTH, and port-25 style) and dnsmasq."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]


def wait_for_message(dovecot: Any, user: Any, count: int = 1, timeout: float = 20.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while True:
        files = dovecot.messages(user)
        if len(files) >= count or time.monotonic() > deadline:
            return files
        time.sleep(0.05)  # polling the Maildir with a deadline, not synchronising by sleep


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[1]


def test_submission_starttls_auth_byte_exact(postfix: Any, dovecot: Any, mail_user: Any,
                                             test_ca: Any) -> None:
    sender = dovecot.add_user()
    long_line = b"y" * 998
    body = (b".starts with a dot\n..two dots\n.\n" + long_line + b"\n"
            + "8-bit UTF-8: h\u00e9llo \u2713\n".encode() + b"bare LF end\n")
    msg = (f"From: {sender.address}\nTo: {mail_user.address}\nSubject: exact\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
           "Content-Transfer-Encoding: 8bit\n\n").encode() + body
    r = run_cli("send", "--smarthost", f"{postfix.host}:{postfix.submission_port}",
                "--tls", "starttls", "--ca-file", str(test_ca.ca_file), "--user", sender.name,
                "--json", "-v", mail_user.address, input=msg,
                env={"MAILTOOL_PASSWORD": sender.password})
    assert json.loads(r.stdout)["recipients"][0]["status"] == "accepted"
    assert sender.password not in r.stderr  # transcript redacted
    assert "redacted" in r.stderr and "TLS" in r.stderr
    files = wait_for_message(dovecot, mail_user)
    assert files, "message not delivered"
    stored = files[0].read_bytes()
    assert body_of(stored).replace(b"\r\n", b"\n") == body


def test_submission_attachments_and_html(postfix: Any, dovecot: Any, mail_user: Any,
                                         test_ca: Any, tmp_path: Path) -> None:
    sender = dovecot.add_user()
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)))
    run_cli("send", "--smarthost", f"{postfix.host}:{postfix.submission_port}",
            "--ca-file", str(test_ca.ca_file), "--user", sender.name,
            "--from", f"Zo\u00eb <{sender.address}>", "--to", mail_user.address,
            "--subject", "caf\u00e9", "--body", "text part", "--html",
            str(tmp_path / "page.html"), "--attach", str(tmp_path / "data.bin"),
            env={"MAILTOOL_PASSWORD": sender.password})
    files = wait_for_message(dovecot, mail_user)
    assert files
    import email
    from email import policy

    msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert str(msg["Subject"]) == "caf\u00e9"
    att = next(msg.iter_attachments())
    assert att.get_filename() == "data.bin" and att.get_content() == bytes(range(256))
    assert msg.get_body(("html",)).get_content().strip() == "<p>hi</p>"  # type: ignore[union-attr]


def test_submission_wrong_password_exit_77(postfix: Any, dovecot: Any, mail_user: Any,
                                           test_ca: Any) -> None:
    sender = dovecot.add_user()
    r = run_cli("send", "--smarthost", f"{postfix.host}:{postfix.submission_port}",
                "--ca-file", str(test_ca.ca_file), "--user", sender.name, "-f",
                sender.address, mail_user.address, input=b"Subject: x\n\nx\n",
                env={"MAILTOOL_PASSWORD": "wrong-password"}, expect=77)
    assert "535" in r.stderr and "wrong-password" not in r.stderr


def test_mx_delivery_mixed_domains(postfix: Any, dovecot: Any, dnsmasq: Any,
                                   mail_user: Any) -> None:
    ns = "{}:{}".format(*dnsmasq.nameserver)
    rcpts = [mail_user.address, "x@nullmx.test", "y@nosuch.nx.test",
             f"{mail_user.name}@dead.test", f"{mail_user.name}@nomx.test"]
    r = run_cli("send", "--dns-server", ns, "--port", str(postfix.smtp_port), "--json",
                "-f", "sender@other.test", *rcpts, input=b"Subject: mx\n\nvia MX\n",
                expect=68)
    got = {o["recipient"]: o for o in json.loads(r.stdout)["recipients"]}
    assert got[mail_user.address]["status"] == "accepted"
    assert got[mail_user.address]["host"] == "mx1.mail.test"  # preference 10 first
    assert got["x@nullmx.test"]["status"] == "rejected"
    assert got["x@nullmx.test"]["step"] == "DNS" and got["x@nullmx.test"]["exit_code"] == 68
    assert got["y@nosuch.nx.test"]["exit_code"] == 68
    # dead.test: mx1 (127.0.0.3) refuses connections; mx2 answers and takes it.
    dead = got[f"{mail_user.name}@dead.test"]
    assert dead["host"] == "mx2.dead.test" and dead["status"] == "accepted"
    # nomx.test: implicit MX (the A record).
    assert got[f"{mail_user.name}@nomx.test"]["host"] == "nomx.test"
    assert wait_for_message(dovecot, mail_user, count=3)


def test_mx_all_hosts_down_defers(postfix: Any, dnsmasq: Any) -> None:
    from tests.faults.server import dead_port

    ns = "{}:{}".format(*dnsmasq.nameserver)
    r = run_cli("send", "--dns-server", ns, "--port", str(dead_port()), "--json",
                "-f", "s@other.test", "u@mail.test", input=b"Subject: x\n\nx\n", expect=75)
    out = json.loads(r.stdout)["recipients"][0]
    assert out["status"] == "deferred" and out["step"] == "connect"
