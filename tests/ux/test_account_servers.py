"""``account test`` against the real Dovecot and Postfix: one login per service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailtool.exitcodes import ExitCode
from tests.helpers import run_cli

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]


def _add(dovecot: Any, postfix: Any, test_ca: Any, user: Any) -> None:
    run_cli(
        "account", "add", "real", "--user", user.name, "--ca-file", str(test_ca.ca_file),
        "--imap-host", f"{dovecot.host}:{dovecot.imaps_port}", "--imap-tls", "implicit",
        "--pop3-host", f"{dovecot.host}:{dovecot.pop3_port}", "--pop3-tls", "starttls",
        "--smtp-host", f"{postfix.host}:{postfix.submission_port}", "--smtp-tls", "starttls",
    )


def test_account_test_logs_in_everywhere(
    dovecot: Any, postfix: Any, test_ca: Any, mail_user: Any, isolated_env: Path
) -> None:
    _add(dovecot, postfix, test_ca, mail_user)
    out = run_cli("account", "test", "real", "--json",
                  env={"MAILTOOL_PASSWORD": mail_user.password}).stdout
    report = json.loads(out)
    assert report["ok"] is True, report
    assert [s["service"] for s in report["services"]] == ["smtp", "pop3", "imap"]
    assert all("TLS" in s["detail"] for s in report["services"])
    assert mail_user.password not in out


def test_account_test_wrong_password_exits_77(
    dovecot: Any, postfix: Any, test_ca: Any, mail_user: Any, isolated_env: Path
) -> None:
    _add(dovecot, postfix, test_ca, mail_user)
    result = run_cli("account", "test", "real", env={"MAILTOOL_PASSWORD": "wrong"},
                     expect=ExitCode.NOPERM)
    assert [line[:4] for line in result.stdout.splitlines()] == ["FAIL"] * 3
    assert "wrong" not in result.stdout + result.stderr
