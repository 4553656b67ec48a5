"""Pure tests: EHLO parsing, reply pairing, argument guard, compose helpers, sendmail flags."""

from __future__ import annotations

import io
import random

import pytest

from mailtool.compose import ComposeSpec, MessageSource, build_message, header_recipients
from mailtool.errors import DataError, ProtocolError
from mailtool.mx import order_mx, parse_dns_server
from mailtool.protocol.replies import parse_smtp_reply
from mailtool.protocol.smtp.session import (
    SMTPSession,
    SMTPState,
    encode_command,
    parse_ehlo,
    xtext,
)
from mailtool.sendmail import parse_args

EHLO = (b"250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
        b"250-AUTH PLAIN LOGIN\r\n250-AUTH=CRAM-MD5\r\n250-8BITMIME\r\n250-CHUNKING\r\n"
        b"250 SMTPUTF8\r\n")


def test_parse_ehlo() -> None:
    caps = parse_ehlo(parse_smtp_reply(EHLO))
    assert caps.domain == "mx.example.org"
    assert caps.pipelining and caps.chunking and caps.smtputf8 and caps.eightbitmime
    assert not caps.starttls and not caps.dsn
    assert caps.size_limit == 10240000
    assert caps.auth_mechanisms == ("PLAIN", "LOGIN")


def test_parse_ehlo_size_zero_is_unlimited() -> None:
    caps = parse_ehlo(parse_smtp_reply(b"250-x\r\n250 SIZE 0\r\n"))
    assert caps.has("SIZE") and caps.size_limit is None


@pytest.mark.parametrize("split", [1, 3, 1000])
def test_session_pairs_pipelined_replies(split: int) -> None:
    s = SMTPSession()
    wire = b"220 hi\r\n" + EHLO + b"250 2.1.0 ok\r\n450 4.2.0 later\r\n550 5.1.1 no\r\n354 go\r\n"
    s.command("EHLO", "me")
    s.command("MAIL", "FROM:<a@b>")
    s.command("RCPT", "TO:<c@d>", label="RCPT c@d")
    s.command("RCPT", "TO:<e@f>", label="RCPT e@f")
    s.command("DATA")
    events = []
    buf = b""
    for i in range(0, len(wire), split):
        buf += wire[i : i + split]
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            ev = s.receive_line(line + b"\n")
            if ev:
                events.append((ev.command, ev.reply.code))
    assert events == [("greeting", 220), ("EHLO", 250), ("MAIL", 250), ("RCPT c@d", 450),
                      ("RCPT e@f", 550), ("DATA", 354)]
    assert s.state is SMTPState.DATA


def test_unsolicited_reply_is_a_protocol_error() -> None:
    s = SMTPSession()
    s.receive_line(b"220 hi\r\n")
    with pytest.raises(ProtocolError):
        s.receive_line(b"250 surprise\r\n")


def test_starttls_forgets_capabilities() -> None:
    s = SMTPSession()
    s.receive_line(b"220 hi\r\n")
    s.command("EHLO", "me")
    for line in EHLO.splitlines(keepends=True):
        s.receive_line(line)
    assert s.capabilities.pipelining
    s.command("STARTTLS")
    s.receive_line(b"220 go ahead\r\n")
    assert not s.capabilities.pipelining and s.state is SMTPState.CONNECTED


@pytest.mark.parametrize("bad", ["a@b\r\nRCPT TO:<x@y>", "a\n", "a\x00b", "a\rb"])
def test_command_argument_guard(bad: str) -> None:
    with pytest.raises(DataError):
        encode_command("MAIL", f"FROM:<{bad}>")


def test_xtext() -> None:
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"


def test_order_mx_sorts_and_shuffles_equal_preferences() -> None:
    records = [(20, "c"), (10, "a"), (10, "b"), (30, "d")]
    seen = set()
    for seed in range(40):
        ordered = order_mx(list(records), random.Random(seed))
        assert [p for p, _ in ordered] == [10, 10, 20, 30]
        assert ordered[2:] == [(20, "c"), (30, "d")]
        seen.add(tuple(n for _, n in ordered[:2]))
    assert seen == {("a", "b"), ("b", "a")}


def test_parse_dns_server() -> None:
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    assert parse_dns_server("[::1]:54") == ("::1", 54)


def test_sendmail_flags() -> None:
    flags, rcpts = parse_args(["-t", "-i", "-oi", "-odi", "-oem", "-FCronDaemon", "-f",
                               "root@h.example", "-B8BITMIME", "a@b", "-c"])
    assert flags["o"] == ["i", "di", "em"]
    assert flags["F"] == ["CronDaemon"] and flags["f"] == ["root@h.example"]
    assert "t" in flags and "i" in flags
    assert rcpts == ["a@b", "-c"]
    flags, rcpts = parse_args(["-ti", "-F", "Cron Daemon", "--", "-x@y"])
    assert "t" in flags and "i" in flags and flags["F"] == ["Cron Daemon"]
    assert rcpts == ["-x@y"]


def test_read_keeps_bytes_and_strips_bcc_only() -> None:
    raw = (b"From: a@b.test\nTo: x@y.test,\n  z@y.test\nBcc: hidden@y.test,\n\tother@y.test\n"
           b"X-Keep:  odd   spacing\nSubject: =?utf-8?q?h=C3=A9?=\n\n.body\r\nline\rend")
    src = MessageSource.read(io.BytesIO(raw))
    assert header_recipients(src) == ["x@y.test", "z@y.test", "hidden@y.test", "other@y.test"]
    assert src.strip_bcc() == ["hidden@y.test, other@y.test"]
    out = b"".join(src.chunks())
    assert out == (b"From: a@b.test\r\nTo: x@y.test,\r\n  z@y.test\r\n"
                   b"X-Keep:  odd   spacing\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n\r\n"
                   b".body\r\nline\r\nend")
    assert src.size == len(out)


def test_build_message_encodes_and_refuses_injection() -> None:
    src, env, msgid = build_message(ComposeSpec(
        sender="Zoë Ex <z@example.test>", to=["a@example.test, B <b@example.test>"],
        bcc=["c@example.test"], subject="héllo", body="hi\n"))
    head = src.header_block
    assert head.isascii() and b"Bcc" not in head and b"=?utf-8?" in head
    assert env.recipients == ["a@example.test", "b@example.test", "c@example.test"]
    assert msgid.encode() in head
    with pytest.raises(DataError):
        build_message(ComposeSpec(sender="z@example.test", to=["a@example.test"],
                                  subject="x\r\nBcc: evil@example.test", body="x"))
    with pytest.raises(DataError):
        build_message(ComposeSpec(sender="z@example.test", to=["a@example.test"],
                                  headers=["X-A: b\nX-B: c"], body="x"))
