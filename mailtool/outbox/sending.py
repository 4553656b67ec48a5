"""A send through the outbox: spool first, attempt once, keep what was deferred.

Used by ``mailtool-sendmail`` (by default) and ``mailtool send --queue-on-tempfail``. The
message is written to the spool (and locked) before the first connection, so a kill -9 at
any point of the send leaves it queued, never lost; after the attempt the entry holds only
the recipients deferred by a temporary failure, or it is removed. The exit status is 0 when
everything was accepted or queued; permanent failures (5xx, refused login, bad TLS) are
never queued: they are reported and give their exit code.

The fsyncs that protect the spooled copy against a power cut (file, then directory) run
after the attempt and only when the entry is still there: a message the server took needs
none, and what stays queued is durable before anything is reported. A power cut during
the attempt can only lose a message nobody was told had been accepted (the process that
handed it over dies too, before our exit status), exactly as before it was spooled.
"""

from __future__ import annotations

from mailtool.errors import CantCreateError
from mailtool.exitcodes import ExitCode, worst

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any


def send_queued(req: Any, envelope: Any, source: Any, message_id: str | None, options: Any,
                stdout: IO[str], stderr: IO[str]) -> int:
    from mailtool.delivery import DEFERRED, Deliverer, DeliveryResult
    from mailtool.outbox import clock, outbox_for, route_of
    from mailtool.outbox.runner import attempt

    outbox = outbox_for(req.account)
    now = clock()
    try:
        entry, lock = outbox.create(
            source.chunks(), sender=envelope.sender, recipients=envelope.recipients, now=now,
            route=route_of(req), account=req.account.name if req.account else None,
            bounce_to=req.bounce_to, message_id=message_id, hold=True, durable=False)
    except CantCreateError as err:
        # No spool (read-only home, full disk): still try to send, say what is at stake.
        stderr.write(f"{req.prog}: cannot queue ({err.one_line()}); sending without the "
                     "outbox\n")
        return _send_direct(req, envelope, source, message_id, options, stdout, stderr)
    try:
        with Deliverer(options) as deliverer:
            report = attempt(entry, deliverer, lambda: _schedule(req.account), clock)
    finally:
        try:
            entry.make_durable()  # whatever is still queued survives a power cut from here
        finally:
            if lock is not None:
                lock.release()
    result = DeliveryResult(sender=envelope.sender, outcomes=report.outcomes,
                            size=source.size, message_id=message_id)
    deferred = [o for o in report.outcomes if o.status == DEFERRED]
    final = [o for o in report.outcomes if o.status != DEFERRED]
    code = worst(*(o.exit_code for o in final)) if final else ExitCode.OK
    if req.json:
        import json

        doc = result.to_json()
        doc["exit_code"] = int(code)
        doc["queued"] = ({"id": entry.id, "recipients": [o.recipient for o in deferred],
                          "reply": report.last_reply, "next_attempt": report.next_attempt}
                         if deferred else None)
        stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        stdout.flush()
    if req.verbose or any(o.status != "accepted" for o in final):
        from mailtool.delivery import format_outcomes

        shown = DeliveryResult(sender=envelope.sender, outcomes=final if not req.verbose
                               else report.outcomes)
        for line in format_outcomes(shown):
            stderr.write(f"{req.prog}: {line}\n")
    if deferred and report.status == "deferred":
        n = len(deferred)
        stderr.write(f"{req.prog}: queued for {n} recipient{'s' if n != 1 else ''}: "
                     f"{report.last_reply or 'temporary failure'} (queue id {entry.id}; "
                     "mailtool queue run retries)\n")
    if report.bounce:
        stderr.write(f"{req.prog}: {report.bounce}\n")
    return int(code)


def _schedule(account: Any) -> Any:
    from mailtool.outbox.schedule import schedule_for  # only when something is deferred

    return schedule_for(account)


def _send_direct(req: Any, envelope: Any, source: Any, message_id: str | None, options: Any,
                 stdout: IO[str], stderr: IO[str]) -> int:
    from mailtool.delivery import Deliverer
    from mailtool.sendcore import _report

    with Deliverer(options) as deliverer:
        result = deliverer.deliver(envelope, source)
        result.message_id = message_id
        _report(req, result, stdout, stderr)
        if req.bounce_to and any(o.status == "rejected" for o in result.outcomes):
            bounce_now(req, deliverer, envelope, source, result, stderr)
    return int(result.exit_code)


def bounce_now(req: Any, deliverer: Any, envelope: Any, source: Any, result: Any,
               stderr: IO[str]) -> None:
    """A failure report for the rejected recipients of a send that was not queued."""
    from mailtool.errors import MailtoolError
    from mailtool.outbox.bounce import build_report, send_report

    failed = [dict(o.to_json(), address=o.recipient) for o in result.outcomes
              if o.status == "rejected"]
    text = build_report(sender=envelope.sender, failed=failed,
                        header_block=source.header_block,
                        reason="the receiving server refused it", to=req.bounce_to)
    try:
        sent = send_report(deliverer, req.bounce_to, text)
        bad = [o for o in sent.outcomes if o.status != "accepted"]
        if bad:
            stderr.write(f"{req.prog}: failure report to {req.bounce_to} not sent: "
                         f"{bad[0].one_line()}\n")
    except MailtoolError as err:
        stderr.write(f"{req.prog}: failure report to {req.bounce_to} not sent: "
                     f"{err.one_line()}\n")
