"""Config parsing, endpoint resolution and the password-source order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailtool.config import load_config, parse_config
from mailtool.endpoint import (
    ConnectionOptions,
    check_plaintext_auth,
    resolve_endpoint,
    split_host_port,
)
from mailtool.errors import AuthError, ConfigError, UsageError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.tls import TLSMode
from mailtool.secrets import lookup_password, require_password
from tests.conftest import MemoryKeyring

GOOD = """
default_account = "work"

[accounts.work]
from = "Ann <ann@example.org>"

[accounts.work.smtp]
host = "smtp.example.org"
port = 465
user = "ann"

[accounts.work.imap]
host = "imap.example.org"
tls = "starttls"

[accounts.home.pop3]
host = "pop.example.net"
"""


def test_parse_accounts_and_default() -> None:
    cfg = parse_config(GOOD)
    work = cfg.account(None)
    assert work is not None and work.name == "work"
    smtp = work.service("smtp")
    assert smtp is not None and (smtp.host, smtp.port, smtp.user) == ("smtp.example.org", 465, "ann")
    assert work.get("from") == "Ann <ann@example.org>"
    home = cfg.account("home")
    assert home is not None and home.service("pop3") is not None


def test_unknown_account_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no account named 'nope'.*home, work"):
        parse_config(GOOD).account("nope")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[accounts.x]\nhost = "a"\nport = = 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == ExitCode.CONFIG
    assert str(path) in str(err.value) and "line 3" in str(err.value)


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('[accounts.a.smtp]\nport = "x"\n', "port must be a int"),
        ('[accounts.a.smtp]\nport = 70000\n', "out of range"),
        ('[accounts.a.smtp]\ntls = "maybe"\n', "tls must be one of"),
        ("[accounts.a]\nsmtp = 3\n", "must be a table"),
    ],
)
def test_type_errors(snippet: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(snippet)


def test_missing_default_file_is_empty_but_explicit_missing_file_fails(tmp_path: Path) -> None:
    assert load_config().accounts == {}
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_resolve_endpoint_defaults_and_overrides() -> None:
    cfg = parse_config(GOOD)
    work = cfg.account("work")
    assert work is not None
    ep = resolve_endpoint("smtp", ConnectionOptions(), work.service("smtp"), account="work")
    assert (ep.host, ep.port, ep.tls_mode, ep.user) == ("smtp.example.org", 465, TLSMode.IMPLICIT, "ann")
    ep = resolve_endpoint("imap", ConnectionOptions(), work.service("imap"))
    assert (ep.port, ep.tls_mode) == (143, TLSMode.STARTTLS)
    ep = resolve_endpoint("imap", ConnectionOptions(host="other:993", user="bob"), work.service("imap"))
    assert (ep.host, ep.port, ep.user) == ("other", 993, "bob")
    ep = resolve_endpoint("pop3", ConnectionOptions(host="h", tls="implicit"), None)
    assert (ep.port, ep.tls_mode) == (995, TLSMode.IMPLICIT)
    with pytest.raises(ConfigError, match="no smtp server"):
        resolve_endpoint("smtp", ConnectionOptions(), None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("h", ("h", None)), ("h:25", ("h", 25)), ("[::1]:587", ("::1", 587)), ("::1", ("::1", None))],
)
def test_split_host_port(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected


def test_split_host_port_bad_port() -> None:
    with pytest.raises(UsageError):
        split_host_port("h:99999")


def test_plaintext_auth_refused_to_remote_hosts_only() -> None:
    remote = resolve_endpoint("imap", ConnectionOptions(host="imap.example.org", tls="none"), None)
    with pytest.raises(AuthError, match="without TLS"):
        check_plaintext_auth(remote, tls_active=False)
    check_plaintext_auth(remote, tls_active=True)
    loop = resolve_endpoint("imap", ConnectionOptions(host="127.0.0.1", tls="none"), None)
    check_plaintext_auth(loop, tls_active=False)
    allowed = resolve_endpoint(
        "imap", ConnectionOptions(host="imap.example.org", tls="none", allow_plaintext_auth=True), None
    )
    check_plaintext_auth(allowed, tls_active=False)


# --- password sources ----------------------------------------------------------------------


def test_keyring_first(memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    memory_keyring.set_password("mailtool", "work", "from-keyring")
    monkeypatch.setenv("MAILTOOL_PASSWORD", "from-env")
    found = lookup_password("work", password_command="echo from-command", interactive=False)
    assert (found.password, found.source) == ("from-keyring", "keyring")


def test_command_before_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILTOOL_PASSWORD", "from-env")
    found = lookup_password("work", password_command="printf 'cmd-secret\\nignored\\n'", interactive=False)
    assert (found.password, found.source) == ("cmd-secret", "password_command")
    assert found.tried[0].startswith("keyring: no entry")


def test_failing_command_falls_through_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILTOOL_PASSWORD", "from-env")
    found = lookup_password("work", password_command="exit 3", interactive=False)
    assert (found.password, found.source) == ("from-env", "MAILTOOL_PASSWORD")
    assert "password_command: exited with status 3" in found.tried


def test_prompt_only_on_a_terminal() -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    found = lookup_password("work", interactive=True, ask=ask, prompt="Password for ann: ")
    assert (found.password, found.source, asked) == ("typed", "prompt", ["Password for ann: "])
    found = lookup_password("work", interactive=False, ask=ask)
    assert found.password is None and len(asked) == 1


def test_no_keyring_backend_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.errors import NoKeyringError

    def broken(service: str, user: str) -> str:
        raise NoKeyringError("no backend")

    monkeypatch.setattr(keyring, "get_password", broken)
    monkeypatch.setenv("MAILTOOL_PASSWORD", "env-secret")
    found = lookup_password("work", interactive=False)
    assert found.password == "env-secret"
    assert "keyring: no backend available" in found.tried


def test_nothing_found_lists_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthError) as err:
        require_password("work", password_command="false", interactive=False)
    text = str(err.value)
    assert "keyring: no entry" in text and "password_command" in text
    assert "MAILTOOL_PASSWORD: not set" in text and "no terminal" in text
    assert err.value.exit_code == ExitCode.NOPERM


def test_real_fail_backend_in_subprocess() -> None:
    """With keyring's 'fail' backend (as on a headless server) the env var still works."""
    import subprocess

    code = (
        "from mailtool.secrets import lookup_password; "
        "f = lookup_password('x', interactive=False); print(f.source, f.tried[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
        env={**__import__("os").environ, "MAILTOOL_PASSWORD": "s"},
    ).stdout
    assert out.startswith("MAILTOOL_PASSWORD keyring: no backend available")


# --- the parsed-document cache ------------------------------------------------------------

def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _cache_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    from mailtool.config import cache_dir_str

    base = Path(cache_dir_str())
    return sorted(base.glob("config.*.marshal")) if base.is_dir() else []


def _forbid_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    import mailtool.config as config

    def refuse(text: str, label: str) -> object:
        raise AssertionError("the TOML text was parsed again")

    monkeypatch.setattr(config, "_read_toml", refuse)


def test_second_load_comes_from_the_cache_and_equals_the_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config_file(tmp_path, GOOD)
    first = load_config(path)
    [cache] = _cache_files(monkeypatch, tmp_path)
    assert cache.stat().st_mode & 0o777 == 0o600
    _forbid_toml(monkeypatch)
    second = load_config(path)
    assert second.raw == first.raw and second.accounts == first.accounts
    assert second.default_account == "work" and second.path == path


def test_an_edited_file_is_read_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config_file(tmp_path, GOOD)
    load_config(path)
    # Same length, same mtime second: only the text tells the difference.
    path.write_text(GOOD.replace("port = 465", "port = 587"))
    assert load_config(path).account("work").service("smtp").port == 587


@pytest.mark.parametrize("damage", ["garbage", "others-may-write", "symlink"])
def test_a_damaged_or_foreign_cache_is_ignored(tmp_path: Path, damage: str) -> None:
    path = _config_file(tmp_path, GOOD)
    load_config(path)
    from mailtool.config import cache_dir_str

    [cache] = sorted(Path(cache_dir_str()).glob("config.*.marshal"))
    if damage == "garbage":
        cache.write_bytes(b"\x00not marshal data")
    elif damage == "others-may-write":
        import marshal

        fake = marshal.loads(cache.read_bytes())
        fake[2]["default_account"] = "evil"
        cache.write_bytes(marshal.dumps(fake))
        cache.chmod(0o666)
    else:
        other = tmp_path / "elsewhere"
        other.write_bytes(cache.read_bytes())
        cache.unlink()
        cache.symlink_to(other)
    assert load_config(path).default_account == "work"


def test_a_toml_date_is_not_cached_but_still_read(tmp_path: Path) -> None:
    path = _config_file(tmp_path, GOOD + "\n[accounts.home]\nsince = 2026-01-01\n")
    assert str(load_config(path).account("home").settings["since"]) == "2026-01-01"
    from mailtool.config import cache_dir_str

    assert not list(Path(cache_dir_str()).glob("config.*.marshal"))
    assert str(load_config(path).account("home").settings["since"]) == "2026-01-01"


def test_a_broken_file_still_fails_after_a_good_one_was_cached(tmp_path: Path) -> None:
    path = _config_file(tmp_path, GOOD)
    load_config(path)
    path.write_text(GOOD + "\n[accounts.work.smtp\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
