"""``mailtool queue run`` / ``queue list`` bodies (and the small formatters ``show`` uses).

cron runs ``queue run`` every few minutes, almost always on an empty outbox: then nothing
beyond the spool and its lock is imported (no delivery stack, dns, ssl, json, typing or
pathlib); the delivery stack comes in only when an entry is due.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailtool.cli.context import AppContext
    from mailtool.outbox.runner import RunReport
    from mailtool.outbox.spool import Outbox


def outbox(app: AppContext) -> Outbox:
    from mailtool.outbox import outbox_for

    return outbox_for(app.account())


def ago(seconds: float) -> str:
    """``42s``, ``17m``, ``3h05``, ``4d``."""
    seconds = int(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 86400}d"


def when(at: float | None, now: float) -> str:
    if not at:
        return "-"
    if at <= now:
        return "now"
    return "in " + ago(at - now)


def stamp(at: float | None) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


def queue_list(app: AppContext) -> int:
    """``queue list``: id, age, pending recipients, last reply, next attempt."""
    from mailtool.outbox import clock

    box = outbox(app)
    now = clock()
    rows = [entry.summary(now) for entry in box.entries()]
    if app.json:
        from mailtool.cli.render import print_json

        for row in rows:
            row["next_attempt"] = stamp(row["next_attempt"])
            row["created"] = stamp(row["created"])
        print_json(rows)
        return 0
    if not rows:
        if not app.quiet:
            sys.stdout.write("outbox is empty\n")
            sys.stdout.flush()
        return 0
    from rich.table import Table

    from mailtool.cli.render import console

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("id", "age", "recipients", "tries", "last reply", "next"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(row["id"], ago(row["age"]), ", ".join(row["recipients"]),
                      str(row["attempts"]), row["last_reply"] or "-",
                      when(row["next_attempt"], now))
    console().print(table)
    return 0


def queue_run(app: AppContext, *, ids: tuple[str, ...] = (), lifetime: str | None = None,
              flush: bool = False) -> int:
    """``queue run`` (``flush``: ``queue flush``): retry what is due; the exit status."""
    from mailtool.outbox import clock, request_for_entry, schedule_for_entry
    from mailtool.outbox.runner import QueueRunner

    config = app.config()
    box = outbox(app)
    life = None
    if lifetime:
        from mailtool.outbox.schedule import parse_duration

        life = parse_duration(lifetime, "--lifetime")
    transcript = app.transcript()

    def options_for(entry: Any) -> Any:
        # Only when an entry is due: an empty run never imports the delivery stack.
        from mailtool.sendcore import delivery_options

        req = request_for_entry(entry, config, timeout=app.timeout, transcript=transcript,
                                verbose=app.verbose)
        return delivery_options(req)

    runner = QueueRunner(box, options_for=options_for,
                         schedule_for=lambda e: schedule_for_entry(e, config, life),
                         clock=clock)
    chosen = [box.find(i).id for i in ids] if ids else None
    report = runner.run(flush=flush, ids=chosen)
    print_run(app, report)
    return report.exit_code


def print_run(app: AppContext, report: RunReport) -> None:
    from mailtool.outbox import clock

    if app.json:
        from mailtool.cli.render import print_json

        print_json({"locked_out": report.locked_out,
                    "entries": [e.to_json() for e in report.entries],
                    "exit_code": report.exit_code})
        return
    if report.locked_out:
        if app.verbose:
            sys.stderr.write("mailtool: another queue run is active; nothing to do\n")
        return
    now = clock()
    for rep in report.entries:
        if rep.status == "waiting" and not app.verbose:
            continue
        if rep.status in ("delivered", "deferred", "waiting", "busy") and app.quiet:
            continue
        if rep.status == "delivered":
            line = f"{rep.id}: delivered"
        elif rep.status == "deferred":
            line = (f"{rep.id}: deferred for {len(rep.pending)}: {rep.last_reply or '-'}; "
                    f"next attempt {when(rep.next_attempt, now)}")
        elif rep.status == "waiting":
            line = f"{rep.id}: not due ({when(rep.next_attempt, now)})"
        elif rep.status == "busy":
            line = f"{rep.id}: being delivered by another process"
        elif rep.status == "error":
            line = f"{rep.id}: kept: {rep.error}"
        else:
            line = f"{rep.id}: {rep.status}"
        # Successes only with -v: cron mails whatever a job prints.
        if rep.status in ("delivered", "deferred") and not app.verbose:
            line = ""
        if rep.error and rep.status != "error":
            line = f"{rep.id}: kept: {rep.error}"
        if line:
            sys.stderr.write(f"mailtool: {line}\n")
        for rec in rep.failed:
            reply = " ".join(str(x) for x in (rec.get("code"), rec.get("enhanced"),
                                               rec.get("text")) if x)
            where = f" at {rec['host']}" if rec.get("host") else ""
            sys.stderr.write(f"mailtool: {rep.id}: <{rec['address']}>: {rec['status']}{where}"
                             f": {reply}\n")
        if rep.bounce:
            sys.stderr.write(f"mailtool: {rep.id}: {rep.bounce}\n")
