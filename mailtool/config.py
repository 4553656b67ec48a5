"""Accounts from a TOML file (``$XDG_CONFIG_HOME/mailtool/config.toml`` or ``--config``).

Layout::

    default_account = "work"

    [accounts.work]
    from = "Ann Example <ann@example.org>"

    [accounts.work.smtp]            # also [accounts.work.pop3] and [accounts.work.imap]
    host = "smtp.example.org"
    port = 587
    tls = "starttls"                # implicit | starttls | none
    user = "ann"
    auth = "PLAIN"                  # optional: force a SASL mechanism
    password_command = "pass show mail/work"
    ca_file = "/etc/ssl/private-ca.pem"

Unknown keys are kept (later features add their own) but the common ones are type-checked
here, so a broken file fails early with exit 78 naming the file and line.
"""

from __future__ import annotations

import os

from mailtool.errors import ConfigError
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: neither typing nor pathlib is imported at run time
# (mailtool-sendmail reads its configuration with os.path alone; the functions returning a
# ``Path`` import pathlib when called).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TypeAlias

    #: A file name as callers give it.
    PathArg: TypeAlias = "str | os.PathLike[str]"

SERVICES = ("smtp", "pop3", "imap")
TLS_WORDS = ("implicit", "starttls", "none")


def default_config_file() -> str:
    """``$MAILTOOL_CONFIG``, else ``$XDG_CONFIG_HOME/mailtool/config.toml`` (a ``str``)."""
    explicit = os.environ.get("MAILTOOL_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mailtool", "config.toml")


def default_config_path() -> Path:
    """``default_config_file()`` as a ``Path``."""
    from pathlib import Path

    return Path(default_config_file())


def state_dir_str() -> str:
    """``$XDG_STATE_HOME/mailtool`` (UIDL lists, sync state, the outbox), as a ``str``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "mailtool")


def state_dir() -> Path:
    """``state_dir_str()`` as a ``Path``."""
    from pathlib import Path

    return Path(state_dir_str())


def cache_dir_str() -> str:
    """``$XDG_CACHE_HOME/mailtool`` (folder names for shell completion), as a ``str``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mailtool")


def cache_dir() -> Path:
    """``cache_dir_str()`` as a ``Path``."""
    from pathlib import Path

    return Path(cache_dir_str())


@record(frozen=True)
class ServiceConfig:
    """One server of an account: where it is and how to log in."""

    service: str
    host: str | None = None
    port: int | None = None
    tls: str | None = None
    user: str | None = None
    auth: str | None = None
    password_command: str | None = None
    ca_file: str | None = None
    insecure: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@record(frozen=True)
class Account:
    name: str
    services: dict[str, ServiceConfig]
    settings: dict[str, Any]

    def service(self, name: str) -> ServiceConfig | None:
        return self.services.get(name)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@record(frozen=True)
class Config:
    path: PathArg | None  # the file read (as the caller named it), None when there was none
    accounts: dict[str, Account]
    default_account: str | None
    raw: dict[str, Any]

    def account(self, name: str | None) -> Account | None:
        """The named account, the default one, the only one, or None.

        Raises:
            ConfigError: ``name`` (or the configured default) is not defined.
        """
        chosen = name or self.default_account
        if chosen is None:
            if len(self.accounts) == 1:
                return next(iter(self.accounts.values()))
            return None
        if chosen not in self.accounts:
            where = f" in {self.path}" if self.path else ""
            known = ", ".join(sorted(self.accounts)) or "none"
            raise ConfigError(f"no account named {chosen!r}{where} (defined: {known})")
        return self.accounts[chosen]


def _check_type(where: str, key: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: {key} must be a {names}, not {value!r}")


def _service(where: str, name: str, table: Any) -> ServiceConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    known = {
        "host": str,
        "port": int,
        "tls": str,
        "user": str,
        "auth": str,
        "password_command": str,
        "ca_file": str,
        "insecure": bool,
    }
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in table.items():
        if key in known:
            _check_type(f"{where}.{name}", key, value, known[key])
            values[key] = value
        else:
            extra[key] = value
    if "tls" in values and values["tls"] not in TLS_WORDS:
        raise ConfigError(f"{where}.{name}: tls must be one of {', '.join(TLS_WORDS)}")
    if "port" in values and not 0 < values["port"] < 65536:
        raise ConfigError(f"{where}.{name}: port {values['port']} out of range")
    return ServiceConfig(service=name, extra=extra, **values)


def parse_config(text: str, path: PathArg | None = None) -> Config:
    """Parse and check a config document.

    Raises:
        ConfigError: TOML syntax error (with line and column) or a wrong type.
    """
    return _build(_read_toml(text, str(path) if path else "config"), path)


def _build(raw: dict[str, Any], path: PathArg | None) -> Config:
    """The checked ``Config`` of a parsed document."""
    label = str(path) if path else "config"
    accounts: dict[str, Account] = {}
    tables = raw.get("accounts", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{label}: [accounts] must be a table")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: [accounts.{name}] must be a table")
        where = f"{label}: accounts.{name}"
        services = {s: _service(where, s, table[s]) for s in SERVICES if s in table}
        settings = {k: v for k, v in table.items() if k not in SERVICES}
        accounts[name] = Account(name=name, services=services, settings=settings)
    default = raw.get("default_account")
    if default is not None:
        _check_type(label, "default_account", default, str)
    return Config(path=path, accounts=accounts, default_account=default, raw=raw)


def _read_toml(text: str, label: str) -> dict[str, Any]:
    import tomllib  # here: mailtool-sendmail without a config file never needs it

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: {exc}", step="reading configuration") from exc


# --- the parsed-document cache ------------------------------------------------------------
# Reading TOML costs ~15 ms of every start (tomllib brings typing, datetime and string),
# more than a cron job's whole delivery. The parsed document is kept in the cache directory
# as ``marshal`` data (a built-in module, nothing to import) together with the text it came
# from: it is used only for exactly that text, so an edited file is always read afresh.
# Checks and defaults still run on every load. The cache is private to its owner, written
# atomically, and ignored (then rewritten) when anything about it is off.
_CACHE_VERSION = 1


def _cache_file(path: str) -> str | None:
    name = "config." + os.path.abspath(path).replace("%", "%25").replace("/", "%2F")
    if len(name) > 200:
        return None
    return os.path.join(cache_dir_str(), name + ".marshal")


def _cached_toml(path: str, text: str) -> dict[str, Any] | None:
    import marshal

    cache = _cache_file(path)
    if cache is None:
        return None
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or info.st_size > 1 << 20:
            return None  # not ours alone: never trust it
        data = marshal.loads(os.read(fd, info.st_size))
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)
    if (isinstance(data, tuple) and len(data) == 3 and data[0] == _CACHE_VERSION
            and data[1] == text and isinstance(data[2], dict)):
        return data[2]
    return None


def _store_toml(path: str, text: str, raw: dict[str, Any]) -> None:
    """Keep ``raw`` for the next start; silently does nothing when it cannot."""
    import marshal

    cache = _cache_file(path)
    if cache is None:
        return
    try:
        data = marshal.dumps((_CACHE_VERSION, text, raw))  # ValueError: a TOML date
    except ValueError:
        return
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, cache)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def load_config(path: PathArg | None = None) -> Config:
    """Read the config file; a missing default file is an empty config, not an error.

    Raises:
        ConfigError: the file named explicitly is missing, or any file is broken.
    """
    explicit = path is not None
    path = path or default_config_file()
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8").replace("\r\n", "\n")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"configuration file {path} does not exist") from None
        return Config(path=None, accounts={}, default_account=None, raw={})
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    warn_if_readable_by_others(path)
    where = os.fspath(path)
    raw = _cached_toml(where, text)
    if raw is None:
        raw = _read_toml(text, where)
        _store_toml(where, text, raw)
    return _build(raw, path)


#: Keys that hold a password typed into the file: refused (the file is not a secret store).
#: A pattern, compiled on first use (by ``re``'s cache): most runs have no extra keys.
_INLINE_SECRET = r"^(pass|passwd|password|secret)$|_(password|secret)$"

def refuse_inline_password(section: ServiceConfig, account: str | None = None) -> None:
    """Refuse a service section holding a password (``password = ...``) before a login.

    Raises:
        ConfigError: a password-like key is set (exit 78), with where to put it instead.
    """
    if not section.extra:
        return
    import re

    for key in section.extra:
        if re.search(_INLINE_SECRET, key, re.IGNORECASE):
            where = f"accounts.{account or 'NAME'}.{section.service}"
            raise ConfigError(
                f"{where}: '{key}' in the config file is refused: store the password with "
                f"'mailtool account set-password' (keyring) or set password_command",
                step="configuration",
            )


def warn_if_readable_by_others(path: PathArg) -> None:
    """Log a warning (stderr by default) when group or others may read the config file."""
    try:
        private = is_private(path)
    except OSError:
        return
    if not private:
        import logging  # here: importing it costs every start more than this check

        logging.getLogger(__name__).warning("mailtool: warning: %s is readable by group or others; "
                     "run: chmod 600 %s", path, path)


def is_private(path: PathArg) -> bool:
    """True when no one but the owner can read ``path`` (config files may hold secrets)."""
    mode = os.stat(path).st_mode
    return not mode & 0o077  # stat.S_IRWXG | stat.S_IRWXO
