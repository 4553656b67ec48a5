"""``send --batch``: many messages (an mbox on stdin, or a Maildir), one connection per
route, pipelined, one result line per message in the order of the input.

Imported only by a batch send: ``mailtool-sendmail`` and a one-message ``send`` never load
it.
"""

from __future__ import annotations

import os

from mailtool.compose import MessageSource
from mailtool.errors import MailtoolError, UsageError
from mailtool.exitcodes import ExitCode, worst
from mailtool.sendcore import (
    SendRequest,
    _check_envelope,
    _print_dry_run,
    _raw_envelope,
    delivery_options,
)

# Not ``typing.TYPE_CHECKING``: typing is not imported at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any



def iter_mbox(stream: IO[bytes]) -> Iterator[tuple[str | None, bytes]]:
    """Messages of an mbox: (sender of the ``From `` line, message bytes); ``>From``
    quoting (mboxrd) undone. Each message is held in memory while it is sent."""
    current: list[bytes] | None = None
    sender: str | None = None
    previous_blank = True
    for line in stream:
        if line.startswith(b"From ") and previous_blank:
            if current is not None:
                yield sender, _finish_mbox(current)
            parts = line.split()
            sender = parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
            if sender in ("MAILER-DAEMON", "-"):
                sender = ""
            current = []
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if current is None:
            continue
        if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
            line = line[1:]
        current.append(line)
    if current is not None:
        yield sender, _finish_mbox(current)


def _finish_mbox(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]  # the separator line before the next "From "
    return b"".join(lines)


def iter_maildir(path: str) -> Iterator[tuple[str | None, bytes]]:
    from mailtool.errors import NoInputError

    names: list[str] = []
    for sub in ("cur", "new"):
        folder = os.path.join(path, sub)
        if os.path.isdir(folder):
            names += [os.path.join(folder, n) for n in os.listdir(folder) if not n.startswith(".")]
    if not names and not os.path.isdir(os.path.join(path, "cur")):
        raise NoInputError(f"{path} is not a Maildir (no cur/ or new/)", step="reading batch")
    for name in sorted(names):
        with open(name, "rb") as handle:
            yield None, handle.read()


def run_batch(req: SendRequest, stdin: IO[bytes], stdout: IO[str], stderr: IO[str]) -> int:
    from functools import partial

    from mailtool.delivery import Deliverer

    messages = iter_mbox(stdin) if req.batch == "-" else iter_maildir(req.batch or "")
    options = delivery_options(req)
    codes: list[int] = []
    count = 0
    with Deliverer(options) as deliverer:
        for index, (mbox_sender, raw) in enumerate(messages, 1):
            count += 1
            source = MessageSource.from_bytes(raw)
            try:
                envelope = _raw_envelope(req, source, mbox_sender or None)
                _check_envelope(envelope)
            except MailtoolError as err:
                codes.append(int(err.exit_code))
                _batch_line(req, index, None, stdout, error=err)
                continue
            ids = source.header_values("message-id")
            message_id = ids[0] if ids else None
            if req.dry_run:
                routes = deliverer.plan(envelope.recipients)
                _print_dry_run(req, envelope, source, routes, stdout)
                continue
            deliverer.deliver_later(envelope, source, partial(
                _batch_result, req, index, message_id, codes, stdout, stderr))
        # Leaving the block sends QUIT behind the last message's data: its result comes.
    if count == 0:
        raise UsageError("--batch: no messages in the input")
    return int(worst(*codes))


def _batch_result(req: SendRequest, index: int, message_id: str | None, codes: list[int],
                  stdout: IO[str], stderr: IO[str], result: Any) -> None:
    result.message_id = message_id
    codes.append(int(result.exit_code))
    _batch_line(req, index, result, stdout)
    if req.verbose or not result.ok:
        from mailtool.delivery import format_outcomes

        for line in format_outcomes(result):
            stderr.write(f"{req.prog}: message {index}: {line}\n")


def _batch_line(req: SendRequest, index: int, result: Any, stdout: IO[str],
                error: MailtoolError | None = None) -> None:
    if req.json:
        import json

        doc: dict[str, Any] = {"index": index}
        if error is not None:
            doc.update(error=error.one_line(), exit_code=int(error.exit_code))
        else:
            doc.update(result.to_json())
        stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return
    if error is not None:
        stdout.write(f"{index}\terror\t{int(error.exit_code)}\t{error.one_line()}\n")
        return
    counts = {"accepted": 0, "deferred": 0, "rejected": 0}
    for out in result.outcomes:
        counts[out.status] += 1
    status = "ok" if result.ok else ("deferred" if result.exit_code == ExitCode.TEMPFAIL
                                     else "failed")
    stdout.write(f"{index}\t{status}\t{int(result.exit_code)}\t{result.message_id or '-'}\t"
                 f"accepted={counts['accepted']} deferred={counts['deferred']} "
                 f"rejected={counts['rejected']}\n")
