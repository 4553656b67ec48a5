"""``send --batch``: many messages (an mbox on stdin, or a Maildir), one connection per
route, pipelined, one result line per message in the order of the input.

Imported only by a batch send: ``mailtool-sendmail`` and a one-message ``send`` never load
it.
"""

from __future__ import annotations

import os

from mailtool.compose import Envelope, MessageSource
from mailtool.errors import MailtoolError, UsageError
from mailtool.exitcodes import ExitCode, worst
from mailtool.protocol.wire import CHUNK
from mailtool.sendcore import (
    SendRequest,
    _check_envelope,
    _print_dry_run,
    _raw_envelope,
    default_sender,
    delivery_options,
)

# Not ``typing.TYPE_CHECKING``: typing is not imported at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any



def iter_mbox(stream: IO[bytes]) -> Iterator[tuple[str | None, bytes]]:
    """Messages of an mbox: (sender of the ``From `` line, message bytes); ``>From``
    quoting (mboxrd) undone. Each message is held in memory while it is sent.

    A message starts at a ``From `` line that follows a blank line (or starts the file);
    the blank line before the next one is the separator, not part of the message. The
    input is read in blocks of whole lines and searched with ``bytes.find``: no Python
    work per line (a thousand small messages are some 12,000 lines).
    """
    current: list[bytes] | None = None  # pieces of the message being read
    sender: str | None = None
    previous_blank = True  # the line before the block's first line is blank (or none)
    carry = b""  # an incomplete last line, kept for the next block
    while True:
        block = stream.read(CHUNK)
        data = carry + block if carry else block
        if block:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            carry, data = data[cut:], data[:cut]
        else:
            carry = b""
        pos = 0  # where the part of ``data`` not yet in ``current`` starts
        at = data.find(b"From ")
        while at >= 0:
            if _separator(data, at, previous_blank):
                end = data.find(b"\n", at)
                end = len(data) if end < 0 else end + 1
                if current is not None:
                    current.append(data[pos:at])
                    yield sender, _finish_mbox(current)
                parts = data[at:end].split()
                sender = parts[1].decode("utf-8", "replace") if len(parts) > 1 else None
                if sender in ("MAILER-DAEMON", "-"):
                    sender = ""
                current = []
                pos = end
                at = data.find(b"From ", end)
            else:
                at = data.find(b"From ", at + 1)
        if current is not None and pos < len(data):
            current.append(data[pos:])
        if data:
            last = data.rfind(b"\n", 0, len(data) - 1) + 1
            previous_blank = data[last:] in (b"\n", b"\r\n")
        if not block:
            break
    if current is not None:
        yield sender, _finish_mbox(current)


def _separator(data: bytes, at: int, previous_blank: bool) -> bool:
    """``data[at:]`` starts with "From " at the start of a line after a blank line."""
    if at == 0:
        return previous_blank
    if data[at - 1] != 0x0A:
        return False  # not at the start of a line
    if at == 1 or data[at - 2] == 0x0A:
        return True  # after a line that is just LF
    return data[at - 2] == 0x0D and (at == 2 or data[at - 3] == 0x0A)  # just CRLF


def _finish_mbox(pieces: list[bytes]) -> bytes:
    message = b"".join(pieces)
    if message == b"\n" or message.endswith(b"\n\n"):
        message = message[:-1]  # the separator line before the next "From "
    elif message == b"\r\n" or message.endswith(b"\n\r\n"):
        message = message[:-2]
    if message.startswith(b">") or b"\n>" in message:
        import re

        message = re.sub(rb"(?m)^>(>*From )", rb"\1", message)
    return message


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


class _Prepared:
    """One message of the batch, read and checked, ready to go (or refused)."""

    __slots__ = ("envelope", "error", "index", "message_id", "source")

    def __init__(self, index: int, source: MessageSource | None, envelope: Envelope | None,
                 message_id: str | None, error: MailtoolError | None) -> None:
        self.index = index
        self.source = source
        self.envelope = envelope
        self.message_id = message_id
        self.error = error


class _Reader:
    """The batch's messages, read one ahead: ``prefetch`` (the transport's ``on_wait``
    hook) prepares the next message while a server answers the previous one, so the
    parsing overlaps the round trip instead of adding to it."""

    def __init__(self, req: SendRequest, messages: Iterator[tuple[str | None, bytes]],
                 sender: str | None) -> None:
        self._req = req
        self._messages = messages
        self._sender = sender
        self._index = 0
        self._ready: _Prepared | None = None
        self._done = False
        self._failed: Exception | None = None  # raised by a prefetch, re-raised in turn

    def prefetch(self) -> None:
        if self._ready is None and not self._done and self._failed is None:
            try:
                self._ready = self._read()
            except Exception as exc:  # not the SMTP session's business: the loop's
                self._failed = exc

    def _read(self) -> _Prepared | None:
        try:
            mbox_sender, raw = next(self._messages)
        except StopIteration:
            self._done = True
            return None
        self._index += 1
        source = MessageSource.from_bytes(raw)
        try:
            envelope = _raw_envelope(self._req, source, mbox_sender or None, self._sender)
            _check_envelope(envelope)
        except MailtoolError as err:
            return _Prepared(self._index, None, None, None, err)
        ids = source.header_values("message-id")
        return _Prepared(self._index, source, envelope, ids[0] if ids else None, None)

    def __iter__(self) -> Iterator[_Prepared]:
        while True:
            item, self._ready = self._ready, None
            if item is None:
                if self._failed is not None:
                    raise self._failed
                item = self._read()
                if item is None:
                    return
            yield item


def run_batch(req: SendRequest, stdin: IO[bytes], stdout: IO[str], stderr: IO[str]) -> int:
    from functools import partial

    from mailtool.delivery import Deliverer

    messages = iter_mbox(stdin) if req.batch == "-" else iter_maildir(req.batch or "")
    reader = _Reader(req, messages, default_sender(req))  # one sender lookup for all
    options = delivery_options(req)
    options.on_wait = reader.prefetch
    codes: list[int] = []
    count = 0
    with Deliverer(options) as deliverer:
        for item in reader:
            count += 1
            if item.error is not None:
                deliverer.settle()  # the results before this one come first
                codes.append(int(item.error.exit_code))
                _batch_line(req, item.index, None, stdout, error=item.error)
                continue
            assert item.source is not None and item.envelope is not None
            if req.dry_run:
                routes = deliverer.plan(item.envelope.recipients)
                _print_dry_run(req, item.envelope, item.source, routes, stdout)
                continue
            deliverer.deliver_later(item.envelope, item.source, partial(
                _batch_result, req, item.index, item.message_id, codes, stdout, stderr))
        # Leaving the block sends QUIT behind the last message's data: its result comes.
    if count == 0:
        raise UsageError("--batch: no messages in the input")
    return int(worst(*codes))


def _batch_result(req: SendRequest, index: int, message_id: str | None, codes: list[int],
                  stdout: IO[str], stderr: IO[str], result: Any) -> None:
    result.message_id = message_id
    code = int(result.exit_code)
    codes.append(code)
    _batch_line(req, index, result, stdout, code=code)
    if req.verbose or not result.ok:
        from mailtool.delivery import format_outcomes

        for line in format_outcomes(result):
            stderr.write(f"{req.prog}: message {index}: {line}\n")


def _batch_line(req: SendRequest, index: int, result: Any, stdout: IO[str],
                error: MailtoolError | None = None, code: int | None = None) -> None:
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
    if code is None:
        code = int(result.exit_code)
    ok = counts["accepted"] == len(result.outcomes)
    status = "ok" if ok else ("deferred" if code == ExitCode.TEMPFAIL else "failed")
    stdout.write(f"{index}\t{status}\t{code}\t{result.message_id or '-'}\t"
                 f"accepted={counts['accepted']} deferred={counts['deferred']} "
                 f"rejected={counts['rejected']}\n")
