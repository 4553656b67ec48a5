"""Atomic, durable file replacement: write a temp file, fsync it, rename, fsync the directory.

Paths may be ``str`` or ``os.PathLike``; nothing here imports pathlib, and json only when a
JSON file is written or read through ``json`` (``json_line`` covers the plain documents the
outbox writes on the send path without it).
"""

from __future__ import annotations

import os

from mailtool.errors import CantCreateError, ConfigError

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail imports neither typing nor pathlib.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    PathArg: TypeAlias = "str | os.PathLike[str]"


def fsync_file(path: PathArg) -> None:
    """Make the data of the file at ``path`` durable (written earlier, maybe by others)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: PathArg) -> None:
    """Make a rename or create inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: PathArg, data: bytes, *, mode: int = 0o600, durable: bool = True,
                 sync_dir: bool = True, before_replace: Callable[[], None] | None = None
                 ) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    ``durable``: fsync the new file before the rename and the directory after it.
    ``sync_dir=False`` leaves out the directory fsync only: after a power loss the path
    then holds the old file or the new one, whole either way (for state that a rerun can
    rebuild from the old file).
    ``before_replace`` runs once the new file is written (and fsynced), right before it
    replaces the old one: e.g. to wait for other writes the new file must not outlive;
    whatever it raises propagates, and the old file stays.

    Raises:
        CantCreateError: the directory cannot be created or written.
    """
    name = os.fspath(path)
    parent, base = os.path.split(name)
    tmp = os.path.join(parent, f".{base}.{os.getpid()}.tmp")
    try:
        if parent:
            os.makedirs(parent, exist_ok=True)
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
        if before_replace is not None:
            try:
                before_replace()
            except BaseException:
                os.unlink(tmp)
                raise
        os.replace(tmp, name)
        if durable and sync_dir:
            fsync_dir(parent or ".")
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CantCreateError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_json(path: PathArg, data: Any, *, durable: bool = True) -> None:
    """``atomic_write`` of a JSON document (compact, sorted keys, newline at the end)."""
    import json

    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), durable=durable)


def read_json(path: PathArg, default: Any = None) -> Any:
    """Read a JSON state file; a missing file gives ``default``.

    Raises:
        ConfigError: the file exists but is not valid JSON (we never guess over state).
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise CantCreateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    import json

    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"state file {path} is corrupt: {exc}; move it away to rebuild") from exc


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


def _json_str(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'  # the usual case: nothing to escape
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c)
                         for c in text) + '"'


def _json_value(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif type(value) is int:
        out.append(int.__repr__(value))
    elif type(value) is float and value - value == 0.0:  # finite
        out.append(float.__repr__(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _json_value(item, out)
        out.append("]")
    elif isinstance(value, dict) and all(type(k) is str for k in value):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(_json_str(key))
            out.append(":")
            _json_value(value[key], out)
        out.append("}")
    else:
        raise TypeError(type(value).__name__)


def json_line(data: Any) -> bytes:
    """``data`` as one line of JSON plus a newline, in UTF-8: the same text as
    ``json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))``.

    Written here for the plain documents of the send path (str, int, float, bool, None,
    lists and str-keyed dicts), so that spooling a message does not import json (about
    3 ms of every ``mailtool-sendmail`` start); anything else goes through json.
    """
    out: list[str] = []
    try:
        _json_value(data, out)
    except TypeError:
        import json

        return (json.dumps(data, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":")) + "\n").encode()
    out.append("\n")
    return "".join(out).encode()
