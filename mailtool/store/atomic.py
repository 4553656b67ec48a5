"""Atomic, durable file replacement: write a temp file, fsync it, rename, fsync the directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mailtool.errors import CantCreateError, ConfigError


def fsync_dir(path: Path) -> None:
    """Make a rename or create inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    Raises:
        CantCreateError: the directory cannot be created or written.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CantCreateError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """``atomic_write`` of a JSON document (compact, sorted keys, newline at the end)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), durable=durable)


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON state file; a missing file gives ``default``.

    Raises:
        ConfigError: the file exists but is not valid JSON (we never guess over state).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise CantCreateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"state file {path} is corrupt: {exc}; move it away to rebuild") from exc
