"""Explain SMTP, POP3 and IMAP reply codes: meaning, retry or not, what to do, exit code.

The knowledge is data (``explain_data``); this module looks codes up and reads what people
paste: ``550``, ``550 5.1.1``, ``5.7.1``, a whole server reply (single or multi-line, even
inside a bounce such as ``host said: 550 5.1.1 ... (in reply to RCPT TO command)``),
``-ERR [IN-USE] ...``, ``[AUTHENTICATIONFAILED]`` or ``a1 NO [AUTHENTICATIONFAILED] ...``.

Codes nobody registered are explained by their digits: the class and subject of an enhanced
code (RFC 3463 section 2), the first two digits of a basic code (RFC 5321 section 4.2.1).
The exit code always comes from ``replies.exit_code_for``, so ``explain`` and the commands
that fail with that reply agree.

API: ``explain_code(text)``, ``explain_reply(reply)``, ``hint_for(reply)``, ``lookup(code)``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from mailtool.errors import UsageError
from mailtool.exitcodes import ExitCode
from mailtool.protocol.explain_data import (
    CLASSES,
    ENHANCED_CODES,
    IMAP_CODES,
    POP3_CODES,
    SMTP_CODES,
    SUBJECTS,
    Entry,
)
from mailtool.protocol.replies import (
    Reply,
    ReplyParseError,
    decode_server_text,
    exit_code_for,
    parse_pop3_status,
    parse_smtp_reply,
)
from mailtool.record import field, record

Severity = Literal["success", "intermediate", "transient", "permanent", "unknown"]
Protocol = Literal["smtp", "pop3", "imap"]
PartKind = Literal["smtp", "enhanced", "class", "subject", "digits", "pop3", "imap"]

#: Longest pasted text we look at: a reply, not a mailbox.
MAX_PASTE = 64 * 1024

_SMTP_BY_CODE = {e.code: e for e in SMTP_CODES}
_ENH_BY_CODE = {e.code: e for e in ENHANCED_CODES}
_POP3_BY_CODE = {e.code: e for e in POP3_CODES}
_IMAP_BY_CODE = {e.code: e for e in IMAP_CODES}

# RFC 5321 section 4.2.1: the second digit of a basic code.
_CLASS_SEVERITY: dict[str, Severity] = {"2": "success", "4": "transient", "5": "permanent"}
_SECOND_DIGIT = {
    "0": "syntax",
    "1": "information",
    "2": "connections",
    "3": "unspecified",
    "4": "unspecified",
    "5": "mail system",
}
_FIRST_DIGIT: dict[str, tuple[str, Severity]] = {
    "2": ("Positive completion", "success"),
    "3": ("Positive intermediate: the server waits for more", "intermediate"),
    "4": ("Transient negative completion: try again later", "transient"),
    "5": ("Permanent negative completion: do not retry unchanged", "permanent"),
}


@record(frozen=True, slots=True)
class Part:
    """One recognised piece of a reply: a basic code, an enhanced code, a response code."""

    kind: PartKind
    code: str
    title: str
    meaning: str
    standard: str
    known: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "code": self.code,
            "title": self.title,
            "meaning": self.meaning,
            "standard": self.standard,
            "known": self.known,
        }


@record(frozen=True, slots=True)
class Explanation:
    """What a reply means and what to do about it.

    Attributes:
        protocol: which protocol the reply belongs to.
        code / enhanced / resp_code: the codes recognised (None when absent).
        severity: success, intermediate, transient (retry later), permanent, or unknown.
        title: a headline such as ``Bad destination mailbox address``.
        parts: every code explained, most specific last.
        action: what the sender should do.
        step: where in the dialogue it usually appears (or where the paste says it did).
        exit_code: the exit code mailtool uses for this reply.
        exit_codes_by_basic: for an enhanced code given alone, the exit code with each basic
            code the registry associates with it (they can differ: 535 5.7.8 is 77,
            554 5.7.8 is 69).
        text: the server's own text, if any was pasted.
        known: True when the most specific code is in the knowledge base.
    """

    protocol: Protocol
    code: int | None
    enhanced: str | None
    resp_code: str | None
    severity: Severity
    title: str
    parts: tuple[Part, ...]
    action: str
    step: str
    exit_code: ExitCode
    exit_codes_by_basic: tuple[tuple[int, ExitCode], ...] = ()
    text: str = ""
    known: bool = True
    standards: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        """One line for error hints: ``5.1.1 Bad destination mailbox address: <action>``."""
        head = self.enhanced or (str(self.code) if self.code is not None else self.resp_code)
        return f"{head} {self.title}: {self.action}" if head else f"{self.title}: {self.action}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "code": self.code,
            "enhanced": self.enhanced,
            "resp_code": self.resp_code,
            "severity": self.severity,
            "title": self.title,
            "action": self.action,
            "step": self.step,
            "exit_code": int(self.exit_code),
            "exit_name": self.exit_code.name,
            "exit_codes_by_basic": {str(b): int(c) for b, c in self.exit_codes_by_basic},
            "text": self.text,
            "known": self.known,
            "standards": list(self.standards),
            "parts": [p.to_dict() for p in self.parts],
        }


# --- look-ups ----------------------------------------------------------------------------


def lookup(code: str) -> Entry | None:
    """The knowledge-base entry for ``550``, ``5.1.1``/``X.1.1``, ``IN-USE`` or ``NOPERM``."""
    code = code.strip()
    if code.isdigit():
        return _SMTP_BY_CODE.get(code)
    m = _ENH_ALONE.match(code)
    if m and m.end() == len(code):
        return _ENH_BY_CODE.get(f"X.{int(m.group(2))}.{int(m.group(3))}")
    upper = code.upper()
    return _POP3_BY_CODE.get(upper) or _IMAP_BY_CODE.get(upper)


def all_entries() -> tuple[Entry, ...]:
    """Every entry of the knowledge base (tests walk it)."""
    return SMTP_CODES + ENHANCED_CODES + POP3_CODES + IMAP_CODES


# --- parsing what people paste ------------------------------------------------------------

_ENH_ALONE = re.compile(r"^([245Xx])\.(\d{1,3})\.(\d{1,3})(?=\s|$|[^\d.])")
_SMTP_LINE = re.compile(r"^([2-5]\d\d)(?:[ -]|$)")
# A basic code somewhere inside a bounce or log line: "said: 550 5.1.1 ...".
_SMTP_INSIDE = re.compile(r"(?<![\w.#/:-])([2-5][0-5]\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?(?=[ -]|$)")
_IMAP_LINE = re.compile(
    r"^(?:(\S+)\s+)?(OK|NO|BAD|BYE|PREAUTH)\b\s*(?:\[([^\]]{1,200})\])?\s*(.*)$", re.IGNORECASE
)
_BRACKET = re.compile(r"^\[([^\]]{1,200})\]\s*(.*)$", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9/-]{0,63}$")
_IN_REPLY = re.compile(r"in reply to (?:end of )?([A-Z][A-Z ]*?)(?: command)?\)", re.IGNORECASE)
_AFTER = re.compile(r"after (RCPT TO|MAIL FROM|DATA|end of data|EHLO|HELO|AUTH|STARTTLS|"
                    r"initial connection)", re.IGNORECASE)


@record(frozen=True, slots=True)
class _Parsed:
    protocol: Protocol
    reply: Reply
    step: str | None = None


def _smtp_from_lines(lines: list[str]) -> Reply | None:
    """Parse consecutive ``ddd-``/``ddd `` lines leniently (the last one closes the reply)."""
    picked = [ln for ln in lines if _SMTP_LINE.match(ln)]
    if not picked:
        return None
    code = picked[0][:3]
    same = [ln for ln in picked if ln[:3] == code]
    fixed = [ln[:3] + "-" + ln[4:] if len(ln) > 3 else ln for ln in same[:-1]]
    last = same[-1]
    fixed.append(last[:3] + " " + last[4:] if len(last) > 3 else last)
    try:
        return parse_smtp_reply("\r\n".join(fixed).encode("utf-8") + b"\r\n")
    except ReplyParseError:
        return None


def _step_from_text(text: str) -> str | None:
    m = _IN_REPLY.search(text)
    if m:
        return m.group(1).strip().upper()
    m = _AFTER.search(text)
    if m:
        return m.group(1).upper()
    return None


def _parse(text: str) -> _Parsed:
    raw = text[:MAX_PASTE].strip()
    if not raw:
        raise UsageError("nothing to explain: give a reply code or paste a server reply")
    lines = [decode_server_text(ln).strip() for ln in raw.splitlines() if ln.strip()]
    first = lines[0]
    step = _step_from_text(raw)

    # POP3: +OK / -ERR [CODE] text
    if first[:4].upper() == "-ERR" or first[:3].upper() == "+OK":
        fixed = ("-ERR" + first[4:]) if first[0] == "-" else ("+OK" + first[3:])
        try:
            return _Parsed("pop3", parse_pop3_status(fixed.encode("utf-8")), step)
        except ReplyParseError:
            pass  # "+OKAY", "-ERRATA": not a status line; try the other forms

    # SMTP: a reply pasted as is.
    smtp = _smtp_from_lines(lines)
    if smtp is not None:
        return _Parsed("smtp", smtp, step)

    # IMAP: [tag] OK|NO|BAD|BYE [CODE] text
    m = _IMAP_LINE.match(first)
    if m and (m.group(3) or (m.group(1) is not None and len(m.group(1)) <= 20)):
        status = m.group(2).upper()
        code = m.group(3).strip() if m.group(3) else None
        return _Parsed("imap", Reply(status=status, lines=(m.group(4),), resp_code=code), step)

    # [CODE] text, without a status: IMAP or POP3, by the code's name.
    m = _BRACKET.match(first)
    if m:
        return _bare_code(m.group(1).strip(), m.group(2), step)

    # An enhanced code alone, maybe with text: "5.7.1", "4.7.1 Greylisted".
    m = _ENH_ALONE.match(first)
    if m:
        enhanced = f"{m.group(1).upper()}.{int(m.group(2))}.{int(m.group(3))}"
        rest = first[m.end():].strip()
        return _Parsed("smtp", Reply(status="", lines=(rest,), enhanced=enhanced), step)

    # A code name alone: IN-USE, AUTHENTICATIONFAILED.
    if _NAME.match(first) and (first.upper() in _POP3_BY_CODE or first.upper() in _IMAP_BY_CODE):
        return _bare_code(first, "", step)

    # A code buried in a bounce or a log line.
    for line in lines:
        found = _SMTP_INSIDE.search(line)
        if found:
            tail = line[found.start():]
            reply = _smtp_from_lines([tail])
            if reply is not None:
                return _Parsed("smtp", reply, step)

    raise UsageError(f"no reply code found in {first[:80]!r}",
                     hint="try e.g. 550, 550 5.1.1, 5.7.1, '-ERR [IN-USE]' or '[NOPERM]'")


def _bare_code(code: str, text: str, step: str | None) -> _Parsed:
    name = code.split(" ", 1)[0].upper()
    if name in _POP3_BY_CODE and name not in _IMAP_BY_CODE:
        return _Parsed("pop3", Reply(status="-ERR", lines=(text,), resp_code=name), step)
    entry = _IMAP_BY_CODE.get(name)
    status = entry.status if entry else "NO"
    return _Parsed("imap", Reply(status=status, lines=(text,), resp_code=code), step)


# --- explaining ----------------------------------------------------------------------------


def explain_code(text: str) -> Explanation:
    """Explain what a person typed or pasted (see the module docstring for the forms).

    Raises:
        UsageError: no code could be found in ``text``.
    """
    parsed = _parse(text)
    return _explain(parsed.protocol, parsed.reply, parsed.step)


def explain_reply(reply: Reply, *, protocol: Protocol | None = None) -> Explanation:
    """Explain a reply a client received."""
    if protocol is None:
        if reply.code is not None or reply.enhanced:
            protocol = "smtp"
        elif reply.status in ("+OK", "-ERR"):
            protocol = "pop3"
        else:
            protocol = "imap"
    return _explain(protocol, reply, None)


def hint_for(reply: Reply) -> str | None:
    """A one-line hint for an error about ``reply`` (None for a positive reply)."""
    if reply.is_positive:
        return None
    return explain_reply(reply).summary()


def _explain(protocol: Protocol, reply: Reply, step: str | None) -> Explanation:
    if protocol == "smtp":
        return _explain_smtp(reply, step)
    return _explain_resp_code(protocol, reply, step)


def _enhanced_parts(enhanced: str) -> tuple[list[Part], Entry | None]:
    cls, subject, detail = enhanced.split(".")
    key = f"X.{int(subject)}.{int(detail)}"
    parts: list[Part] = []
    if cls in CLASSES:
        title, meaning = CLASSES[cls]
        parts.append(Part("class", f"{cls}.X.X", title, meaning, "RFC 3463 §3.1", True))
    entry = _ENH_BY_CODE.get(key)
    if entry is not None:
        parts.append(Part("enhanced", key, entry.title, entry.meaning, entry.standard, True))
        return parts, entry
    sub = SUBJECTS.get(str(int(subject)))
    if sub is not None:
        parts.append(Part("subject", f"X.{int(subject)}.X", sub[0], sub[1], "RFC 3463 §3", True))
    parts.append(Part("enhanced", key, "Unregistered detail code",
                      f"Detail {int(detail)} is not in the IANA registry for subject "
                      f"{int(subject)}; only the class and subject digits carry meaning.",
                      "RFC 3463 §2", False))
    return parts, None


def _basic_part(code: int) -> tuple[Part, Entry | None]:
    entry = _SMTP_BY_CODE.get(str(code))
    if entry is not None:
        return Part("smtp", str(code), entry.title, entry.meaning, entry.standard, True), entry
    first, second = str(code)[0], str(code)[1]
    cls_title = _FIRST_DIGIT[first][0]
    area = _SECOND_DIGIT.get(second, "unspecified")
    return Part("digits", str(code), f"Unregistered code: {cls_title.split(':')[0].lower()}",
                f"{code} is not defined by RFC 5321; by its digits: {cls_title.lower()}, "
                f"about {area}.", "RFC 5321 §4.2.1", False), None


def _representative_basic(entry: Entry | None, cls: str) -> list[int]:
    wanted = [b for b in (entry.basic if entry else ()) if str(b)[0] == cls]
    default = {"2": 250, "4": 451, "5": 550}.get(cls)
    if not wanted and default is not None:
        wanted.append(default)
    return wanted


_GREYLIST = re.compile(r"grey ?list|gray ?list", re.IGNORECASE)


def _transient_note(action: str, severity: Severity, text: str = "") -> str:
    """For a temporary failure, say first that retrying is the answer."""
    if severity != "transient":
        return action
    if _GREYLIST.search(text):
        return ("Greylisting: the server defers the first attempt from an unknown sender; a "
                "retry after a few minutes normally succeeds (mailtool queues it, exit 75).")
    if action.lower().startswith("retry later"):
        return action
    return f"Retry later (4xx is temporary; mailtool queues the message). If it persists: {action}"


def _explain_smtp(reply: Reply, step: str | None) -> Explanation:
    parts: list[Part] = []
    basic_entry: Entry | None = None
    enh_entry: Entry | None = None
    by_basic: tuple[tuple[int, ExitCode], ...] = ()
    enhanced = reply.enhanced
    if reply.code is not None:
        part, basic_entry = _basic_part(reply.code)
        parts.append(part)
        severity = _FIRST_DIGIT[str(reply.code)[0]][1]
        exit_code = exit_code_for(reply)
    if enhanced is not None:
        enh_parts, enh_entry = _enhanced_parts(enhanced)
        parts.extend(enh_parts)
    if reply.code is None:
        cls = enhanced[0] if enhanced else "X"
        severity = _CLASS_SEVERITY.get(cls, "unknown")
        classes = [cls] if cls in "245" else ["4", "5"]
        pairs: list[tuple[int, ExitCode]] = []
        for c in classes:
            concrete = f"{c}{enhanced[1:]}" if enhanced else None
            for basic in _representative_basic(enh_entry, c):
                pairs.append((basic, exit_code_for(
                    Reply(status=str(basic), lines=(), code=basic, enhanced=concrete))))
        by_basic = tuple(pairs)
        exit_code = pairs[0][1]
    known = all(p.known for p in parts)
    best = enh_entry or basic_entry
    if enh_entry is not None:
        title = enh_entry.title
    elif basic_entry is not None:
        title = basic_entry.title
    else:
        title = parts[-1].title
    if best is not None:
        action = best.action
        usual_step = best.step
    else:
        action = {
            "success": "Nothing to do.",
            "intermediate": "Nothing to do: the server waits for the client to continue.",
            "transient": "Retry later.",
            "permanent": "Do not retry unchanged; read the server's text.",
            "unknown": "Read the server's text.",
        }[severity]
        usual_step = _ANY_STEP
    if enh_entry is not None and basic_entry is not None and enh_entry.code.endswith(".0"):
        # "Other or undefined" says less than the basic code does (530 5.7.0).
        action, usual_step = basic_entry.action, basic_entry.step
    action = _transient_note(action, severity, reply.text)
    standards = tuple(dict.fromkeys(p.standard for p in parts if p.known))
    return Explanation(
        protocol="smtp",
        code=reply.code,
        enhanced=enhanced,
        resp_code=None,
        severity=severity,
        title=title,
        parts=tuple(parts),
        action=action,
        step=step or usual_step,
        exit_code=exit_code,
        exit_codes_by_basic=by_basic,
        text=reply.text,
        known=known,
        standards=standards,
    )


_ANY_STEP = "any command"


def _explain_resp_code(protocol: Protocol, reply: Reply, step: str | None) -> Explanation:
    table = _POP3_BY_CODE if protocol == "pop3" else _IMAP_BY_CODE
    name = (reply.resp_code or "").split(" ", 1)[0].upper()
    entry = table.get(name) if name else None
    exit_code = exit_code_for(reply)
    severity: Severity
    if reply.is_positive:
        severity = "success"
    elif exit_code == ExitCode.TEMPFAIL:
        severity = "transient"
    else:
        severity = "permanent"
    parts: list[Part] = []
    status_meaning = {
        "+OK": "The command succeeded.",
        "-ERR": "The command failed.",
        "OK": "The command succeeded (or, untagged, information).",
        "NO": "The command failed.",
        "BAD": "The command was not understood (a protocol error, usually the client's).",
        "BYE": "The server is closing the connection.",
        "PREAUTH": "The connection is already authenticated.",
    }
    std_status = "RFC 1939 §3, RFC 2449" if protocol == "pop3" else "RFC 3501/9051 §7.1"
    if reply.status:
        parts.append(Part(protocol, reply.status, f"{reply.status} status",
                          status_meaning.get(reply.status, "A status response."),
                          std_status, reply.status in status_meaning))
    if entry is not None:
        parts.append(Part(protocol, entry.code, entry.title, entry.meaning, entry.standard, True))
        title, action, usual_step = entry.title, entry.action, entry.step
    elif name:
        parts.append(Part(protocol, name, "Unknown response code",
                          f"[{name}] is not in our knowledge base; clients must ignore response "
                          "codes they do not know, so only the status counts.",
                          "RFC 9051 §7.1" if protocol == "imap" else "RFC 2449 §8", False))
        title, action, usual_step = f"[{name}]", _generic_action(severity), _ANY_STEP
    else:
        title = parts[0].meaning if parts else "No response code"
        action, usual_step = _generic_action(severity), _ANY_STEP
    action = _transient_note(action, severity, reply.text)
    return Explanation(
        protocol=protocol,
        code=None,
        enhanced=None,
        resp_code=name or None,
        severity=severity,
        title=title,
        parts=tuple(parts),
        action=action,
        step=step or usual_step,
        exit_code=exit_code,
        text=reply.text,
        known=all(p.known for p in parts),
        standards=tuple(dict.fromkeys(p.standard for p in parts if p.known)),
    )


def _generic_action(severity: Severity) -> str:
    return {
        "success": "Nothing to do.",
        "transient": "Retry later.",
        "permanent": "Read the server's text; retrying unchanged will not help.",
    }.get(severity, "Read the server's text.")
