"""``mailtool queue``: the outbox of mail deferred by temporary failures."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import output_options

if TYPE_CHECKING:
    from mailtool.outbox.runner import RunReport
    from mailtool.outbox.spool import Outbox


def _outbox(app: AppContext) -> Outbox:
    from mailtool.outbox import outbox_for

    return outbox_for(app.account())


def _ago(seconds: float) -> str:
    """``42s``, ``17m``, ``3h05``, ``4d``."""
    seconds = int(max(0.0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"{seconds // 86400}d"


def _when(at: float | None, now: float) -> str:
    if not at:
        return "-"
    if at <= now:
        return "now"
    return "in " + _ago(at - now)


def _stamp(at: float | None) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(at))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """The outbox: mail kept after a temporary failure, retried by 'queue run'.

    mailtool-sendmail (and 'send --queue-on-tempfail') queue mail that a server
    deferred (4xx, timeout, connection lost); 'queue run' retries it on the RFC 5321
    schedule (5, 10, 20, 40 then every 60 minutes) and gives up after the account's
    queue_lifetime (5 days by default), reporting it as a permanent failure.

    \b
    Examples:
      mailtool queue list
      */5 * * * *  mailtool queue run          # crontab: retry what is due
      mailtool queue flush                     # retry everything now
      mailtool queue show 1764260000.4242.9f3a
      mailtool queue drop 1764260000           # an unambiguous id prefix is fine
    """


@command.command("list")
@output_options
def list_(app: AppContext) -> None:
    """List queued messages: id, age, pending recipients, last reply, next attempt.

    \b
    Examples:
      mailtool queue list
      mailtool queue list --json | jq -r '.[].id'
    """
    from mailtool.outbox import clock

    outbox = _outbox(app)
    now = clock()
    rows = [entry.summary(now) for entry in outbox.entries()]
    if app.json:
        from mailtool.cli.render import print_json

        for row in rows:
            row["next_attempt"] = _stamp(row["next_attempt"])
            row["created"] = _stamp(row["created"])
        print_json(rows)
        return
    if not rows:
        if not app.quiet:
            click.echo("outbox is empty")
        return
    from rich.table import Table

    from mailtool.cli.render import console

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("id", "age", "recipients", "tries", "last reply", "next"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(row["id"], _ago(row["age"]), ", ".join(row["recipients"]),
                      str(row["attempts"]), row["last_reply"] or "-",
                      _when(row["next_attempt"], now))
    console().print(table)


@command.command("show")
@click.argument("entry_id", metavar="ID")
@output_options
def show(app: AppContext, entry_id: str) -> None:
    """Show one queued message: envelope, every recipient, attempt history, headers.

    \b
    Examples:
      mailtool queue show 1764260000.4242.9f3a
      mailtool queue show 1764260000 --json
    """
    from mailtool.outbox import clock

    entry = _outbox(app).find(entry_id)
    now = clock()
    source = entry.message()
    headers = source.header_block.decode("utf-8", "replace")
    source.close()
    headers = headers.replace("\r\n", "\n").rstrip("\n")
    if app.json:
        from mailtool.cli.render import print_json

        doc = dict(entry.state)
        doc["headers"] = headers
        doc["age"] = now - entry.created
        print_json(doc)
        return
    out = [f"id:            {entry.id}",
           f"queued:        {_stamp(entry.created)} ({_ago(now - entry.created)} ago)",
           f"size:          {entry.state.get('size')} octets",
           f"envelope from: <{entry.sender}>",
           f"account:       {entry.state.get('account') or '-'}",
           f"next attempt:  {_when(entry.next_attempt, now) if entry.pending else '-'}",
           "recipients:"]
    for rec in entry.recipients:
        last = rec if rec["status"] != "pending" else rec.get("last") or {}
        reply = " ".join(str(x) for x in (last.get("code"), last.get("enhanced"),
                                           last.get("text")) if x)
        out.append(f"  {rec['status']:<9} <{rec['address']}>  {reply}".rstrip())
    out.append(f"attempts ({entry.attempt_count}):")
    for att in entry.attempts:
        out.append(f"  {_stamp(att['at'])}  {att.get('host') or '-'}  "
                   f"accepted={att['accepted']} rejected={att['rejected']} "
                   f"deferred={att['deferred']}  {att.get('reply') or ''}".rstrip())
    out.append("headers:")
    out += ["  " + line for line in headers.split("\n")]
    click.echo("\n".join(out))


@command.command("drop")
@click.argument("entry_id", metavar="ID")
@output_options
def drop(app: AppContext, entry_id: str) -> None:
    """Delete a queued message without sending it.

    \b
    Examples:
      mailtool queue drop 1764260000.4242.9f3a
    """
    from mailtool.errors import TempFailError

    outbox = _outbox(app)
    entry = outbox.find(entry_id)
    with entry.lock() as lock:
        if not lock.acquire():
            raise TempFailError(f"{entry.id} is being delivered right now; try again",
                                step="queue drop")
        outbox.remove(entry)
    if app.json:
        from mailtool.cli.render import print_json

        print_json({"id": entry.id, "dropped": True, "recipients": entry.pending})
    elif not app.quiet:
        click.echo(f"dropped {entry.id} ({', '.join(entry.pending) or 'no recipients'})")


def _run(app: AppContext, *, flush: bool, ids: tuple[str, ...], lifetime: str | None) -> int:
    from mailtool.outbox import clock, request_for_entry, schedule_for_entry
    from mailtool.outbox.runner import QueueRunner
    from mailtool.outbox.schedule import parse_duration
    from mailtool.sendcore import delivery_options

    config = app.config()
    outbox = _outbox(app)
    life = parse_duration(lifetime, "--lifetime") if lifetime else None
    transcript = app.transcript()

    def options_for(entry: Any) -> Any:
        req = request_for_entry(entry, config, timeout=app.timeout, transcript=transcript,
                                verbose=app.verbose)
        return delivery_options(req)

    runner = QueueRunner(outbox, options_for=options_for,
                         schedule_for=lambda e: schedule_for_entry(e, config, life),
                         clock=clock)
    chosen = [outbox.find(i).id for i in ids] if ids else None
    report = runner.run(flush=flush, ids=chosen)
    _print_run(app, report)
    return report.exit_code


def _print_run(app: AppContext, report: RunReport) -> None:
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
                    f"next attempt {_when(rep.next_attempt, now)}")
        elif rep.status == "waiting":
            line = f"{rep.id}: not due ({_when(rep.next_attempt, now)})"
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


@command.command("run")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--lifetime", metavar="DURATION",
              help="Give up after this long in the queue (e.g. 5d, 12h; account: "
                   "queue_lifetime).")
@output_options
def run(app: AppContext, ids: tuple[str, ...], lifetime: str | None) -> int:
    """Retry the queued messages that are due (safe from cron, and twice at once).

    Quiet unless something failed for good: then each recipient given up is
    printed and the exit status says why (69, 67, ...). Deferred again: exit 0.

    \b
    Examples:
      mailtool queue run
      mailtool queue run -v                     # say what happened to each
      mailtool --account work queue run --lifetime 2d
    """
    return _run(app, flush=False, ids=ids, lifetime=lifetime)


@command.command("flush")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--lifetime", metavar="DURATION", help="Give up after this long (e.g. 5d).")
@output_options
def flush(app: AppContext, ids: tuple[str, ...], lifetime: str | None) -> int:
    """Retry every queued message now, due or not.

    \b
    Examples:
      mailtool queue flush
      mailtool queue flush 1764260000.4242.9f3a -v
    """
    return _run(app, flush=True, ids=ids, lifetime=lifetime)
