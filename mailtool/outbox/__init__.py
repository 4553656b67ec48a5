"""The outbox: durable store-and-forward for mail that could not go out yet.

``mailtool-sendmail`` (and ``send --queue-on-tempfail``) write each message to the spool
before the first attempt (spool.py), try it (runner.attempt), and leave it there only for
the recipients deferred by a temporary failure (4xx, timeout, connection lost, every
relay or MX down); ``mailtool queue run`` tries again on the RFC 5321 schedule
(schedule.py), under locks (lock.py), and gives up after the queue lifetime with a report
(bounce.py). rewrite.py fixes local senders and recipients of system mail.

This module is the glue between a send request and the spool: where an entry's route comes
from and how a queued entry becomes delivery options again.
"""

from __future__ import annotations

import os
import time

from mailtool.errors import ConfigError
from mailtool.outbox.spool import Entry, Outbox, default_path

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailtool.outbox.schedule import Schedule

__all__ = [
    "Entry",
    "Outbox",
    "Schedule",
    "default_path",
    "outbox_for",
    "request_for_entry",
    "route_of",
    "schedule_for_entry",
]


def outbox_for(account: Any = None) -> Outbox:
    return Outbox(default_path(account))


def route_of(req: Any) -> dict[str, Any]:
    """What an entry keeps of a send request to deliver the same way later (no secrets:
    passwords are looked up again at each attempt)."""
    from mailtool.endpoint import ConnectionOptions
    from mailtool.record import as_dict

    conn = req.conn or ConnectionOptions()
    return {
        "smarthost": req.smarthost,
        "conn": as_dict(conn),
        "dns_server": req.dns_server,
        "notify": req.notify,
        "ret": req.ret,
        "envid": req.envid,
        "use_chunking": req.use_chunking,
    }


def request_for_entry(entry: Entry, config: Any, *, timeout: float = 60.0,
                      transcript: Any = None, verbose: int = 0) -> Any:
    """The ``SendRequest`` an entry was queued with (its account read from ``config`` now).

    Raises:
        ConfigError: the entry's account is no longer configured.
    """
    from mailtool.endpoint import ConnectionOptions
    from mailtool.record import field_names
    from mailtool.sendcore import SendRequest

    route = entry.state.get("route") or {}
    name = entry.state.get("account")
    account = None
    if name:
        account = config.accounts.get(name)
        if account is None:
            raise ConfigError(f"queued message {entry.id} is for account {name!r}, which is "
                              "no longer configured", step="outbox")
    fields = set(field_names(ConnectionOptions))
    conn = ConnectionOptions(**{k: v for k, v in (route.get("conn") or {}).items()
                                if k in fields})
    return SendRequest(
        smarthost=route.get("smarthost"), conn=conn, dns_server=route.get("dns_server"),
        notify=route.get("notify"), ret=route.get("ret"), envid=route.get("envid"),
        use_chunking=bool(route.get("use_chunking", True)), timeout=timeout,
        account=account, transcript=transcript, verbose=verbose,
    )


def schedule_for_entry(entry: Entry, config: Any, lifetime: float | None = None) -> Schedule:
    from mailtool.outbox.schedule import schedule_for

    name = entry.state.get("account")
    account = config.accounts.get(name) if name else None
    return schedule_for(account, lifetime)


def clock() -> float:
    """Now, in seconds since the epoch; ``$MAILTOOL_NOW`` pretends (for tests of the
    schedule through the real CLI: nobody sleeps for five days)."""
    fake = os.environ.get("MAILTOOL_NOW")
    if fake:
        try:
            return float(fake)
        except ValueError:
            raise ConfigError(f"MAILTOOL_NOW={fake!r} is not a number of seconds") from None
    return time.time()


def __getattr__(name: str) -> object:
    """``Schedule`` on first use: a send that settles at once never needs the schedule."""
    if name == "Schedule":
        from mailtool.outbox.schedule import Schedule

        return Schedule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
