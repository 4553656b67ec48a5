"""The interactive ``account add`` dialogue, driven through a pseudo-terminal."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from tests.ux.cli_tree import PtySession


@pytest.mark.timeout(60)
def test_interactive_account_add(isolated_env: Path) -> None:
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("# mine\n[accounts.old.smtp]\nhost = \"old.example\"\n")
    s = PtySession("account", "add", "home", env={"NO_COLOR": "1"})
    s.expect("Your address (From):")
    s.send("Ann <ann@example.org>")
    s.expect("SMTP server (sending):")
    s.send("smtp.example.org")
    s.expect("TLS (implicit, starttls, none) [starttls]:")
    s.send("")
    s.expect("Port [587]:")
    s.send("")
    s.expect("User [ann@example.org]:")
    s.send("")
    s.expect("IMAP server (reading, IMAP):")
    s.send("imap.example.org:993")
    s.expect("[implicit]:")  # the TLS default follows the port given
    s.send("")
    s.expect("Port [993]:")
    s.send("")
    s.expect("User [ann@example.org]:")
    s.send("ann")
    s.expect("POP3 server (fetching, POP3):")
    s.send("")
    # The test environment has no keyring backend: we are told, and asked for a command.
    s.expect("No keyring backend")
    s.expect("Password command")
    s.send("pass show mail/home")
    s.expect("Make it the default account? [y/N]:")
    s.send("y")
    s.expect("Test the connection now? [y/N]:")
    s.send("n")
    assert s.wait() == 0, s.text
    assert "written to" in s.text
    text = cfg.read_text()
    # The comment directly above the first table stays with that table.
    assert text.startswith('default_account = "home"\n\n# mine\n[accounts.old.smtp]\n')
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    assert tomllib.loads(text)["accounts"]["home"] == {
        "from": "Ann <ann@example.org>",
        "smtp": {"host": "smtp.example.org", "port": 587, "tls": "starttls",
                 "user": "ann@example.org", "password_command": "pass show mail/home"},
        "imap": {"host": "imap.example.org", "port": 993, "tls": "implicit", "user": "ann",
                 "password_command": "pass show mail/home"},
    }


@pytest.mark.timeout(60)
def test_interactive_with_nothing_given_adds_nothing(isolated_env: Path) -> None:
    s = PtySession("account", "add", "x")
    for prompt in ("From", "SMTP server", "IMAP server", "POP3 server"):
        s.expect(prompt)
        s.send("")
    assert s.wait() == 64
    assert "nothing to add" in s.text
    assert not (isolated_env / "config" / "mailtool" / "config.toml").exists()
