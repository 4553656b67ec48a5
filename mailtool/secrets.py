"""Where passwords come from, in order: keyring, ``password_command``, ``MAILTOOL_PASSWORD``,
a prompt on a terminal. Passwords never come from the command line.

A missing or broken keyring backend (usual on servers) is not an error when another source
works; when nothing works the message lists every source tried and why it gave nothing.
"""

from __future__ import annotations

import os
import sys

from mailtool.errors import AuthError
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

KEYRING_SERVICE = "mailtool"
ENV_VAR = "MAILTOOL_PASSWORD"
#: A password command gets this long before we give up on it.
COMMAND_TIMEOUT = 60.0


@record
class PasswordLookup:
    """The outcome of a lookup: the secret (or None) and what each source said."""

    password: str | None = None
    source: str | None = None
    tried: list[str] = field(default_factory=list)


def _from_keyring(account: str) -> tuple[str | None, str]:
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:
        return None, "keyring: not installed"
    try:
        value = keyring.get_password(KEYRING_SERVICE, account)
    except NoKeyringError:
        return None, "keyring: no backend available"
    except (KeyringError, RuntimeError, OSError) as exc:
        return None, f"keyring: {exc.__class__.__name__}"
    if value is None:
        return None, f"keyring: no entry for service {KEYRING_SERVICE!r}, account {account!r}"
    return value, "keyring"


def _from_command(command: str) -> tuple[str | None, str]:
    import subprocess  # here: only a password_command needs it

    try:
        proc = subprocess.run(
            command,
            shell=True,  # the user's own command line from their own config file
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return None, f"password_command: timed out after {COMMAND_TIMEOUT:g} s"
    except OSError as exc:
        return None, f"password_command: {exc.strerror}"
    if proc.returncode != 0:
        return None, f"password_command: exited with status {proc.returncode}"
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        return None, "password_command: printed nothing"
    return lines[0], "password_command"


def lookup_password(
    account: str | None,
    *,
    password_command: str | None = None,
    prompt: str | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] | None = None,
) -> PasswordLookup:
    """Find a password, trying each source in order; record why each one failed."""
    result = PasswordLookup()
    if account:
        value, note = _from_keyring(account)
        if value is not None:
            result.password, result.source = value, note
            return result
        result.tried.append(note)
    if password_command:
        value, note = _from_command(password_command)
        if value is not None:
            result.password, result.source = value, note
            return result
        result.tried.append(note)
    env = os.environ.get(ENV_VAR)
    if env:
        result.password, result.source = env, ENV_VAR
        return result
    result.tried.append(f"{ENV_VAR}: not set")
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if interactive:
        if ask is None:
            import getpass

            ask = getpass.getpass
        value = ask(prompt or "Password: ")
        if value:
            result.password, result.source = value, "prompt"
            return result
        result.tried.append("prompt: empty answer")
    else:
        result.tried.append("prompt: no terminal")
    return result


def require_password(account: str | None, **kwargs: object) -> str:
    """Like ``lookup_password`` but raise ``AuthError`` listing the sources tried."""
    found = lookup_password(account, **kwargs)  # type: ignore[arg-type]
    if found.password is None:
        raise AuthError(
            "no password found (" + "; ".join(found.tried) + ")",
            step="password lookup",
            hint="store one with 'mailtool account set-password NAME', set password_command,"
            f" or export {ENV_VAR}",
        )
    return found.password
