"""``mailtool imap-list``: the folders of an account, or the messages of one folder."""

from __future__ import annotations

from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.complete import complete_folders
from mailtool.cli.options import connection_options, output_options
from mailtool.endpoint import ConnectionOptions


def _size_type() -> Any:
    from mailtool.cli.commands.pop_fetch import SizeType

    return SizeType()


@click.command(
    "imap-list",
    epilog="""\b
Examples:
  mailtool imap-list --account work                   # folders, roles, counts
  mailtool imap-list INBOX --limit 50                 # newest 50 messages
  mailtool imap-list INBOX --unseen --from alice
  mailtool imap-list Archive --since 2024-01-01 --larger 1M
  mailtool imap-list INBOX --search 'OR FLAGGED KEYWORD $Important' --json

The folder is opened read-only (EXAMINE): listing never changes flags. Filters are
ANDed; --search adds raw IMAP SEARCH criteria as written.""",
)
@connection_options
@click.argument("folder", required=False, shell_complete=complete_folders)
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N messages "
              "(default: a screenful).")
@click.option("--unseen", is_flag=True, help="Only messages without \\Seen.")
@click.option("--flagged", is_flag=True, help="Only \\Flagged messages.")
@click.option("--from", "sender", metavar="TEXT", help="From contains TEXT.")
@click.option("--to", metavar="TEXT", help="To contains TEXT.")
@click.option("--subject", metavar="TEXT", help="Subject contains TEXT.")
@click.option("--since", metavar="DATE", help="Received on or after DATE (YYYY-MM-DD).")
@click.option("--before", metavar="DATE", help="Received before DATE (YYYY-MM-DD).")
@click.option("--larger", type=_size_type(), metavar="SIZE", help="Larger than SIZE (10k, 2M).")
@click.option("--search", "raw", metavar="CRITERIA", help="Raw IMAP SEARCH criteria.")
@output_options
def command(
    app: AppContext,
    *,
    conn: ConnectionOptions,
    folder: str | None,
    limit: int | None,
    unseen: bool,
    flagged: bool,
    sender: str | None,
    to: str | None,
    subject: str | None,
    since: str | None,
    before: str | None,
    larger: int | None,
    raw: str | None,
) -> int:
    """List IMAP folders (with roles and counts), or a folder's messages, newest first."""
    import gc

    gc.set_threshold(100_000, 50, 50)  # short-lived: collect rarely, but still collect
    from mailtool.endpoint import resolve_endpoint
    from mailtool.errors import UsageError
    from mailtool.imap_view import search_criteria
    from mailtool.imapconn import connect_endpoint
    from mailtool.protocol.wire import guard_argument

    filters = (unseen, flagged, sender, to, subject, since, before, larger, raw, limit)
    if folder is None and any(f not in (None, False) for f in filters):
        raise UsageError("message filters need a FOLDER (imap-list INBOX --unseen)")
    for value, what in ((sender, "--from"), (to, "--to"), (subject, "--subject"),
                        (raw, "--search")):
        if value is not None:
            guard_argument(value, what)
    criteria = search_criteria(unseen=unseen, flagged=flagged, sender=sender, to=to,
                               subject=subject, since=since, before=before, larger=larger,
                               raw=raw) if folder is not None else []
    account = app.account()
    section = account.service("imap") if account else None
    endpoint = resolve_endpoint("imap", conn, section, account=account.name if account else None)
    client = connect_endpoint(endpoint, timeout=app.timeout, transcript=app.transcript())
    try:
        if folder is None:
            _folders(app, client, endpoint)
        else:
            _messages(app, client, folder, criteria, limit or _screenful())
        client.logout()
    finally:
        client.close()
    return 0


def _screenful() -> int:
    import shutil

    return max(10, shutil.get_terminal_size((80, 24)).lines - 3)


def _folders(app: AppContext, client: Any, endpoint: Any) -> None:
    from mailtool.cli.render import print_json
    from mailtool.folder_cache import write_folder_cache
    from mailtool.imap_view import list_folders

    rows = list_folders(client)
    write_folder_cache(endpoint.account, rows)
    if app.json:
        print_json({"folders": rows})
        return
    if app.quiet:
        return
    import click as _click

    width = max((len(_leaf(r)) + 2 * r["depth"] for r in rows), default=10)
    for row in rows:
        name = "  " * row["depth"] + _leaf(row)
        counts = ""
        if row["messages"] is not None:
            counts = f"{row['messages']:>7}"
            if row["unseen"]:
                counts += f"  {row['unseen']} unseen"
        elif not row["selectable"]:
            counts = "      -"
        role = row["special_use"] or ""
        _click.echo(f"{_printable(name):<{width}}  {role:<9} {counts}".rstrip())


def _leaf(row: dict[str, Any]) -> str:
    name: str = row["name"]
    delim = row["delimiter"]
    return name.rsplit(delim, 1)[-1] if delim else name


def _printable(text: str) -> str:
    from mailtool.protocol.replies import decode_server_text

    return decode_server_text(text)


def _messages(app: AppContext, client: Any, folder: str, criteria: list[Any], limit: int) -> None:
    from mailtool.cli.render import print_json
    from mailtool.imap_view import list_messages

    listing = list_messages(client, folder, criteria, limit)
    if app.json:
        print_json({
            "folder": listing.folder,
            "uidvalidity": listing.uidvalidity,
            "exists": listing.exists,
            "matched": listing.matched,
            "messages": [row.to_json() for row in listing.rows],
        })
        return
    if app.quiet:
        return
    import click as _click

    for row in listing.rows:
        date = (row.date or "")[:16].replace("T", " ")
        flags = "".join(_FLAG_MARKS.get(f, "") for f in row.flags) or "-"
        size = _human(row.size)
        sender = _printable(row.sender)[:24]
        _click.echo(f"{row.uid:>7}  {date:<16}  {flags:<4} {size:>6}  {sender:<24}  "
                    f"{_printable(row.subject)}".rstrip())
    shown = len(listing.rows)
    if shown < listing.matched:
        _click.echo(f"({shown} of {listing.matched} shown; --limit N for more)", err=True)


_FLAG_MARKS = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Draft": "D",
               "\\Deleted": "T"}


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("", "k", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "" or value >= 10 else f"{value:.1f}{unit}"
        value /= 1024
    return str(size)
