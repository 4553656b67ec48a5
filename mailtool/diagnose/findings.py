"""The findings model: every check of ``diagnose`` yields ``Finding`` values.

A finding is ok, info (a fact, nothing wrong), warning or failure, with the time the step
took, the raw server reply, and for a failure the knowledge-base explanation and a concrete
next step. Findings are grouped in ``Section``s (DNS, each MX host, each service); a
``Report`` holds the sections and decides the exit code: 0 when nothing is wrong, 1 for
warnings only, otherwise the worst failure's sysexits code.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mailtool.errors import MailtoolError
from mailtool.exitcodes import ExitCode, worst
from mailtool.record import field, record


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"  # a fact worth showing; nothing wrong
    WARNING = "warning"
    FAILURE = "failure"


@record
class Finding:
    """One step's outcome."""

    check: str  # machine name: "spf", "connect", "starttls", ...
    title: str  # for people: "SPF record", "TCP connect"
    status: Status
    detail: str = ""
    elapsed_ms: float | None = None
    reply: str | None = None  # the raw server reply, one line
    explanation: str | None = None  # from the knowledge base
    next_step: str | None = None
    exit_code: ExitCode = ExitCode.OK  # for failures: what it maps to
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 1),
        }
        if self.reply is not None:
            out["reply"] = self.reply
        if self.explanation is not None:
            out["explanation"] = self.explanation
        if self.next_step is not None:
            out["next_step"] = self.next_step
        if self.status is Status.FAILURE:
            out["exit_code"] = int(self.exit_code)
        if self.data:
            out["data"] = self.data
        return out


def failure(check: str, title: str, err: MailtoolError, *,
            elapsed_ms: float | None = None, next_step: str | None = None) -> Finding:
    """A failure finding from a ``MailtoolError``, explained by the knowledge base."""
    from mailtool.protocol.explain import explain_reply
    from mailtool.protocol.replies import Reply

    reply = err.reply if isinstance(err.reply, Reply) else None
    explanation = None
    step = next_step or err.hint
    if reply is not None:
        exp = explain_reply(reply)
        explanation = f"{exp.title} ({exp.severity})"
        step = step or exp.action
    return Finding(
        check, title, Status.FAILURE, detail=err.message, elapsed_ms=elapsed_ms,
        reply=reply.one_line() if reply is not None else None, explanation=explanation,
        next_step=step, exit_code=err.exit_code,
    )


@record
class Section:
    """A group of findings: "DNS", "MX 10 mx1.example.org", "imaps://host"."""

    name: str
    findings: list[Finding] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    @property
    def status(self) -> Status:
        order = [Status.OK, Status.INFO, Status.WARNING, Status.FAILURE]
        return max((f.status for f in self.findings), key=order.index, default=Status.OK)

    def to_dict(self, *, transcripts: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "findings": [f.to_dict() for f in self.findings],
        }
        if transcripts:
            out["transcript"] = self.transcript
        return out


@record
class Report:
    """Everything one ``diagnose`` run found."""

    target: str
    sections: list[Section] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def findings(self) -> Iterator[Finding]:
        for section in self.sections:
            yield from section.findings

    def exit_code(self) -> ExitCode:
        """0 all ok; 1 warnings only; else the worst failure's code."""
        failures = [f.exit_code for f in self.findings() if f.status is Status.FAILURE]
        if failures:
            code = worst(*failures)
            return code if code is not ExitCode.OK else ExitCode.SOFTWARE
        if any(f.status is Status.WARNING for f in self.findings()):
            return ExitCode.WARNING
        return ExitCode.OK

    def to_dict(self, *, transcripts: bool = False) -> dict[str, Any]:
        counts = {s.value: 0 for s in Status}
        for f in self.findings():
            counts[f.status.value] += 1
        return {
            "target": self.target,
            "exit_code": int(self.exit_code()),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "counts": counts,
            "sections": [s.to_dict(transcripts=transcripts) for s in self.sections],
        }


class Timer:
    """Milliseconds since creation (``timer.ms``)."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def ms(self) -> float:
        return (time.monotonic() - self.start) * 1000.0


@contextmanager
def timed() -> Iterator[Timer]:
    yield Timer()
