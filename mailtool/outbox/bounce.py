"""A plain-text failure report ("bounce") for mail that could not be delivered.

Sent, like sendmail's, to an address the user chose (``--bounce-to``, or ``bounce_to`` in
the account) when recipients failed permanently: a 5xx, or the queue lifetime ran out.
It goes out with the null reverse-path ``<>`` (RFC 5321 section 4.5.5) so a failing
report can never cause another report, and it is not queued itself: when it cannot be
delivered, a warning on stderr is all (the failure was also reported there).

The report is plain text, not an RFC 3464 multipart/report: people read these, scripts
read the exit status and ``--json``.
"""

from __future__ import annotations

import os
import time

# Not ``typing.TYPE_CHECKING``: mailtool-sendmail does not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

#: Lines of the original header block quoted in a report; the body is never included.
MAX_QUOTED_HEADER = 64 * 1024


def build_report(*, sender: str, failed: Iterable[dict[str, Any]], header_block: bytes,
                 reason: str, to: str, now: float | None = None,
                 queued_since: float | None = None) -> bytes:
    """The report message (CRLF bytes)."""
    from email.utils import formatdate, make_msgid

    now = time.time() if now is None else now
    host = os.uname().nodename or "localhost"
    lines = [
        f"This is the mail delivery report of mailtool on {host}.",
        "",
        f"Your message could not be delivered to the recipients below: {reason}.",
        "This is a permanent error; the message will not be sent again.",
        "",
    ]
    for rec in failed:
        reply = " ".join(str(x) for x in (rec.get("code"), rec.get("enhanced")) if x)
        text = " ".join(x for x in (reply, rec.get("text") or "") if x)
        where = f" (at {rec['host']}, {rec.get('step') or '-'})" if rec.get("host") else ""
        lines.append(f"  <{rec['address']}>{where}:")
        lines.append(f"      {text or 'no reply'}")
    lines.append("")
    lines.append(f"Envelope sender: <{sender}>")
    if queued_since is not None:
        lines.append(f"Queued since: {formatdate(queued_since, localtime=True)}")
    lines += ["", "--- Header of the original message ---", ""]
    head = header_block[:MAX_QUOTED_HEADER].decode("utf-8", "replace")
    lines += head.replace("\r\n", "\n").rstrip("\n").split("\n")
    body = "\r\n".join(line.replace("\r", "") for line in lines) + "\r\n"
    subject = "Undelivered mail returned to sender"
    headers = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {formatdate(now, localtime=True)}",
        f"Message-ID: {make_msgid(domain=host)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


def send_report(deliverer: Any, to: str, report: bytes) -> Any:
    """Deliver ``report`` to ``to`` with the null sender; the ``DeliveryResult``."""
    from mailtool.compose import Envelope, MessageSource

    source = MessageSource.from_bytes(report)
    return deliverer.deliver(Envelope(sender="", recipients=[to]), source)
