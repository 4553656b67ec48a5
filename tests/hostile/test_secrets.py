"""Secrets never leak: every command that logs in, run with ``-vv`` and ``--json`` against
the real servers (which require AUTH), must not show the password or any base64 form of
it (PLAIN, LOGIN, XOAUTH2) in stdout, stderr, or any file it leaves under the XDG dirs or
the destination. And a config file with a password in it is refused; one readable by
others is warned about."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Result, run_cli

pytestmark = pytest.mark.timeout(180)


def forms(user: str, password: str) -> list[bytes]:
    """The password and every encoding of it a transcript could carry."""
    pw = password.encode()
    found = [pw,
             base64.b64encode(b"\0" + user.encode() + b"\0" + pw),  # PLAIN
             base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + pw),
             base64.b64encode(pw),  # LOGIN
             base64.b64encode(b"user=" + user.encode() + b"\x01auth=Bearer " + pw + b"\x01\x01")]
    # The password's own base64 at each of the three alignments inside a longer blob,
    # without the edge characters that depend on the neighbours.
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + pw)
        skip = (pad * 4 + 2) // 3 + 1
        found.append(enc[skip:-3])
    return [f for f in found if len(f) >= 8]


def leaks(haystack: bytes, user: str, password: str) -> list[bytes]:
    return [f for f in forms(user, password) if f in haystack]


def scan_tree(root: Path, user: str, password: str) -> list[str]:
    bad = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if leaks(data, user, password):
                bad.append(str(path))
    return bad


@pytest.mark.servers
def test_no_command_shows_the_password(dovecot: Any, postfix: Any, mail_user: Any, test_ca: Any,
                                       tmp_path: Path, isolated_env: Path) -> None:
    user, pw = mail_user.name, mail_user.password
    ca = ("--ca-file", str(test_ca.ca_file))
    dovecot.deliver(mail_user, b"Subject: s\r\nMessage-ID: <s@x>\r\n\r\nsecret test\r\n")
    env = {"MAILTOOL_PASSWORD": pw}
    # An account for `account test` (password from the environment, not the file).
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f'[accounts.t.imap]\nhost = "localhost"\nport = {dovecot.imaps_port}\ntls = "implicit"\n'
        f'user = "{user}"\nca_file = "{test_ca.ca_file}"\n'
        f'[accounts.t.pop3]\nhost = "localhost"\nport = {dovecot.pop3s_port}\ntls = "implicit"\n'
        f'user = "{user}"\nca_file = "{test_ca.ca_file}"\n')
    cfg.chmod(0o600)
    imap = ("--host", "localhost", "--port", str(dovecot.imaps_port), "--tls", "implicit",
            "--user", user, *ca)
    pop = ("--host", "localhost", "--port", str(dovecot.pop3s_port), "--tls", "implicit",
           "--user", user, *ca)
    runs: list[tuple[str, ...]] = []
    for mech in ("PLAIN", "LOGIN"):
        runs += [
            ("send", "--smarthost", f"localhost:{postfix.submission_port}", "--tls", "starttls",
             "--user", user, "--auth", mech, *ca, "-f", mail_user.address, mail_user.address),
            ("imap-list", *imap, "--auth", mech),
            ("imap-list", "INBOX", *imap, "--auth", mech),
            ("imap-show", "1", *imap, "--auth", mech),
            ("imap-sync", *imap, "--auth", mech, "--maildir", str(tmp_path / f"mirror-{mech}")),
            ("pop-fetch", *pop, "--auth", mech, "--maildir", str(tmp_path / f"pop-{mech}")),
        ]
    runs += [("diagnose", f"imaps://localhost:{dovecot.imaps_port}", "--user", user, *ca),
             ("diagnose", f"pop3s://localhost:{dovecot.pop3s_port}", "--user", user, *ca),
             ("account", "test", "t")]
    failures = []
    for args in runs:
        for flags in (("-vv",), ("--json",), ("-vv", "--json")):
            result: Result = run_cli(*flags, *args, expect=None, env=env,
                                     input=b"Subject: hi\r\n\r\nbody\r\n" if args[0] == "send"
                                     else None)
            if result.code not in (0, 1):  # diagnose exits 1 for warnings
                failures.append(f"{args[0]} {flags} exited {result.code}: {result.stderr[-500:]}")
            found = leaks(result.stdout_bytes + result.stderr.encode(), user, pw)
            if found:
                failures.append(f"{' '.join(args)} {flags} showed {found}")
    assert not failures, "\n".join(failures)
    assert scan_tree(isolated_env, user, pw) == []
    assert scan_tree(tmp_path, user, pw) == [] or all(
        "servers" in p for p in scan_tree(tmp_path, user, pw))


def test_password_in_config_is_refused(isolated_env: Path) -> None:
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text('[accounts.a.imap]\nhost = "127.0.0.1"\nuser = "ann"\n'
                   'password = "hunter2-in-file"\n'
                   '[accounts.a.pop3]\nhost = "127.0.0.1"\nuser = "ann"\n'
                   'pass = "hunter2-in-file"\n')
    cfg.chmod(0o600)
    for args in (("imap-list",), ("pop-fetch", "--stdout")):
        result = run_cli("--account", "a", *args, expect=78)
        assert "password" in result.stderr and "password_command" in result.stderr
        assert "hunter2" not in result.stderr
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_config_readable_by_others_is_warned_about(isolated_env: Path, mode: int) -> None:
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text('[accounts.a.smtp]\nhost = "127.0.0.1"\n')
    cfg.chmod(mode)
    result = run_cli("--account", "a", "explain", "250")
    assert "readable by group or others" in result.stderr and "chmod 600" in result.stderr
    cfg.chmod(0o600)
    assert "readable" not in run_cli("--account", "a", "explain", "250").stderr
