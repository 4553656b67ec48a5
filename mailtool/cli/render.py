"""The one place that decides how things look: JSON for scripts, rich for people, plain
lines for errors. Server text is printed with markup off and control characters escaped.
"""

from __future__ import annotations

import os
import sys

# Not ``typing.TYPE_CHECKING``: the cron commands print through here and must not pay for
# importing typing (nor json, unless they print JSON).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    from mailtool.errors import MailtoolError
    from mailtool.protocol.transcript import TranscriptEntry


def use_color(stream: IO[str] | None = None) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` or ``TERM=dumb``."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") is not None or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def error_line(err: MailtoolError, *, verbose: int = 0) -> None:
    """``mailtool: <step>: <message>: <reply>`` on stderr; the hint under ``-v``."""
    sys.stderr.write(f"mailtool: {err.one_line()}\n")
    if err.hint and verbose > 0:
        sys.stderr.write(f"mailtool: hint: {err.hint}\n")


def warn(message: str) -> None:
    sys.stderr.write(f"mailtool: {message}\n")


def note(message: str, *, quiet: bool = False) -> None:
    """A message for people on stderr (suppressed by ``-q``)."""
    if not quiet:
        sys.stderr.write(f"mailtool: {message}\n")


def print_json(data: Any, *, stream: IO[str] | None = None) -> None:
    """One JSON document (or one JSON line) on stdout."""
    import json

    stream = stream or sys.stdout
    stream.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    stream.flush()


def console(stderr: bool = False) -> Any:
    """A rich ``Console`` for people (imported lazily: rich is slow to import)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    color = use_color(stream)
    return Console(
        file=stream,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        width=None if stream.isatty() else 100,
    )


def transcript_printer(verbose: int) -> Callable[[TranscriptEntry], None]:
    """A transcript hook printing swaks-style lines on stderr.

    ``-v`` shows commands and replies and summarises message data; ``-vv`` shows all.
    """

    from mailtool.protocol.replies import decode_server_text

    marks = {"C": " -> ", "S": "<-  ", "*": " == "}

    def hook(entry: TranscriptEntry) -> None:
        data = entry.data
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        limit = len(lines) if verbose >= 2 else 20
        for line in lines[:limit]:
            text = decode_server_text(line.rstrip(b"\r"))
            sys.stderr.write(f"{entry.elapsed_ms:8.1f} ms{marks[entry.direction]}{text}\n")
        if len(lines) > limit:
            sys.stderr.write(f"{'':11}{marks[entry.direction]}... {len(lines) - limit} more lines\n")

    return hook
