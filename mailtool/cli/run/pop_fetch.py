"""``mailtool pop-fetch``'s body: choose the destination and options, fetch, report."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailtool.cli.context import AppContext
    from mailtool.endpoint import ConnectionOptions


def run(
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
    """Fetch new mail over POP3, never losing or duplicating a message; the exit status."""
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
    import os

    from mailtool.store.destinations import (
        MaildirDestination,
        MboxDestination,
        MDADestination,
        StdoutDestination,
    )

    if maildir:
        # A str, not a Path: the Maildir writer works on strings, and pathlib would cost
        # every cron run ~10 ms of start-up here.
        return MaildirDestination(os.path.expanduser(maildir))
    if mbox:
        from pathlib import Path

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
