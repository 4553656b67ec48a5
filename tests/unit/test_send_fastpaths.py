"""The fast paths of the send path give exactly what the general code gives: header fields
parsed once, the block-wise mbox reader, whole-message dot-stuffing, one-line SMTP
replies (and their cache), enhanced status codes parsed by hand. Each is checked against
a reference on random input, whole and in pieces."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator

import pytest

from mailtool import sendbatch
from mailtool.compose import MessageSource, parse_fields, split_fields
from mailtool.protocol.replies import (
    REPLY_CACHE_SIZE,
    ReplyParseError,
    SMTPReplyReader,
    build_smtp_reply,
    parse_smtp_line,
    split_enhanced,
)
from mailtool.protocol.wire import CRLFNormalizer, DotStuffer, dot_stuff, normalize_crlf
from mailtool.sendbatch import iter_mbox


def _mbox_reference(data: bytes) -> list[tuple[str | None, bytes]]:
    """The line-by-line mbox reader the block-wise one replaced."""
    out: list[tuple[str | None, bytes]] = []
    current: list[bytes] | None = None
    sender: str | None = None
    previous_blank = True
    for line in io.BytesIO(data):
        if line.startswith(b"From ") and previous_blank:
            if current is not None:
                out.append((sender, _finish(current)))
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
        out.append((sender, _finish(current)))
    return out


def _finish(lines: list[bytes]) -> bytes:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return b"".join(lines)


MBOX_PIECES = [b"From ", b"From a@b.test Thu\n", b"\n", b"\r\n", b"\r", b">From ",
               b">>From x\n", b"x", b"From", b" ", b"-", b"MAILER-DAEMON ", b"Fr", b"om \n",
               b"Subject: s\n", b"."]


@pytest.mark.parametrize("block", [1, 3, 7, 64, 1 << 18])
def test_mbox_reader_matches_the_line_reader(block: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sendbatch, "CHUNK", block)
    rng = random.Random(block)
    for _ in range(1500):
        data = b"".join(rng.choice(MBOX_PIECES) for _ in range(rng.randint(0, 40)))
        assert list(iter_mbox(io.BytesIO(data))) == _mbox_reference(data), data


def test_mbox_reader_on_a_real_looking_mbox() -> None:
    mbox = (b"From a@src.test Thu Jan  1 00:00:00 2026\nFrom: a@src.test\nSubject: one\n\n"
            b"body\n>From the start\n\nFrom MAILER-DAEMON Thu Jan  1 00:00:00 2026\n"
            b"Subject: two\n\n.dot\n")
    assert list(iter_mbox(io.BytesIO(mbox))) == [
        ("a@src.test", b"From: a@src.test\nSubject: one\n\nbody\nFrom the start\n"),
        ("", b"Subject: two\n\n.dot\n")]


HEADER_PIECES = [b"To", b"Cc", b"BCC", b"Message-ID", b"From", b": ", b":", b"a@b.test",
                 b", ", b"\r\n", b"\n", b" ", b"\t", b"x", b"\r\n ", b"\r\n\t", b"\xc3\xa9"]


def test_header_fields_parsed_once_match_split_fields() -> None:
    rng = random.Random(5322)
    for _ in range(3000):
        head = b"".join(rng.choice(HEADER_PIECES) for _ in range(rng.randint(0, 25)))
        fields = parse_fields(head)
        for name in ("to", "cc", "bcc", "message-id", "from"):
            assert fields.get(name, []) == split_fields(head, drop=(name,))[1], (head, name)


def test_message_source_keeps_its_fields_in_step_with_its_header() -> None:
    source = MessageSource.from_bytes(b"To: a@b.test\nBcc: c@d.test\nSubject: s\n\nbody\n")
    assert source.header_values("bcc") == ["c@d.test"]
    assert source.strip_bcc() == ["c@d.test"]
    assert source.header_values("bcc") == [] and source.header_values("to") == ["a@b.test"]
    source.set_header("Subject", "new")
    assert source.header_values("subject") == ["new"]
    assert b"".join(source.chunks()) == b"To: a@b.test\r\nSubject: new\r\n\r\nbody\r\n"


def _stuffed_by_chunks(message: bytes, cut: int) -> bytes:
    stuffer = DotStuffer()
    return stuffer.feed(message[:cut]) + stuffer.feed(message[cut:]) + stuffer.finish()


def test_whole_message_dot_stuffing_matches_the_streaming_stuffer() -> None:
    rng = random.Random(5321)
    pieces = [b"\r", b"\n", b".", b"a", b"\r\n", b"..", b" ", b"\r\n.\r\n"]
    for _ in range(20000):
        message = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        norm = CRLFNormalizer()
        assert normalize_crlf(message) == norm.feed(message) + norm.finish()
        stuffed = dot_stuff(message)
        assert stuffed == _stuffed_by_chunks(message, rng.randint(0, len(message)))
        body = stuffed[:-3]
        # Never a bare CR or LF, and the only "CRLF.CRLF" is the terminator.
        assert body.replace(b"\r\n", b"").count(b"\r") == 0
        assert body.replace(b"\r\n", b"").count(b"\n") == 0
        assert b"\r\n.\r\n" not in b"\r\n" + body


LINE_PIECES = [b"250", b"550", b"421", b"354", b"250-", b" ", b"-", b"2.1.0", b"5.1.1",
               b"5.1.10", b"4.7.1", b"x", b"\r\n", b"\n", b"\t", b"\x01", b"\xc3\xa9",
               b"\xff", b"\x7f", b"9", b"."]


def _reference_reply(line: bytes) -> object:
    try:
        parsed = parse_smtp_line(line)
    except ReplyParseError:
        return "error"
    return build_smtp_reply([parsed]) if parsed[1] else "continued"


def test_one_line_replies_and_their_cache_match_the_general_parser() -> None:
    rng = random.Random(2920)
    reader = SMTPReplyReader()
    lines = [b"".join(rng.choice(LINE_PIECES) for _ in range(rng.randint(1, 6)))
             for _ in range(4000)]
    for line in lines + lines:  # the second round is served by the cache where it can be
        try:
            got: object = reader.feed(line)
        except ReplyParseError:
            got = "error"
        if got is None:
            got = "continued"
            reader = SMTPReplyReader()  # a fresh reader for the next line (and cache)
        assert got == _reference_reply(line), line


def test_reply_cache_is_bounded() -> None:
    reader = SMTPReplyReader()
    for number in range(REPLY_CACHE_SIZE * 3):
        reply = reader.feed(b"250 2.0.0 queued as %d\r\n" % number)
        assert reply is not None and reply.lines == (f"queued as {number}",)
    assert len(reader._seen) == REPLY_CACHE_SIZE
    assert reader.feed(b"250 x" + b"y" * 600 + b"\r\n") is not None
    assert len(reader._seen) == REPLY_CACHE_SIZE


def test_enhanced_codes_parsed_by_hand_match_the_grammar() -> None:
    grammar = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
    rng = random.Random(3463)
    alphabet = "2455.0123456789 \t\n\u0663x.a\u2003"
    for _ in range(50000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for code in (250, 450, 550, 354):
            match = grammar.match(text)
            if match and int(match.group(1)) == code // 100:
                expected: tuple[str | None, str] = (match.group(0),
                                                    text[match.end():].lstrip())
            else:
                expected = (None, text)
            assert split_enhanced(code, text) == expected, (code, text)


def test_batch_reader_prefetch_defers_its_failure_to_the_loop() -> None:
    """The next message is read inside the transport's wait hook; a failure there (an
    unreadable input) must not break the SMTP read in progress: it comes out of the loop,
    in its turn, after the messages read before it."""
    from mailtool.sendcore import SendRequest

    def messages() -> Iterator[tuple[str | None, bytes]]:
        yield "a@src.test", b"To: x@dst.test\n\none\n"
        raise OSError("input went away")

    reader = sendbatch._Reader(SendRequest(batch="-"), messages(), None)
    items = iter(reader)
    first = next(items)
    assert first.envelope is not None and first.envelope.recipients == ["x@dst.test"]
    reader.prefetch()  # what Transport.on_wait does: must not raise
    with pytest.raises(OSError, match="went away"):
        next(items)
