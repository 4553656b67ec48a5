"""``mailtool send``: compose or read a message and deliver it; report every recipient."""

from __future__ import annotations

from typing import Any

import click

from mailtool.cli.app import AppContext
from mailtool.cli.options import connection_options, output_options
from mailtool.endpoint import ConnectionOptions


@click.command("send")
@click.argument("recipients", nargs=-1)
@click.option("--from", "from_", metavar="ADDR", help="From: header (and envelope sender).")
@click.option("--to", multiple=True, metavar="ADDR", help="To: (repeatable, comma lists).")
@click.option("--cc", multiple=True, metavar="ADDR", help="Cc: (repeatable).")
@click.option("--bcc", multiple=True, metavar="ADDR", help="Bcc: envelope only (repeatable).")
@click.option("--subject", help="Subject.")
@click.option("--body", "body_text", metavar="TEXT", help="Text body.")
@click.option("--body-file", metavar="FILE", help="Text body from FILE ('-': stdin).")
@click.option("--html", "html_file", metavar="FILE", help="HTML alternative from FILE.")
@click.option("--attach", multiple=True, metavar="FILE", help="Attach FILE (repeatable).")
@click.option("--header", "headers", multiple=True, metavar="'Name: value'",
              help="Extra header (repeatable).")
@click.option("-t", "from_headers", is_flag=True,
              help="Recipients from To/Cc/Bcc of the message read on stdin.")
@click.option("-f", "envelope_from", metavar="ADDR", help="Envelope sender (MAIL FROM).")
@click.option("-F", "full_name", metavar="NAME", hidden=True)
@click.option("-i", "ignore_dots", is_flag=True, help="Accepted (sendmail): dots are fine.")
@click.option("-o", "sendmail_opts", multiple=True, hidden=True, metavar="OPT",
              help="sendmail -oX options (-oi, -oem, ...), accepted and ignored.")
@click.option("--smarthost", metavar="HOST[:PORT]", help="Relay through this server.")
@click.option("--dns-server", metavar="IP[:PORT]", help="Resolve MX with this server.")
@click.option("--notify", metavar="LIST", help="DSN NOTIFY: never or success,failure,delay.")
@click.option("--ret", type=click.Choice(["full", "hdrs"], case_sensitive=False),
              help="DSN RET.")
@click.option("--envid", metavar="ID", help="DSN ENVID.")
@click.option("--no-chunking", is_flag=True, help="Use DATA even when BDAT is offered.")
@click.option("--dry-run", is_flag=True, help="Show routes, envelope and headers; send nothing.")
@click.option("--queue-on-tempfail", is_flag=True,
              help="Keep what fails temporarily in the outbox (exit 0); see 'queue'.")
@click.option("--bounce-to", metavar="ADDR",
              help="Mail a failure report for permanent failures to ADDR.")
@click.option("--batch", is_flag=False, flag_value="-", default=None, metavar="[MAILDIR]",
              help="Send many messages: an mbox on stdin, or the messages of a Maildir.")
@connection_options
@output_options
def command(app: AppContext, conn: ConnectionOptions, **kw: Any) -> int:
    """Compose a message from options, or read one on stdin, and deliver it.

    Without --smarthost (or an account's smtp section) each recipient's domain
    is delivered to directly, MX host after MX host.

    \b
    Examples:
      mailtool send --from me@example.org --to ops@example.org \\
          --subject 'backup done' --body-file report.txt
      printf 'Subject: hi\\n\\nhello\\n' | \\
          mailtool send -f me@example.org you@example.org
      mailtool send --batch < outgoing.mbox
      mailtool send --queue-on-tempfail -t < report.eml   # 4xx: queued, exit 0
    """
    from mailtool.cli.run.send import run

    return run(app, conn, **kw)
