"""The folder-name cache for shell completion: ``cache_dir()/folders/<account>.json``.

Written by ``imap-list`` (and ``imap-sync``) after a successful LIST; read by
``mailtool.cli.complete``. A cache is a convenience: failing to write it never fails the
command that tried.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: imap-sync imports this on every run
if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path
    from typing import Any

#: Most folder names kept (completion on a server with more is not useful anyway).
MAX_FOLDERS = 10_000
_KEYS = ("delimiter", "name", "special_use")  # sorted, as write_json writes them


def _cache_file(account: str) -> str:
    from mailtool.config import cache_dir_str

    safe = account.replace(os.sep, "_").replace("\0", "_")
    if safe in (".", ".."):
        safe = safe.replace(".", "_")
    return os.path.join(cache_dir_str(), "folders", f"{safe}.json")


def folder_cache_path(account: str) -> Path:
    """Where the folder names of ``account`` live (one file name, no path traversal)."""
    from pathlib import Path

    return Path(_cache_file(account))


def _plain(value: Any) -> str | None:
    """``value`` as compact JSON, or None when the json module must do it."""
    if value is None:
        return "null"
    if isinstance(value, str) and value.isprintable():
        # json.dumps(ensure_ascii=False) escapes only these (and control characters)
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def _folders_text(items: list[dict[str, Any]]) -> str | None:
    """The ``"folders":[...]`` part exactly as ``write_json`` writes it (sorted keys, compact),
    built without the json module; None when a value needs the json module."""
    parts = []
    for item in items:
        fields = []
        for key in _KEYS:
            if key in item:
                text = _plain(item[key])
                if text is None:
                    return None
                fields.append(f'"{key}":{text}')
        parts.append("{" + ",".join(fields) + "}")
    return '"folders":[' + ",".join(parts) + "]"


def write_folder_cache(account: str | None, folders: Iterable[dict[str, Any]]) -> Path | None:
    """Save ``[{"name": ..., "delimiter": ..., "special_use": ...}, ...]`` for ``account``.

    A cache that already holds exactly these folders is left alone (a sync every few
    minutes would otherwise rewrite it, and import json to do so, every time).

    Returns the path written (or found current), or None (no account, or the write
    failed: logged only).
    """
    if not account:
        return None
    items: list[dict[str, Any]] = []
    for folder in folders:
        if len(items) >= MAX_FOLDERS:
            break
        items.append({k: folder.get(k) for k in _KEYS if k in folder})
    path = _cache_file(account)
    text = _folders_text(items)
    if text is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        except (OSError, ValueError):
            current = ""
        if current.startswith("{" + text + ',"updated":'):
            return folder_cache_path(account)
    from mailtool.errors import MailtoolError
    from mailtool.store.atomic import write_json

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_json(path, {"updated": int(time.time()), "folders": items}, durable=False)
    except (OSError, MailtoolError) as exc:
        import logging

        logging.getLogger("mailtool.folder_cache").debug(
            "cannot write folder cache %s: %s", path, exc)
        return None
    return folder_cache_path(account)


def write(where: Any, folders: Iterable[Any]) -> Path | None:
    """Convenience form: ``where`` is an account name or an ``Endpoint`` (its account);
    ``folders`` are names or dicts with a ``name``."""
    account = where if isinstance(where, str) or where is None else getattr(where, "account", None)
    items = [f if isinstance(f, dict) else {"name": str(f)} for f in folders]
    return write_folder_cache(account, items)
