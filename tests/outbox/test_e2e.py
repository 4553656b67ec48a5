"""End to end through the harness's Postfix (submission, STARTTLS + AUTH) into Dovecot:
cron mail rewritten by the account, and a queued message delivered after recovery."""

from __future__ import annotations

import email
import time
from collections.abc import Callable
from email import policy
from pathlib import Path
from typing import Any

import pytest

from tests.faults.server import dead_port
from tests.helpers import run_cli
from tests.smtp.test_real_servers import wait_for_message

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

CRON = (b"From: root (Cron Daemon)\nTo: root\nCc: www-data@localhost\n"
        b"Subject: Cron <root@box> /usr/local/bin/backup\nContent-Type: text/plain\n\n"
        b"backup finished: 3 files\n")


def account(name: str, sender: Any, host: str, port: int, ca_file: str, extra: str = "") -> str:
    return (f'[accounts.{name}]\nfrom = "Box Mailer <{sender.address}>"\n{extra}'
            f'[accounts.{name}.smtp]\nhost = "{host}"\nport = {port}\ntls = "starttls"\n'
            f'user = "{sender.name}"\nca_file = "{ca_file}"\n')


def test_cron_mail_rewritten_through_postfix(postfix: Any, dovecot: Any, mail_user: Any,
                                             test_ca: Any,
                                             write_config: Callable[[str], Path]) -> None:
    sender = dovecot.add_user()
    other = dovecot.add_user()
    write_config(account("box", sender, postfix.host, postfix.submission_port,
                         str(test_ca.ca_file),
                         extra=f'rewrite_from = true\naliases = {{ root = "{mail_user.address}"'
                               f', "*" = "{other.address}" }}\n'))
    r = run_cli("-t", "-i", input=CRON, program="mailtool-sendmail",
                env={"MAILTOOL_PASSWORD": sender.password})
    assert r.stderr == ""
    for user in (mail_user, other):
        files = wait_for_message(dovecot, user)
        assert len(files) == 1, f"{user.address} got {len(files)} messages"
        msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
        # The display name is kept, the address is the account's; envelope sender too.
        assert msg["From"].addresses[0].display_name == "Cron Daemon"
        assert msg["From"].addresses[0].addr_spec == sender.address
        assert msg["Return-Path"] == f"<{sender.address}>"
        # Aliases change the envelope only (Postfix qualifies the bare name it finds).
        assert msg["To"].addresses[0].username == "root"
        assert msg.get_content().strip() == "backup finished: 3 files"


def test_queued_while_relay_down_then_delivered_once(postfix: Any, dovecot: Any,
                                                     mail_user: Any, test_ca: Any,
                                                     write_config: Callable[[str], Path]
                                                     ) -> None:
    sender = dovecot.add_user()
    env = {"MAILTOOL_PASSWORD": sender.password}
    # The relay is down (nothing listens): queued, exit 0.
    write_config(account("box", sender, "127.0.0.1", dead_port(), str(test_ca.ca_file)))
    r = run_cli("-f", sender.address, mail_user.address, input=CRON, env=env,
                program="mailtool-sendmail")
    assert "queued for 1 recipient" in r.stderr
    assert dovecot.messages(mail_user) == []
    # Recovery: the account's relay is the real Postfix again. The retry is due 5 min later.
    write_config(account("box", sender, postfix.host, postfix.submission_port,
                         str(test_ca.ca_file)))
    later = {**env, "MAILTOOL_NOW": str(time.time() + 301)}
    run_cli("queue", "run", env=later)
    assert run_cli("queue", "list", "--json").stdout.strip() == "[]"
    run_cli("queue", "run", env=later)
    files = wait_for_message(dovecot, mail_user)
    assert len(files) == 1
    assert b"backup finished: 3 files" in files[0].read_bytes()
