"""When to try a deferred message again, and when to give up (RFC 5321 section 4.5.4.1).

The RFC asks a client to wait at least 30 minutes between retries of a failed destination
and to keep trying for at least 4-5 days. A client that queues mail a human just sent (a
greylisting server says "come back in five minutes") does better to start short: the
interval starts at ``first`` (5 minutes) and doubles after each attempt up to ``longest``
(60 minutes, above the RFC's 30), so the retries go 5, 10, 20, 40, 60, 60, ... minutes.
After ``lifetime`` (5 days by default) the message is given up and reported as permanent.

Time is always passed in (``now``, seconds since the epoch): tests move the clock, nobody
sleeps.
"""

from __future__ import annotations

import re

from mailtool.errors import ConfigError
from mailtool.record import record

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {"s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
#: Compiled on first use (by re's cache): most runs parse no duration.
_DURATION = r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$"


def parse_duration(value: object, what: str = "duration") -> float:
    """``300``, ``"300"``, ``"5m"``, ``"12h"``, ``"5d"`` -> seconds.

    Raises:
        ConfigError: anything else (or a negative number).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like 5d or 30m, not {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ConfigError(f"{what}: a duration cannot be negative")
        return float(value)
    match = re.match(_DURATION, str(value), re.IGNORECASE)
    if not match:
        raise ConfigError(f"{what}: expected a duration like 5d or 30m, not {value!r}")
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


@record(frozen=True)
class Schedule:
    """The retry policy of an outbox."""

    first: float = 5 * MINUTE
    longest: float = HOUR
    lifetime: float = 5 * DAY

    def interval(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1 for the first)."""
        steps = max(0, attempts - 1)
        # min() before the power keeps the number small whatever ``attempts`` is.
        return float(min(self.longest, self.first * (2.0 ** min(steps, 32))))

    def next_attempt(self, created: float, attempts: int, now: float) -> float:
        """When to try again after the ``attempts``-th failure at ``now``; never later
        than the give-up time, so the last try happens when it is due."""
        return min(now + self.interval(attempts), created + self.lifetime)

    def expired(self, created: float, now: float) -> bool:
        """True once the message has been queued for ``lifetime``."""
        return now >= created + self.lifetime


def schedule_for(account: object | None, lifetime: float | None = None) -> Schedule:
    """The schedule of an account (``queue_lifetime``, ``retry_first``, ``retry_longest``),
    an explicit ``lifetime`` winning."""
    get = getattr(account, "get", None)
    values: dict[str, float] = {}
    if get is not None:
        for key, attr in (("queue_lifetime", "lifetime"), ("retry_first", "first"),
                          ("retry_longest", "longest")):
            raw = get(key)
            if raw is not None:
                values[attr] = parse_duration(raw, key)
    if lifetime is not None:
        values["lifetime"] = lifetime
    return Schedule(**values)
