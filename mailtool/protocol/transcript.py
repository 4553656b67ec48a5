"""Transcript of a session: what each side said, when, with secrets redacted at the source.

The session that sends a credential tells the transport so (``log_as``); nothing here
pattern-matches afterwards. Hooks receive ``TranscriptEntry`` values; the CLI renders them.
"""

from __future__ import annotations

import time

from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: typing is not imported by mailtool-sendmail at all.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal, TypeAlias

    Direction: TypeAlias = Literal["C", "S", "*"]  # client, server, a note (connect, TLS...)
    Hook: TypeAlias = Callable[["TranscriptEntry"], None]


@record(frozen=True, slots=True)
class TranscriptEntry:
    direction: Direction
    elapsed_ms: float
    data: bytes


@record
class Transcript:
    """Collects entries and passes each to the hooks; keeps at most ``max_entries``."""

    hooks: list[Hook] = field(default_factory=list)
    keep: bool = True
    max_entries: int = 10000
    entries: list[TranscriptEntry] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)

    def record(self, direction: Direction, data: bytes) -> None:
        entry = TranscriptEntry(direction, (time.monotonic() - self.start) * 1000.0, data)
        if self.keep and len(self.entries) < self.max_entries:
            self.entries.append(entry)
        for hook in self.hooks:
            hook(entry)

    def note(self, text: str) -> None:
        self.record("*", text.encode("utf-8", "replace"))
