"""``mailtool diagnose`` without a target checks every service of an account, with logins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.servers.ca import TestCA
from tests.servers.dovecot import Dovecot, User
from tests.servers.postfix import Postfix

pytestmark = pytest.mark.timeout(120)


def _config(tmp_path: Path, dovecot: Dovecot, postfix: Postfix, ca: TestCA, user: User) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'default_account = "me"\n'
        f'[accounts.me.smtp]\nhost = "localhost"\nport = {postfix.submission_port}\n'
        f'user = "{user.name}"\nca_file = "{ca.ca_file}"\n'
        f'[accounts.me.pop3]\nhost = "localhost"\nport = {dovecot.pop3s_port}\n'
        f'tls = "implicit"\nuser = "{user.name}"\nca_file = "{ca.ca_file}"\n'
        f'[accounts.me.imap]\nhost = "localhost"\nport = {dovecot.imap_port}\n'
        f'tls = "starttls"\nuser = "{user.name}"\nca_file = "{ca.ca_file}"\n'
    )
    path.chmod(0o600)
    return path


def test_account_services_all_ok(tmp_path: Path, dovecot: Dovecot, postfix: Postfix,
                                 test_ca: TestCA, mail_user: User) -> None:
    cfg = _config(tmp_path, dovecot, postfix, test_ca, mail_user)
    result = run_cli("--config", str(cfg), "diagnose", "--json",
                     env={"MAILTOOL_PASSWORD": mail_user.password})
    report = json.loads(result.stdout)
    names = [s["name"] for s in report["sections"]]
    assert [n.split()[0] for n in names] == ["smtp", "pop3", "imap"]
    titles = [f["title"] for s in report["sections"] for f in s["findings"]]
    assert sum(t.startswith("Login as") for t in titles) == 2
    assert mail_user.password not in result.stdout + result.stderr


def test_account_wrong_password_exits_77(tmp_path: Path, dovecot: Dovecot, postfix: Postfix,
                                         test_ca: TestCA, mail_user: User) -> None:
    cfg = _config(tmp_path, dovecot, postfix, test_ca, mail_user)
    result = run_cli("--config", str(cfg), "diagnose", expect=77,
                     env={"MAILTOOL_PASSWORD": "not-" + mail_user.password})
    assert "FAIL" in result.stdout and "Login as" in result.stdout


def test_no_target_and_no_account_is_usage_error() -> None:
    result = run_cli("diagnose", expect=64)
    assert "--account" in result.stderr
