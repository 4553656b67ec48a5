"""The folder-name cache for shell completion: ``cache_dir()/folders/<account>.json``.

Written by ``imap-list`` (and ``imap-sync``) after a successful LIST; read by
``mailtool.cli.complete``. A cache is a convenience: failing to write it never fails the
command that tried.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("mailtool.folder_cache")

#: Most folder names kept (completion on a server with more is not useful anyway).
MAX_FOLDERS = 10_000


def folder_cache_path(account: str) -> Path:
    """Where the folder names of ``account`` live (one file name, no path traversal)."""
    from mailtool.config import cache_dir

    safe = account.replace(os.sep, "_").replace("\0", "_")
    if safe in (".", ".."):
        safe = safe.replace(".", "_")
    return cache_dir() / "folders" / f"{safe}.json"


def write_folder_cache(account: str | None, folders: Iterable[dict[str, Any]]) -> Path | None:
    """Save ``[{"name": ..., "delimiter": ..., "special_use": ...}, ...]`` for ``account``.

    Returns the path written, or None (no account, or the write failed: logged only).
    """
    if not account:
        return None
    from mailtool.errors import MailtoolError
    from mailtool.store.atomic import write_json

    items: list[dict[str, Any]] = []
    for folder in folders:
        if len(items) >= MAX_FOLDERS:
            break
        items.append(
            {k: folder.get(k) for k in ("name", "delimiter", "special_use") if k in folder}
        )
    path = folder_cache_path(account)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json(path, {"updated": int(time.time()), "folders": items}, durable=False)
    except (OSError, MailtoolError) as exc:
        log.debug("cannot write folder cache %s: %s", path, exc)
        return None
    return path


def write(where: Any, folders: Iterable[Any]) -> Path | None:
    """Convenience form: ``where`` is an account name or an ``Endpoint`` (its account);
    ``folders`` are names or dicts with a ``name``."""
    account = where if isinstance(where, str) or where is None else getattr(where, "account", None)
    items = [f if isinstance(f, dict) else {"name": str(f)} for f in folders]
    return write_folder_cache(account, items)
