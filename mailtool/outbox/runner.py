"""Delivering queued messages: one attempt at an entry, and ``queue run`` over the spool.

An attempt sends the entry's message to its pending recipients through the route the
entry was queued with (the account's smarthosts, a given relay, or each domain's MX), with
the entry lock held. The delivery hook records each transaction's accepted and rejected
recipients in the entry's state as soon as the final reply is in (see spool.py for the
window this leaves). Then the attempt is added to the history and the next attempt set by
the schedule, or, when the queue lifetime is over, the pending recipients are given up.
Permanent failures are reported (and bounced when the entry has ``bounce_to``); an entry
with nothing pending and nothing left to report is removed.

The same ``attempt`` serves ``mailtool-sendmail`` (and ``send --queue-on-tempfail``),
which spool the message first and make the first attempt themselves: a kill -9 at any
point of a send then leaves the message in the outbox, never lost.
"""

from __future__ import annotations

import time

from mailtool.errors import MailtoolError
from mailtool.exitcodes import ExitCode, worst
from mailtool.outbox.spool import EXPIRED, REJECTED
from mailtool.record import field, record

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any, TypeAlias

    from mailtool.outbox.schedule import Schedule
    from mailtool.outbox.spool import Entry, Outbox

    Clock: TypeAlias = Callable[[], float]


@record
class EntryReport:
    """What one look at one entry came to."""

    id: str
    status: str  # delivered | deferred | failed | expired | busy | waiting | error
    outcomes: list[Any] = field(default_factory=list)  # RecipientOutcome of this attempt
    failed: list[dict[str, Any]] = field(default_factory=list)  # given up / rejected now
    pending: list[str] = field(default_factory=list)
    next_attempt: float | None = None
    last_reply: str = ""
    error: str | None = None
    exit_code: int = 0
    bounce: str | None = None  # "sent to X" / "failed: ..."

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "recipients": [o.to_json() for o in self.outcomes],
            "failed": [{k: r.get(k) for k in ("address", "status", "step", "code", "enhanced",
                                               "text", "host", "exit_code")}
                       for r in self.failed],
            "pending": self.pending,
            "next_attempt": self.next_attempt,
            "last_reply": self.last_reply,
            "error": self.error,
            "exit_code": self.exit_code,
            "bounce": self.bounce,
        }


def session_failure(outcome: Any) -> bool:
    """A permanent failure of the session with the relay (login refused, no password,
    TLS broken, service refused at greeting), not an answer about the recipient."""
    step = (outcome.step or "").upper()
    return outcome.status == REJECTED and (
        step in ("GREETING", "EHLO", "HELO", "STARTTLS", "CONFIGURATION", "CONNECT",
                 "PASSWORD LOOKUP")
        or step.startswith("AUTH") or "TLS" in step
        or outcome.exit_code == ExitCode.CONFIG)


def attempt(entry: Entry, deliverer: Any, schedule: Schedule | Callable[[], Schedule],
            clock: Clock = time.time,
            *, bounce_deliverer: Any = None, keep_on_session_failure: bool = False
            ) -> EntryReport:
    """Try the entry's pending recipients once; record everything; remove it when done.

    With ``keep_on_session_failure`` (``queue run``), a permanent failure of the session
    itself (``session_failure``) keeps the recipients pending: mail already taken into the
    outbox must not be dropped because a password is missing or a certificate expired;
    the run reports the error with its exit code instead. The caller holds the entry lock.
    ``schedule`` may be a function that makes it: it is needed only when something stays
    pending (mailtool-sendmail then imports it only for a deferred message).
    """
    from mailtool.compose import Envelope

    report = EntryReport(entry.id, "delivered")
    pending = entry.pending
    if pending:
        def keep(outs: list[Any]) -> list[Any]:
            if not keep_on_session_failure:
                return outs
            return [o for o in outs if not session_failure(o)]

        source = entry.message()
        try:
            result = deliverer.deliver(Envelope(entry.sender, pending), source,
                                       on_outcomes=lambda outs: entry.record(keep(outs),
                                                                             clock()))
            header_block = source.header_block
        finally:
            source.close()
        report.outcomes = list(result.outcomes)
        now = clock()
        # Outcomes the hook did not see (none today; a safety net): record them now.
        entry.record(keep(result.outcomes), now)
        session = [o for o in result.outcomes
                   if keep_on_session_failure and session_failure(o)]
        if session:
            report.error = session[0].one_line()
            report.exit_code = session[0].exit_code
        newly_rejected = {o.recipient.lower() for o in result.outcomes if o.status == REJECTED}
        failed = [r for r in entry.recipients
                  if r["status"] == REJECTED and r["address"].lower() in newly_rejected]
        if entry.pending:
            if callable(schedule):
                schedule = schedule()
            if schedule.expired(entry.created, now):
                entry.add_attempt(result.outcomes, now, None)
                failed += entry.expire(now, "no delivery within the queue lifetime of "
                                       f"{_days(schedule.lifetime)}")
                report.status = "expired"
            else:
                next_at = schedule.next_attempt(entry.created, entry.attempt_count + 1, now)
                entry.add_attempt(result.outcomes, now, next_at)
                report.status = "deferred"
                report.next_attempt = next_at
        else:
            # Every recipient is settled (and on disk): the entry goes, unless a report is due.
            entry.add_attempt(result.outcomes, now, None, save=bool(failed))
            report.status = "failed" if failed else "delivered"
        if failed:
            entry.state["bounce_due"] = [r["address"] for r in failed]
            entry.save()
        report.failed = failed
    else:
        header_block = b""
    report.pending = entry.pending
    report.last_reply = entry.last_reply
    report.exit_code = int(worst(report.exit_code, *(r.get("exit_code") or ExitCode.UNAVAILABLE
                                                     for r in report.failed)))
    _settle(entry, report, bounce_deliverer or deliverer, header_block, clock)
    return report


def _settle(entry: Entry, report: EntryReport, deliverer: Any, header_block: bytes,
            clock: Clock) -> None:
    """Send a due failure report, then remove the entry when nothing is left to do."""
    due = entry.state.get("bounce_due") or []
    bounce_to = entry.state.get("bounce_to")
    if due and bounce_to:
        from mailtool.outbox.bounce import build_report, send_report

        if not header_block:
            source = entry.message()
            header_block = source.header_block
            source.close()
        wanted = {a.lower() for a in due}
        failed = [r for r in entry.recipients if r["address"].lower() in wanted]
        reasons = {r["status"] for r in failed}
        reason = ("it was still undeliverable when the queue lifetime ended"
                  if reasons == {EXPIRED} else "the receiving server refused it")
        text = build_report(sender=entry.sender, failed=failed, header_block=header_block,
                            reason=reason, to=bounce_to, now=clock(),
                            queued_since=entry.created)
        try:
            result = send_report(deliverer, bounce_to, text)
            ok = bool(result.outcomes) and all(o.status == "accepted" for o in result.outcomes)
            report.bounce = (f"report sent to {bounce_to}" if ok else
                             f"report to {bounce_to} failed: "
                             + "; ".join(o.one_line() for o in result.outcomes))
        except MailtoolError as err:
            report.bounce = f"report to {bounce_to} failed: {err.one_line()}"
    if due:
        entry.state["bounce_due"] = []
        entry.save()
    if not entry.pending:
        entry.outbox.remove(entry)


def _days(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} seconds"


@record
class RunReport:
    entries: list[EntryReport] = field(default_factory=list)
    locked_out: bool = False  # another queue run holds the run lock

    @property
    def exit_code(self) -> int:
        return int(worst(*(e.exit_code for e in self.entries))) if self.entries else 0


def _deliverer(options: Any) -> Any:
    """A ``Deliverer``, the delivery stack imported only when an entry is due (cron's
    ``queue run`` mostly finds the outbox empty)."""
    from mailtool.delivery import Deliverer

    return Deliverer(options)


class QueueRunner:
    """Walks an outbox and attempts what is due (everything with ``flush``).

    Args:
        options_for: the ``DeliveryOptions`` of an entry (from its stored route).
        schedule_for: the ``Schedule`` of an entry (from its account).
        clock: seconds since the epoch; tests inject their own.
    """

    def __init__(self, outbox: Outbox, *, options_for: Callable[[Entry], Any],
                 schedule_for: Callable[[Entry], Schedule], clock: Clock = time.time) -> None:
        self.outbox = outbox
        self.options_for = options_for
        self.schedule_for = schedule_for
        self.clock = clock

    def run(self, *, flush: bool = False, ids: Iterable[str] | None = None,
            wait_for_lock: bool = False) -> RunReport:
        report = RunReport()
        run_lock = self.outbox.run_lock()
        # flush / explicit ids go on without the run lock: entry locks keep runs apart.
        if not run_lock.acquire(blocking=wait_for_lock) and not flush and ids is None:
            report.locked_out = True
            return report
        deliverers: dict[str, Any] = {}
        try:
            self.outbox.clean_tmp(self.clock())
            for entry_id in (list(ids) if ids is not None else self.outbox.ids()):
                rep = self._one(entry_id, flush, deliverers, _deliverer)
                if rep is not None:
                    report.entries.append(rep)
        finally:
            for deliverer in deliverers.values():
                deliverer.close()
            run_lock.release()
        return report

    def _one(self, entry_id: str, flush: bool, deliverers: dict[str, Any],
             factory: Any) -> EntryReport | None:
        import json

        entry = self.outbox.load(entry_id)
        if entry is None:
            return None
        lock = entry.lock()
        try:
            if not lock.acquire():
                return EntryReport(entry_id, "busy", pending=entry.pending)
        except FileNotFoundError:
            return None  # delivered and removed by someone else meanwhile
        try:
            entry = self.outbox.load(entry_id)  # what the last holder left
            if entry is None:
                return None
            if entry.pending and not flush and entry.next_attempt > self.clock():
                return EntryReport(entry_id, "waiting", pending=entry.pending,
                                   next_attempt=entry.next_attempt,
                                   last_reply=entry.last_reply)
            try:
                key = json.dumps([entry.state.get("account"), entry.state.get("route")],
                                 sort_keys=True)
                if key not in deliverers:
                    deliverers[key] = factory(self.options_for(entry))
                return attempt(entry, deliverers[key], self.schedule_for(entry), self.clock,
                               keep_on_session_failure=True)
            except MailtoolError as err:
                # Not the recipients' fault (configuration, spool I/O): keep the entry.
                return EntryReport(entry_id, "error", pending=entry.pending,
                                   error=err.one_line(), exit_code=int(err.exit_code),
                                   next_attempt=entry.next_attempt)
        finally:
            lock.release()
