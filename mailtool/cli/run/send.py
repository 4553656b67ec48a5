"""``mailtool send``'s body: the parsed options -> a ``SendRequest`` -> ``run_send``."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mailtool.cli.context import AppContext
    from mailtool.endpoint import ConnectionOptions


def _split_list(values: tuple[str, ...]) -> list[str]:
    return [v for v in values if v.strip()]


def run(app: AppContext, conn: ConnectionOptions, **kw: Any) -> int:
    """Compose or read the message and deliver it; the exit status."""
    from mailtool.sendcore import SendRequest, run_send

    account = app.account()
    if kw["queue_on_tempfail"] and kw["batch"] is not None:
        from mailtool.errors import UsageError

        raise UsageError("--queue-on-tempfail works on one message, not with --batch")

    if kw["notify"]:
        notify = [n.strip().upper() for n in kw["notify"].split(",") if n.strip()]
    else:
        notify = None
    request = SendRequest(
        recipients=list(kw["recipients"]),
        from_=kw["from_"],
        to=_split_list(kw["to"]),
        cc=_split_list(kw["cc"]),
        bcc=_split_list(kw["bcc"]),
        subject=kw["subject"],
        body_text=kw["body_text"],
        body_file=kw["body_file"],
        html_file=kw["html_file"],
        attach=list(kw["attach"]),
        headers=list(kw["headers"]),
        from_headers=kw["from_headers"],
        envelope_from=kw["envelope_from"],
        full_name=kw["full_name"],
        smarthost=kw["smarthost"],
        dns_server=kw["dns_server"],
        notify=notify,
        ret=kw["ret"],
        envid=kw["envid"],
        use_chunking=not kw["no_chunking"],
        dry_run=kw["dry_run"],
        batch=kw["batch"],
        conn=conn,
        verbose=app.verbose,
        quiet=app.quiet,
        json=app.json,
        timeout=app.timeout,
        account=account,
        transcript=app.transcript(),
        queue_on_tempfail=kw["queue_on_tempfail"],
        bounce_to=kw["bounce_to"] or (account.get("bounce_to") if account else None),
    )
    return run_send(request, sys.stdin.buffer, sys.stdout, sys.stderr)
