"""Add, replace and remove accounts in the TOML config without disturbing the rest of it.

The standard library reads TOML but cannot write it, and a round trip through a writer
would lose the user's comments and order anyway. So the file is edited as text:

* a new account is rendered as ``[accounts.NAME]`` (+ one table per service) and appended;
* an account is removed by deleting exactly the lines of its tables: each table runs from
  its header (with the comment lines directly above it) to the next table's comments;
* ``default_account`` is set by replacing that one line, or inserting it before the first
  table.

A small scanner finds the table headers: it follows strings (also multi-line ones) and
brackets, so ``[`` inside an array or a string never looks like a header. After every edit
the new text is parsed again and compared with what we meant to do (the account is gone, or
equals what was asked, and every other account is unchanged); a file we cannot edit safely
(for example an account written as dotted keys) is left alone with a clear error.

Files are written with ``atomic_write`` (mode 0600) through any symlink. Passwords are never
written: they belong in the keyring or a ``password_command``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mailtool.config import SERVICES, TLS_WORDS, Config, default_config_path, parse_config
from mailtool.errors import ConfigError, UsageError
from mailtool.record import field, record
from mailtool.store.atomic import atomic_write

#: Account names: what a keyring entry, a state file name and a shell word can all hold.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
#: Service keys ``account add`` writes, in the order they are written.
SERVICE_KEYS = ("host", "port", "tls", "user", "auth", "password_command", "ca_file", "insecure")
#: Keys whose values are never shown (a password put in the file by hand, tokens).
_SECRET_KEY = re.compile(r"(?i)(passw(or)?d|secret|token|pass$)")
#: A config file is small; anything larger is not one we should be rewriting.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def check_name(name: str) -> str:
    """Raises: UsageError when ``name`` is not a usable account name."""
    if not NAME_RE.match(name):
        raise UsageError(
            f"bad account name {name!r}: use letters, digits and _ . @ + - (up to 64)"
        )
    return name


def is_secret_key(key: str) -> bool:
    """True for keys whose values must never be printed (``password_command`` is fine)."""
    return key != "password_command" and bool(_SECRET_KEY.search(key))


@record
class AccountSpec:
    """What ``account add`` writes: account-level settings and one table per service."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        """Raises: UsageError for values the config loader would refuse, or secrets."""
        check_name(self.name)
        for service, table in self.services.items():
            if service not in SERVICES:
                raise UsageError(f"unknown service {service!r} (one of {', '.join(SERVICES)})")
            if "tls" in table and table["tls"] not in TLS_WORDS:
                raise UsageError(f"{service}: tls must be one of {', '.join(TLS_WORDS)}")
            if "port" in table and not 0 < int(table["port"]) < 65536:
                raise UsageError(f"{service}: port {table['port']} out of range")
            for key in table:
                if is_secret_key(key):
                    raise UsageError(
                        f"{service}.{key}: secrets are not written to the config file;"
                        " use 'mailtool account set-password' or password_command"
                    )
        for key in self.settings:
            if is_secret_key(key) or key in SERVICES:
                raise UsageError(f"{key}: not an account setting")


# --- TOML text: rendering ------------------------------------------------------------


def toml_key(key: str) -> str:
    """A bare key when possible, else a basic string."""
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the config")


def render_account(spec: AccountSpec) -> str:
    """The TOML tables of one account, ending with a newline."""
    name = toml_key(spec.name)
    lines = [f"[accounts.{name}]"]
    for key, value in spec.settings.items():
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for service in SERVICES:
        table = spec.services.get(service)
        if not table:
            continue
        lines.append("")
        lines.append(f"[accounts.{name}.{service}]")
        ordered = [k for k in SERVICE_KEYS if k in table] + [
            k for k in table if k not in SERVICE_KEYS
        ]
        for key in ordered:
            lines.append(f"{toml_key(key)} = {toml_value(table[key])}")
    return "\n".join(lines) + "\n"


# --- TOML text: scanning -------------------------------------------------------------


@record(frozen=True)
class Header:
    """A table header found in the text: its line and its key path."""

    line: int
    keys: tuple[str, ...]
    array: bool


@record
class _Scan:
    headers: list[Header]
    #: Lines that are only whitespace and/or a comment (outside any multi-line value).
    trivia: set[int]
    #: Top-level ``default_account = ...`` line and the column where its comment starts.
    default_line: int | None = None
    default_comment: str = ""


def _parse_key_path(text: str) -> tuple[tuple[str, ...], int]:
    """Parse a dotted key at the start of ``text``; return (keys, characters used)."""
    keys: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            j = i + 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    # Parse the escape with tomllib itself rather than re-implementing it.
                    esc_end = j + 2
                    if text[j + 1] == "u":
                        esc_end = j + 6
                    elif text[j + 1] == "U":
                        esc_end = j + 10
                    buf.append(tomllib.loads(f'k = "{text[j:esc_end]}"')["k"])
                    j = esc_end
                else:
                    buf.append(text[j])
                    j += 1
            keys.append("".join(buf))
            i = j + 1
        elif i < n and text[i] == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise ValueError("unterminated key")
            keys.append(text[i + 1 : j])
            i = j + 1
        else:
            m = re.match(r"[A-Za-z0-9_-]+", text[i:])
            if not m:
                raise ValueError("bad key")
            keys.append(m.group(0))
            i += m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == ".":
            i += 1
            continue
        return tuple(keys), i


def _scan(text: str) -> _Scan:
    """Find table headers and comment-only lines, following strings and brackets."""
    lines = text.split("\n")
    headers: list[Header] = []
    trivia: set[int] = set()
    scan = _Scan(headers, trivia)
    in_ml: str | None = None  # the delimiter of an open multi-line string
    depth = 0  # open [ / { of a value spanning lines
    seen_header = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if in_ml is None and depth == 0:
            if stripped == "" or stripped.startswith("#"):
                trivia.add(number)
                continue
            if stripped.startswith("["):
                array = stripped.startswith("[[")
                body = stripped[2:] if array else stripped[1:]
                try:
                    keys, _used = _parse_key_path(body)
                except (ValueError, tomllib.TOMLDecodeError):
                    keys, _used = (), 0
                headers.append(Header(number, keys, array))
                seen_header = True
                continue
            if not seen_header and re.match(r"\s*default_account\s*=", line):
                scan.default_line = number
        # Walk the characters to follow strings and brackets across lines.
        i, n = 0, len(line)
        while i < n:
            if in_ml is not None:
                end = line.find(in_ml, i)
                if end < 0:
                    if in_ml == '"""':
                        pass  # escapes cannot hide a delimiter at the end of a line
                    break
                if in_ml == '"""':
                    backslashes = 0
                    k = end - 1
                    while k >= i and line[k] == "\\":
                        backslashes += 1
                        k -= 1
                    if backslashes % 2:
                        i = end + 1
                        continue
                i = end + 3
                while i < n and line[i] == in_ml[0]:
                    i += 1  # up to two quotes may close the string content
                in_ml = None
                continue
            ch = line[i]
            if ch == "#":
                if number == scan.default_line:
                    scan.default_comment = line[i:]
                break
            if line.startswith('"""', i) or line.startswith("'''", i):
                in_ml = line[i : i + 3]
                i += 3
                continue
            if ch == '"':
                i += 1
                while i < n and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
                continue
            if ch == "'":
                end = line.find("'", i + 1)
                i = n if end < 0 else end + 1
                continue
            if ch in "[{":
                depth += 1
            elif ch in "]}":
                depth = max(0, depth - 1)
            i += 1
    return scan


def _blocks(text: str) -> tuple[list[str], list[tuple[Header, int, int]]]:
    """Lines of ``text`` and, per table header, the half-open line span of its block.

    A block starts at the comment lines directly above its header (no blank line in
    between) and ends where the next block starts.
    """
    lines = text.split("\n")
    scan = _scan(text)
    starts = []
    for header in scan.headers:
        start = header.line
        while start - 1 in scan.trivia and lines[start - 1].strip().startswith("#"):
            start -= 1
        starts.append(start)
    spans = []
    for index, header in enumerate(scan.headers):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        spans.append((header, starts[index], end))
    return lines, spans


def _is_account_table(keys: tuple[str, ...], name: str) -> bool:
    return len(keys) >= 2 and keys[0] == "accounts" and keys[1] == name


def _finish(lines: list[str]) -> str:
    """Join lines with exactly one newline at the end (the rest of the file is untouched)."""
    while lines and lines[-1].strip() == "":
        lines = lines[:-1]
    return "\n".join(lines) + "\n" if lines else ""


def remove_account_text(
    text: str, name: str, *, keep_lead: bool = False
) -> tuple[str, int | None]:
    """Delete the tables of account ``name``; return (new text, line index where it was).

    With ``keep_lead`` the comment lines above its first table stay (for a replacement).
    """
    lines, spans = _blocks(text)
    drop: set[int] = set()
    first: int | None = None
    for header, start, end in spans:
        if _is_account_table(header.keys, name):
            if first is None and keep_lead:
                start = header.line
            drop.update(range(start, end))
            first = start if first is None else min(first, start)
    if first is None:
        return text, None
    kept = [line for i, line in enumerate(lines) if i not in drop]
    # Where the account was, counted in the kept lines.
    position = sum(1 for i in range(first) if i not in drop)
    return "\n".join(kept), position


def set_default_text(text: str, name: str | None) -> str:
    """Set (or with None remove) the top-level ``default_account`` line."""
    scan = _scan(text)
    lines = text.split("\n")
    if scan.default_line is not None:
        if name is None:
            at = scan.default_line
            del lines[at]
            # Do not leave two blank lines where the line was (the inserted form).
            if at < len(lines) and not lines[at].strip() and (at == 0 or not lines[at - 1].strip()):
                del lines[at]
        else:
            comment = f"  {scan.default_comment}" if scan.default_comment else ""
            lines[scan.default_line] = f"default_account = {toml_string(name)}{comment}"
        return "\n".join(lines)
    if name is None:
        return text
    new = f"default_account = {toml_string(name)}"
    if not scan.headers:
        body = text.rstrip("\n")
        return f"{body}\n{new}\n" if body else new + "\n"
    _lines, spans = _blocks(text)
    start = spans[0][1]
    # After the last top-level key line if there is one, else before the first block.
    top_keys = [i for i in range(start) if i not in scan.trivia]
    if top_keys:
        lines.insert(top_keys[-1] + 1, new)
    else:
        lines[start:start] = [new, ""]
    return "\n".join(lines)


# --- whole-file operations -----------------------------------------------------------


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is {size} bytes: too large to be a mailtool config")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc


def _accounts_raw(config: Config) -> dict[str, Any]:
    raw = config.raw.get("accounts", {})
    return raw if isinstance(raw, dict) else {}


def _spec_as_raw(spec: AccountSpec) -> dict[str, Any]:
    raw: dict[str, Any] = dict(spec.settings)
    for service, table in spec.services.items():
        if table:
            raw[service] = dict(table)
    return raw


def _edit(path: Path, change: Any) -> Config:
    """Read, change, verify and write the file; ``change(text, config) -> (text, check)``.

    The write goes to the symlink's target, so dotfile managers keep their links.
    """
    target = path.resolve() if path.is_symlink() else path
    before = _read(target)
    old = parse_config(before, target)
    after, verify = change(before, old)
    new = parse_config(after, target)
    verify(old, new)
    atomic_write(target, after.encode("utf-8"), mode=0o600)
    return new


def _others_unchanged(old: Config, new: Config, name: str, path: Path) -> None:
    old_raw = {k: v for k, v in _accounts_raw(old).items() if k != name}
    new_raw = {k: v for k, v in _accounts_raw(new).items() if k != name}
    rest_old = {k: v for k, v in old.raw.items() if k not in ("accounts", "default_account")}
    rest_new = {k: v for k, v in new.raw.items() if k not in ("accounts", "default_account")}
    if old_raw != new_raw or rest_old != rest_new:
        raise ConfigError(
            f"{path}: editing account {name!r} would change other settings; nothing written",
            hint="edit the file by hand",
        )


def add_account(
    spec: AccountSpec,
    path: Path | None = None,
    *,
    replace: bool = False,
    make_default: bool = False,
) -> Config:
    """Append (or with ``replace`` rewrite in place) an account; return the new config.

    Raises:
        UsageError: bad name or values, or the account exists and ``replace`` is false.
        ConfigError: the file is broken, or could not be edited without side effects.
        CantCreateError: the file cannot be written.
    """
    spec.check()
    path = path or default_config_path()
    rendered = render_account(spec)

    def change(text: str, old: Config) -> tuple[str, Any]:
        exists = spec.name in _accounts_raw(old)
        if exists and not replace:
            raise UsageError(
                f"account {spec.name!r} already exists in {path}",
                hint="use --replace to overwrite it, or 'mailtool account remove' first",
            )
        position: int | None = None
        if exists:
            text, position = remove_account_text(text, spec.name, keep_lead=True)
        lines = text.split("\n")
        if position is None:
            body = _finish(lines)
            new_text = (body + "\n" if body else "") + rendered
        else:
            lines[position:position] = [*rendered.rstrip("\n").split("\n"), ""]
            new_text = _finish(lines)
        if make_default:
            new_text = set_default_text(new_text, spec.name)

        def verify(old: Config, new: Config) -> None:
            got = _accounts_raw(new).get(spec.name)
            if got != _spec_as_raw(spec):
                raise ConfigError(
                    f"{path}: account {spec.name!r} is also defined in a form this command"
                    " cannot edit (dotted keys?); nothing written",
                    hint="edit the file by hand",
                )
            _others_unchanged(old, new, spec.name, path)

        return new_text, verify

    return _edit(path, change)


def remove_account(name: str, path: Path | None = None) -> tuple[Config, bool]:
    """Delete an account's tables; return (new config, whether it was the default).

    Raises:
        ConfigError: no such account, or it cannot be removed by deleting its tables.
    """
    path = path or default_config_path()
    was_default = False

    def change(text: str, old: Config) -> tuple[str, Any]:
        nonlocal was_default
        if name not in _accounts_raw(old):
            known = ", ".join(sorted(old.accounts)) or "none"
            raise ConfigError(f"no account named {name!r} in {path} (defined: {known})")
        new_text, _position = remove_account_text(text, name)
        if old.default_account == name:
            was_default = True
            new_text = set_default_text(new_text, None)
        new_text = _finish(new_text.split("\n"))

        def verify(old: Config, new: Config) -> None:
            if name in _accounts_raw(new):
                raise ConfigError(
                    f"{path}: account {name!r} is (also) defined with dotted keys, which"
                    " this command cannot remove; nothing written",
                    hint="edit the file by hand",
                )
            _others_unchanged(old, new, name, path)

        return new_text, verify

    return _edit(path, change), was_default


def set_default(name: str, path: Path | None = None) -> Config:
    """Make ``name`` the default account.

    Raises:
        ConfigError: no such account.
    """
    path = path or default_config_path()

    def change(text: str, old: Config) -> tuple[str, Any]:
        if name not in old.accounts:
            raise ConfigError(f"no account named {name!r} in {path}")

        def verify(old: Config, new: Config) -> None:
            if new.default_account != name:
                raise ConfigError(f"{path}: could not set default_account; nothing written")
            _others_unchanged(old, new, "", path)

        return set_default_text(text, name), verify

    return _edit(path, change)


# --- describing accounts (never secrets) ---------------------------------------------


def describe(config: Config, name: str) -> dict[str, Any]:
    """The JSON view of one account: settings and services, secrets hidden.

    Field names are stable: ``name``, ``default``, ``from``, ``settings``, ``services``
    (each ``host``, ``port``, ``tls``, ``user``, ``auth``, ``password_command``,
    ``ca_file``, ``insecure``, ``extra``).
    """
    account = config.accounts[name]
    settings = {k: ("(hidden)" if is_secret_key(k) else v) for k, v in account.settings.items()}
    services: dict[str, Any] = {}
    for service in SERVICES:
        section = account.services.get(service)
        if section is None:
            continue
        services[service] = {
            "host": section.host,
            "port": section.port,
            "tls": section.tls,
            "user": section.user,
            "auth": section.auth,
            "password_command": section.password_command,
            "ca_file": section.ca_file,
            "insecure": section.insecure,
            "extra": _hide(section.extra),
        }
    return {
        "name": name,
        "default": effective_default(config) == name,
        "from": account.settings.get("from"),
        "settings": {k: v for k, v in settings.items() if k != "from"},
        "services": services,
    }


def _hide(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ("(hidden)" if is_secret_key(k) else v) for k, v in values.items()}


def effective_default(config: Config) -> str | None:
    """The account used when ``--account`` is not given (None if none)."""
    if config.default_account:
        return config.default_account
    if len(config.accounts) == 1:
        return next(iter(config.accounts))
    return None


def account_names(text: str) -> Iterator[str]:
    """Account names in a config text, for shell completion (never raises)."""
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return
    accounts = raw.get("accounts")
    if isinstance(accounts, dict):
        yield from (k for k, v in accounts.items() if isinstance(v, dict))
