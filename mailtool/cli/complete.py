"""Dynamic values for shell completion: account names and cached IMAP folder names.

These run on every TAB press, so they read two small local files and nothing else: no
network, and no rich, dnspython or keyring (a test checks the imports). Any problem (no
config, a broken file, no cache yet) completes to nothing rather than printing an error
into the user's command line.

Commands attach them to their parameters::

    @click.option("--account", shell_complete=complete_accounts)
    @click.argument("folder", shell_complete=complete_folders)

Folder names come from ``cache_dir()/folders/<account>.json``, written by ``imap-list`` and
``imap-sync``. The reader accepts a JSON list of names, or an object with a ``folders``
list whose items are names or objects with a ``name``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

#: A config or folder cache larger than this is not read during completion.
MAX_READ = 1024 * 1024


def _read_text(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_READ + 1)
    except OSError:
        return None
    if len(data) > MAX_READ:
        return None
    return data.decode("utf-8", "replace")


def _root_param(ctx: click.Context, name: str) -> Any:
    """A parameter of the root ``mailtool`` group, as parsed so far."""
    root = ctx.find_root()
    return root.params.get(name)


def _config_text(ctx: click.Context) -> str | None:
    from mailtool.config import default_config_path

    given = _root_param(ctx, "config_path")
    path = Path(given) if given else default_config_path()
    return _read_text(path)


def configured_accounts(ctx: click.Context) -> tuple[list[str], str | None]:
    """(account names, default account) from the config file; empty on any problem."""
    import tomllib

    text = _config_text(ctx)
    if not text:
        return [], None
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return [], None
    accounts = raw.get("accounts")
    names = [k for k, v in accounts.items() if isinstance(v, dict)] if isinstance(
        accounts, dict
    ) else []
    default = raw.get("default_account")
    if not isinstance(default, str):
        default = names[0] if len(names) == 1 else None
    return names, default


def complete_accounts(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Account names from the config (``--config`` on the command line is honoured)."""
    names, default = configured_accounts(ctx)
    return [
        CompletionItem(name, help="default account" if name == default else None)
        for name in names
        if name.startswith(incomplete)
    ]


def folder_cache_path(account: str) -> Path:
    """Where imap-list/imap-sync leave the folder names of ``account``."""
    from mailtool.config import cache_dir

    safe = account.replace(os.sep, "_")
    return cache_dir() / "folders" / f"{safe}.json"


def cached_folders(account: str) -> list[str]:
    """Folder names from the cache of ``account`` (empty if none or unreadable)."""
    text = _read_text(folder_cache_path(account))
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    items = data.get("folders") if isinstance(data, dict) else data
    names: list[str] = []
    for item in items if isinstance(items, list) else []:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str):
            names.append(name)
    return names


def complete_folders(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """IMAP folder names of the chosen (or default) account, from the local cache."""
    account = _root_param(ctx, "account_name")
    # A command-level --account (if a command has one) wins over the global one.
    local = ctx.params.get("account_name") or ctx.params.get("account")
    if isinstance(local, str) and local:
        account = local
    if not account:
        _names, account = configured_accounts(ctx)
    if not account:
        return []
    return [CompletionItem(name) for name in cached_folders(account) if name.startswith(incomplete)]
