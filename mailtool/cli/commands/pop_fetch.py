"""``mailtool pop-fetch``: new POP3 messages into a Maildir, an mbox, an MDA or stdout."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import connection_options, output_options
from mailtool.endpoint import ConnectionOptions

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)[bB]?\s*$")


class SizeType(click.ParamType):  # type: ignore[type-arg]
    """``5000``, ``64k``, ``10M``, ``1G`` (powers of 1024)."""

    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE.match(str(value))
        if not m:
            self.fail(f"{value!r} is not a size like 5000, 64k or 10M", param, ctx)
        factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
        return int(float(m.group(1)) * factor)


@click.command(
    "pop-fetch",
    epilog="""\b
Examples:
  mailtool pop-fetch --account home --maildir ~/Mail/inbox    # keep on server
  mailtool pop-fetch --account home --mbox ~/mbox --delete    # from cron
  mailtool pop-fetch --host pop.example.org --user ann --mda 'procmail -d ann'
  mailtool pop-fetch --account home --stdout --limit 1 --all | less

Only messages whose UIDL this account has not fetched before are taken (--all: every
one). A message is deleted on the server only after it is stored durably and recorded.
Exit 75 means "try again later": everything stored so far is kept and recorded.""",
)
@connection_options
@click.option("--maildir", type=click.Path(file_okay=False), help="Store into this Maildir.")
@click.option("--mbox", type=click.Path(dir_okay=False), help="Append to this mbox file.")
@click.option("--mda", metavar="COMMAND", help="Pipe each message to COMMAND (no shell).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Write to stdout (mbox if several).")
@click.option("--delete", is_flag=True, help="Delete from the server once stored.")
@click.option(
    "--delete-after",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Delete stored messages DAYS days after their first download.",
)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every message, not just new ones.")
@click.option("--limit", type=click.IntRange(min=1), help="Fetch at most N messages.")
@click.option("--max-size", type=SizeType(), help="Skip messages bigger than this (64k, 10M).")
@click.option(
    "--headers-only", is_flag=True, help="With --max-size: take the headers of big messages."
)
@output_options
def command(
    app: AppContext,
    *,
    conn: ConnectionOptions,
    maildir: str | None,
    mbox: str | None,
    mda: str | None,
    to_stdout: bool,
    delete: bool,
    delete_after: float | None,
    fetch_all: bool,
    limit: int | None,
    max_size: int | None,
    headers_only: bool,
) -> int:
    """Fetch new mail over POP3, never losing or duplicating a message."""
    from mailtool.endpoint import check_plaintext_auth, credentials, resolve_endpoint
    from mailtool.errors import UsageError
    from mailtool.retrieve import FetchOptions, fetch

    account = app.account()
    section = account.service("pop3") if account else None
    extra: dict[str, Any] = dict(section.extra) if section else {}
    if not (maildir or mbox or mda or to_stdout):
        maildir = extra.get("maildir")
        mbox = extra.get("mbox")
        mda = extra.get("mda")
    chosen = [x for x in (maildir, mbox, mda, to_stdout or None) if x]
    if len(chosen) != 1:
        raise UsageError(
            "give exactly one destination: --maildir, --mbox, --mda or --stdout"
            + (" (or set one in the account's pop3 section)" if not chosen else "")
        )
    if not (delete or delete_after is not None):
        delete = bool(extra.get("delete", False))
        after = extra.get("delete_after")
        delete_after = float(after) if isinstance(after, int | float) else None
    if headers_only and max_size is None:
        raise UsageError("--headers-only needs --max-size")
    if delete and delete_after is not None:
        raise UsageError("give --delete or --delete-after, not both")
    endpoint = resolve_endpoint("pop3", conn, section, account=account.name if account else None)
    creds = credentials(endpoint)
    destination = _destination(maildir, mbox, mda, to_stdout, limit)
    options = FetchOptions(
        fetch_all=fetch_all,
        limit=limit,
        max_size=max_size,
        headers_only=headers_only,
        delete=delete,
        delete_after_days=delete_after,
    )
    show = sys.stderr.isatty() and not app.quiet and not app.json
    bar = _Bar() if show else None
    try:
        result = fetch(
            endpoint,
            creds,
            destination,
            options,
            timeout=app.timeout,
            transcript=app.transcript(),
            before_secret=lambda tls: check_plaintext_auth(endpoint, tls),
            progress=bar.update if bar else None,
        )
    finally:
        if bar:
            bar.close()
    _report(app, result, show)
    if result.error is not None:
        raise result.error
    return int(result.exit_code)


def _destination(
    maildir: str | None, mbox: str | None, mda: str | None, to_stdout: bool, limit: int | None
) -> Any:
    from pathlib import Path

    from mailtool.store.destinations import (
        MaildirDestination,
        MboxDestination,
        MDADestination,
        StdoutDestination,
    )

    if maildir:
        return MaildirDestination(Path(maildir).expanduser())
    if mbox:
        return MboxDestination(Path(mbox).expanduser())
    if mda:
        return MDADestination(mda)
    return StdoutDestination(as_mbox=limit != 1)


def _report(app: AppContext, result: Any, show: bool) -> None:
    from mailtool.cli.render import note, print_json, warn

    if app.json:
        print_json(result.as_json())
        return
    for text in result.warnings:
        warn(f"warning: {text}")
    for m in result.messages:
        if m.status == "skipped" and not app.quiet:
            note(f"message {m.number} ({m.uidl}) skipped: {m.note}")
    interesting = result.new or result.deleted or result.skipped
    if (app.verbose or show) and not app.quiet and (interesting or app.verbose):
        note(result.summary())


class _Bar:
    """A progress bar on stderr (terminals only), created on first use."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TransferSpeedColumn,
            )

            from mailtool.cli.render import console

            self._progress = Progress(
                BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=console(stderr=True), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("fetching", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
