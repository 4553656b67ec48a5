"""``mailtool pop-fetch``: new POP3 messages into a Maildir, an mbox, an MDA or stdout."""

from __future__ import annotations

from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.convert import parse_size
from mailtool.cli.options import connection_options, output_options


class SizeType(click.ParamType):  # type: ignore[type-arg]
    """``5000``, ``64k``, ``10M``, ``1G`` (powers of 1024): ``convert.parse_size``."""

    name = "BYTES"
    #: The fast path's converter for this type (``convert.CONVERTERS``).
    fast_converter = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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
def command(app: AppContext, **params: Any) -> int:
    """Fetch new mail over POP3, never losing or duplicating a message."""
    from mailtool.cli.run.pop_fetch import run  # the parameters are declared there, typed

    return run(app, **params)
