"""``mailtool imap-sync``: mirror IMAP folders into a Maildir++ tree, incrementally."""

from __future__ import annotations

from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.complete import complete_folders
from mailtool.cli.options import connection_options, output_options


@click.command(
    "imap-sync",
    epilog="""\b
Examples:
  mailtool imap-sync --account work --maildir ~/Mail/work     # every folder
  mailtool imap-sync --maildir ~/Mail/work INBOX Sent          # just these
  mailtool imap-sync --maildir ~/Mail/work --exclude Trash --exclude 'Junk*'
  mailtool imap-sync --maildir ~/Mail/work --dry-run      # change nothing

Layout (Maildir++, as Dovecot and mbsync lay it out): INBOX is DIR itself, folder
"Lists/python" is DIR/.Lists.python; names are stored as UTF-8; '.', '/', '%', '~'
and control characters inside a level are written %XX, so no folder name can reach
outside DIR. Messages are the bytes the server sent, with LF line ends as in every
Maildir. Server flags map to Maildir flags: \\Seen S, \\Answered R, \\Flagged F,
\\Deleted T, \\Draft D.

The server is never changed (folders are opened read-only, bodies fetched with
BODY.PEEK). A run that would delete a whole local folder or more than
--max-delete-share of it stops that folder (exit 65) unless --allow-mass-delete.
Exit 75 means "try again later": everything stored so far is kept and recorded.""",
)
@connection_options
@click.argument("folders", nargs=-1, shell_complete=complete_folders)
@click.option("--maildir", type=click.Path(file_okay=False), metavar="DIR",
              help="Root of the local Maildir++ tree (or the account's imap.maildir).")
@click.option("--include", multiple=True, metavar="GLOB", help="Only folders matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip folders matching (repeat).")
@click.option("--dry-run", is_flag=True, help="Show what would be fetched, changed, deleted.")
@click.option("--keep-deleted", is_flag=True,
              help="Keep local copies of messages expunged on the server.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Allow deleting a whole folder or more than --max-delete-share of it.")
@click.option("--max-delete-share", type=click.FloatRange(0, 1), default=0.25,
              show_default=True, help="Largest share of a folder one run may delete.")
@output_options
def command(app: AppContext, **params: Any) -> int:
    """Mirror IMAP folders into a Maildir tree (server -> local), incrementally."""
    from mailtool.cli.run.imap_sync import run  # the parameters are declared there, typed

    return run(app, **params)
