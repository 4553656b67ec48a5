"""``mailtool queue``: the outbox of mail deferred by temporary failures.

The bodies of ``list``, ``run`` and ``flush`` live in ``cli/run/queue.py``, which the
Click-free fast path calls too (cron's ``queue run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import output_options

if TYPE_CHECKING:
    from mailtool.outbox.spool import Outbox


def _outbox(app: AppContext) -> Outbox:
    from mailtool.cli.run.queue import outbox

    return outbox(app)


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
    from mailtool.cli.run.queue import queue_list

    queue_list(app)


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
    from mailtool.cli.run.queue import ago as _ago
    from mailtool.cli.run.queue import stamp as _stamp
    from mailtool.cli.run.queue import when as _when
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
    from mailtool.cli.run.queue import queue_run

    return queue_run(app, ids=ids, lifetime=lifetime)


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
    from mailtool.cli.run.queue import queue_run

    return queue_run(app, ids=ids, lifetime=lifetime, flush=True)
