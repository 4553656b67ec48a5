"""``mailtool imap-sync``'s body: choose the folders, sync them, report."""

from __future__ import annotations

import os
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
    folders: tuple[str, ...],
    maildir: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    dry_run: bool,
    keep_deleted: bool,
    allow_mass_delete: bool,
    max_delete_share: float,
) -> int:
    """Mirror IMAP folders into a Maildir tree (server -> local), incrementally."""
    import gc

    gc.set_threshold(100_000, 50, 50)  # short-lived: collect rarely, but still collect
    from mailtool.endpoint import resolve_endpoint
    from mailtool.errors import UsageError
    from mailtool.exitcodes import worst
    from mailtool.imapconn import connect_endpoint

    account = app.account()
    section = account.service("imap") if account else None
    if maildir is None and section is not None:
        configured = section.extra.get("maildir")
        maildir = str(configured) if configured else None
    if not maildir:
        raise UsageError("give --maildir DIR (or set maildir in the account's imap section)")
    # A str, not a Path: the sync engine works on strings (pathlib: ~10 ms of every start).
    root = os.path.expanduser(maildir)
    endpoint = resolve_endpoint("imap", conn, section, account=account.name if account else None)
    show_progress = sys.stderr.isatty() and not app.quiet and not app.json and not dry_run
    # The IMAP client is imported while the server answers the TLS handshake, the sync
    # modules while it checks the password.
    client = connect_endpoint(endpoint, timeout=app.timeout, transcript=app.transcript(),
                              while_connecting=_import_imap, while_waiting=_import_sync)
    try:
        from mailtool.sync.engine import SyncOptions, choose_folders, sync_folders
        from mailtool.sync.source import IMAPSource

        options = SyncOptions(
            dry_run=dry_run,
            keep_deleted=keep_deleted,
            allow_mass_delete=allow_mass_delete,
            max_delete_share=max_delete_share,
            progress=_RichProgress if show_progress else SyncOptions().progress,
        )
        source = IMAPSource(client)
        available = source.folders()
        _write_folder_cache(endpoint, available)
        chosen, missing = choose_folders(available, folders, include, exclude)
        if missing:
            raise UsageError("no such folder on the server: " + ", ".join(missing))
        results = sync_folders(source, root, chosen, options)
        try:
            client.logout()
        except Exception:
            pass
    finally:
        client.close()
    _report(app, results, dry_run)
    return int(worst(*(r.exit_code for r in results)))


def _import_imap() -> None:
    import mailtool.protocol.imap.client  # noqa: F401


def _import_sync() -> None:
    import mailtool.sync.engine
    import mailtool.sync.source  # noqa: F401


def _write_folder_cache(endpoint: Any, available: Any) -> None:
    """Remember the account's folder names for shell completion (never fails the sync)."""
    if not endpoint.account:
        return  # the cache is per account: nothing to write (and nothing to import)
    from mailtool.folder_cache import write_folder_cache

    write_folder_cache(endpoint.account,
                       [{"name": f.name, "delimiter": f.delimiter} for f in available])


def _report(app: AppContext, results: Any, dry_run: bool) -> None:
    from mailtool.cli.render import note, print_json, warn

    if app.json:
        print_json({"dry_run": dry_run, "folders": [r.to_json() for r in results]})
        return
    for r in results:
        if r.status == "error":
            warn(f"{r.error}")
        elif dry_run:
            sys.stdout.write(
                f"{r.folder}: would fetch {len(r.would_fetch)}, change flags of "
                f"{len(r.would_flag)}, delete {len(r.would_delete)}\n")
        elif r.fetched or r.flagged or r.deleted or r.kept or r.rematched:
            parts = [f"fetched {r.fetched}", f"flags {r.flagged}", f"deleted {r.deleted}"]
            if r.kept:
                parts.append(f"kept {r.kept}")
            if r.adopted:
                parts.append(f"recovered {r.adopted}")
            if r.rematched:
                parts.append(f"re-matched {r.rematched} after a UIDVALIDITY change")
            note(f"{r.folder}: " + ", ".join(parts), quiet=app.quiet or not app.verbose)


class _RichProgress:
    """A progress bar per folder on stderr (terminals only)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def start(self, folder: str, total: int, total_bytes: int | None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        from mailtool.cli.render import console

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeRemainingColumn(),
                                  console=console(stderr=True), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(folder, total=total)

    def advance(self, messages: int, nbytes: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, messages)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
