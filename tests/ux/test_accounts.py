"""Accounts: text edits that keep comments and order, and the ``account`` commands."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from mailtool.accounts import (
    AccountSpec,
    add_account,
    remove_account,
    remove_account_text,
    render_account,
    set_default,
    set_default_text,
)
from mailtool.config import load_config
from mailtool.errors import ConfigError, UsageError
from mailtool.exitcodes import ExitCode
from tests.helpers import run_cli

TRICKY = '''\
# my mail config
# keep this comment

default_account = "work"   # the usual one

# Work account
[accounts.work]
from = "Ann <ann@example.org>"
tags = [
  [1, 2],
  "[accounts.fake]",
]
note = """
[accounts.fake2]
"""
literal = \'\'\'
[accounts.fake3]\'\'\'

[accounts.work.smtp]
host = "smtp.example.org"   # trailing comment
# port = 25

# Home account
[accounts."home.x"]
from = "me"

[[accounts."home.x".rules]]
match = "x"

[other]
k = { a = "[not.a.table]" }
'''


def spec(name: str, **services: dict[str, object]) -> AccountSpec:
    return AccountSpec(name=name, settings={"from": f"{name}@example.org"}, services=services)


def test_header_scanner_ignores_brackets_in_values() -> None:
    text, pos = remove_account_text(TRICKY, "fake")
    assert pos is None and text == TRICKY
    for fake in ("fake2", "fake3"):
        assert remove_account_text(TRICKY, fake)[1] is None


def test_add_appends_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TRICKY)
    add_account(spec("new", smtp={"host": "h", "port": 465, "tls": "implicit"}), path)
    after = path.read_text()
    assert after.startswith(TRICKY.rstrip("\n") + "\n\n[accounts.new]\n")
    config = load_config(path)
    assert config.accounts["new"].service("smtp").port == 465  # type: ignore[union-attr]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_remove_deletes_exactly_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TRICKY)
    _config, was_default = remove_account("home.x", path)
    after = path.read_text()
    assert not was_default
    assert "home" not in after and "rules" not in after
    # The work account, its comments and the other table are byte-for-byte intact.
    work = TRICKY[TRICKY.index("# Work account") : TRICKY.index("# Home account")]
    assert work in after
    assert after.endswith("[other]\nk = { a = \"[not.a.table]\" }\n")
    assert after.startswith("# my mail config\n# keep this comment\n")


def test_remove_default_drops_default_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TRICKY)
    config, was_default = remove_account("work", path)
    assert was_default and config.default_account is None
    text = path.read_text()
    assert "default_account" not in text and "# Work account" not in text
    assert "# Home account" in text and "# keep this comment" in text


def test_replace_in_place_keeps_position_and_lead_comment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TRICKY)
    add_account(spec("work", imap={"host": "imap.example.org"}), path, replace=True)
    text = path.read_text()
    assert text.index("# Work account\n[accounts.work]\n") < text.index("# Home account")
    assert "smtp.example.org" not in text and "trailing comment" not in text
    assert tomllib.loads(text)["accounts"]["work"] == {
        "from": "work@example.org", "imap": {"host": "imap.example.org"}}


def test_add_existing_without_replace_refuses(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TRICKY)
    with pytest.raises(UsageError, match="already exists"):
        add_account(spec("work", smtp={"host": "h"}), path)
    assert path.read_text() == TRICKY


def test_dotted_key_account_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = '[accounts]\nodd.smtp.host = "h"\n'
    path.write_text(original)
    with pytest.raises(ConfigError, match="dotted keys"):
        remove_account("odd", path)
    assert path.read_text() == original


def test_set_default_replaces_or_inserts() -> None:
    replaced = set_default_text(TRICKY, "home.x")
    assert 'default_account = "home.x"  # the usual one\n' in replaced
    bare = "# top comment\n\n[accounts.a]\nfrom = \"a\"\n"
    inserted = set_default_text(bare, "a")
    assert inserted == '# top comment\n\ndefault_account = "a"\n\n[accounts.a]\nfrom = "a"\n'
    assert tomllib.loads(inserted)["default_account"] == "a"


def test_set_default_unknown_account(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TRICKY)
    with pytest.raises(ConfigError):
        set_default("nope", path)
    assert set_default("home.x", path).default_account == "home.x"


def test_secrets_and_bad_names_refused() -> None:
    with pytest.raises(UsageError, match="secrets"):
        spec("a", smtp={"host": "h", "password": "hunter2"}).check()
    for bad in ("", "-x", "a b", "a/b", "x" * 65):
        with pytest.raises(UsageError):
            spec(bad).check()


def test_render_quotes_what_needs_quoting() -> None:
    text = render_account(AccountSpec("a.b", {"from": 'Q "x" \\ y\t'}, {"smtp": {"host": "h"}}))
    assert tomllib.loads(text)["accounts"]["a.b"] == {
        "from": 'Q "x" \\ y\t', "smtp": {"host": "h"}}


def test_write_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "mailtool.toml"
    real.parent.mkdir()
    real.write_text("# mine\n")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    add_account(spec("a", smtp={"host": "h"}), link)
    assert link.is_symlink() and "[accounts.a]" in real.read_text()


# --- the commands, as a real process ---------------------------------------------------


def test_cli_round_trip(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text("# hand-written header\n\n[accounts.old]\nfrom = \"o@x\"\n")
    cfg.chmod(0o644)
    run_cli(
        "--config", str(cfg), "account", "add", "work", "--from", "Ann <ann@example.org>",
        "--smtp-host", "smtp.example.org:465", "--imap-host", "imap.example.org",
        "--imap-tls", "implicit", "--user", "ann", "--password-command", "pass show w",
        "--default",
    )
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600
    text = cfg.read_text()
    assert text.startswith('# hand-written header\n\ndefault_account = "work"\n\n[accounts.old]')
    listed = json.loads(run_cli("--config", str(cfg), "account", "list", "--json").stdout)
    assert [a["name"] for a in listed["accounts"]] == ["old", "work"]
    assert listed["default"] == "work"
    work = listed["accounts"][1]
    assert work["services"]["smtp"]["port"] == 465
    assert work["services"]["imap"] == {
        "host": "imap.example.org", "port": None, "tls": "implicit", "user": "ann",
        "auth": None, "password_command": "pass show w", "ca_file": None, "insecure": False,
        "extra": {}}
    run_cli("--config", str(cfg), "account", "remove", "work")
    assert cfg.read_text() == "# hand-written header\n\n[accounts.old]\nfrom = \"o@x\"\n"


def test_cli_needs_a_server_without_terminal() -> None:
    result = run_cli("account", "add", "x", expect=ExitCode.USAGE)
    assert "--smtp-host" in result.stderr


def test_show_never_shows_secrets(isolated_env: Path) -> None:
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[accounts.a]\napi_token = "tok-123"\n[accounts.a.smtp]\nhost = "h"\n'
                   'password = "hunter2"\n')
    for args in (("account", "show", "a"), ("account", "show", "a", "--json"),
                 ("account", "list", "--json"), ("account", "list")):
        out = run_cli(*args)
        assert "hunter2" not in out.stdout + out.stderr
        assert "tok-123" not in out.stdout + out.stderr
    shown = json.loads(run_cli("account", "show", "--json").stdout)
    assert shown["services"]["smtp"]["extra"] == {"password": "(hidden)"}
    assert shown["keyring"] is None  # the subprocess has the "fail" backend


def test_set_password_without_keyring_points_at_password_command(isolated_env: Path) -> None:
    run_cli("account", "add", "a", "--smtp-host", "h")
    result = run_cli("account", "set-password", "a", input="pw\n", expect=ExitCode.CONFIG)
    assert "password_command" in result.stderr and "pw" not in result.stderr.replace(
        "password", "")


def test_set_password_in_process_uses_keyring(memory_keyring: object) -> None:
    from click.testing import CliRunner

    from mailtool.cli.app import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["account", "add", "a", "--smtp-host", "h"]).exit_code == 0
    result = runner.invoke(cli, ["account", "set-password", "a"], input="s3cret\n")
    assert result.exit_code == 0, result.output
    assert memory_keyring.store == {("mailtool", "a"): "s3cret"}  # type: ignore[attr-defined]
    shown = json.loads(runner.invoke(cli, ["account", "show", "a", "--json"]).stdout)
    assert shown["keyring"] is True and "s3cret" not in json.dumps(shown)
    assert runner.invoke(cli, ["account", "remove", "a"]).exit_code == 0
    assert memory_keyring.store == {}  # type: ignore[attr-defined]


def test_unknown_account_is_config_error() -> None:
    run_cli("account", "show", "ghost", expect=ExitCode.CONFIG)
    run_cli("account", "remove", "ghost", expect=ExitCode.CONFIG)
