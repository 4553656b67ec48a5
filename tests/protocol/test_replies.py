"""The reply model: SMTP multi-line and enhanced codes, POP3 status, exit-code mapping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtool.exitcodes import ExitCode
from mailtool.protocol.replies import (
    Reply,
    ReplyParseError,
    SMTPReplyReader,
    decode_server_text,
    exit_code_for,
    parse_pop3_status,
    parse_smtp_line,
    parse_smtp_reply,
)

CASES = [
    (b"250 OK\r\n", 250, None, ("OK",)),
    (b"250\r\n", 250, None, ("",)),
    (b"550 5.1.1 <a@b.test>: user unknown\r\n", 550, "5.1.1", ("<a@b.test>: user unknown",)),
    (b"451 4.7.1 Greylisted\r\n", 451, "4.7.1", ("Greylisted",)),
    # class mismatch: not an enhanced code
    (b"550 4.1.1 odd\r\n", 550, None, ("4.1.1 odd",)),
    (b"556 5.1.10 null MX\r\n", 556, "5.1.10", ("null MX",)),
    (
        b"250-mx.test Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\n",
        250,
        None,
        ("mx.test Hello", "PIPELINING", "SIZE 1000", "SMTPUTF8"),
    ),
    (b"421-4.3.2 closing\r\n421 4.3.2 try later\r\n", 421, "4.3.2", ("closing", "try later")),
    (b"220 bare LF\n", 220, None, ("bare LF",)),
]


@pytest.mark.parametrize(("raw", "code", "enhanced", "lines"), CASES)
def test_smtp_reply_table(raw: bytes, code: int, enhanced: str | None, lines: tuple[str, ...]) -> None:
    reply = parse_smtp_reply(raw)
    assert (reply.code, reply.enhanced, reply.lines) == (code, enhanced, lines)


@pytest.mark.parametrize(("raw", "code", "enhanced", "lines"), CASES)
def test_smtp_reply_fed_line_by_line(
    raw: bytes, code: int, enhanced: str | None, lines: tuple[str, ...]
) -> None:
    reader = SMTPReplyReader()
    got = [reader.feed(line) for line in raw.splitlines(keepends=True)]
    assert all(r is None for r in got[:-1])
    assert got[-1] is not None and got[-1].code == code


@pytest.mark.parametrize(
    "raw",
    [b"", b"25", b"abc hello", b"2500 x", b"250x", b"650 no", b"199 no", b"2a0 x", b"270 x"],
)
def test_malformed_smtp_lines(raw: bytes) -> None:
    with pytest.raises(ReplyParseError):
        parse_smtp_line(raw)


def test_mixed_codes_refused() -> None:
    with pytest.raises(ReplyParseError):
        parse_smtp_reply(b"250-a\r\n251 b\r\n")


def test_unterminated_reply_refused() -> None:
    with pytest.raises(ReplyParseError):
        parse_smtp_reply(b"250-a\r\n250-b\r\n")


def test_endless_multiline_reply_is_bounded() -> None:
    reader = SMTPReplyReader(max_lines=10)
    with pytest.raises(ReplyParseError):
        for _ in range(11):
            reader.feed(b"250-more\r\n")


def test_one_line_and_classes() -> None:
    reply = parse_smtp_reply(b"550-5.1.1 no such\r\n550 5.1.1 user\r\n")
    assert reply.one_line() == "550 5.1.1 no such / user"
    assert reply.is_permanent and not reply.is_transient and not reply.is_positive
    temp = parse_smtp_reply(b"451 4.7.1 later\r\n")
    assert temp.is_transient and not temp.is_permanent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"250 ok", ExitCode.OK),
        (b"354 go on", ExitCode.OK),
        (b"451 4.7.1 greylisted", ExitCode.TEMPFAIL),
        (b"421 closing", ExitCode.TEMPFAIL),
        (b"550 5.1.1 unknown", ExitCode.NOUSER),
        (b"550 5.1.2 bad host", ExitCode.NOHOST),
        (b"556 5.1.10 null MX", ExitCode.NOHOST),
        (b"550 no such user here", ExitCode.UNAVAILABLE),
        (b"554 5.7.1 relay denied", ExitCode.UNAVAILABLE),
        (b"535 5.7.8 bad credentials", ExitCode.NOPERM),
        (b"530 5.7.0 auth required", ExitCode.NOPERM),
        (b"552 5.3.4 too big", ExitCode.UNAVAILABLE),
    ],
)
def test_smtp_exit_codes(raw: bytes, expected: ExitCode) -> None:
    assert exit_code_for(parse_smtp_reply(raw + b"\r\n")) == expected


@pytest.mark.parametrize(
    ("raw", "status", "code", "text", "exit_code"),
    [
        (b"+OK ready\r\n", "+OK", None, "ready", ExitCode.OK),
        (b"+OK\r\n", "+OK", None, "", ExitCode.OK),
        (b"-ERR [IN-USE] locked\r\n", "-ERR", "IN-USE", "locked", ExitCode.TEMPFAIL),
        (b"-ERR [SYS/TEMP] later\r\n", "-ERR", "SYS/TEMP", "later", ExitCode.TEMPFAIL),
        (b"-ERR [SYS/PERM] gone\r\n", "-ERR", "SYS/PERM", "gone", ExitCode.UNAVAILABLE),
        (b"-ERR [AUTH] wrong password\r\n", "-ERR", "AUTH", "wrong password", ExitCode.NOPERM),
        (b"-ERR [LOGIN-DELAY] wait\r\n", "-ERR", "LOGIN-DELAY", "wait", ExitCode.TEMPFAIL),
        (b"-ERR no such message\r\n", "-ERR", None, "no such message", ExitCode.UNAVAILABLE),
    ],
)
def test_pop3_status(
    raw: bytes, status: str, code: str | None, text: str, exit_code: ExitCode
) -> None:
    reply = parse_pop3_status(raw)
    assert (reply.status, reply.resp_code, reply.text) == (status, code, text)
    assert exit_code_for(reply) == exit_code


@pytest.mark.parametrize("raw", [b"OK fine", b"+OKAY", b"-ERROR", b"", b"* OK imap"])
def test_pop3_malformed(raw: bytes) -> None:
    with pytest.raises(ReplyParseError):
        parse_pop3_status(raw)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("NO", "AUTHENTICATIONFAILED", ExitCode.NOPERM),
        ("NO", "UNAVAILABLE", ExitCode.TEMPFAIL),
        ("NO", "OVERQUOTA", ExitCode.TEMPFAIL),
        ("NO", "NONEXISTENT", ExitCode.UNAVAILABLE),
        ("NO", None, ExitCode.UNAVAILABLE),
        ("BAD", None, ExitCode.PROTOCOL),
        ("BYE", None, ExitCode.TEMPFAIL),
        ("OK", None, ExitCode.OK),
    ],
)
def test_imap_exit_codes(status: str, code: str | None, expected: ExitCode) -> None:
    assert exit_code_for(Reply(status=status, lines=("x",), resp_code=code)) == expected


def test_decode_server_text_escapes_controls() -> None:
    assert decode_server_text(b"a\x1b[31mred\x00\r\n") == "a\\x1b[31mred\\x00"
    assert decode_server_text(b"caf\xc3\xa9 \xff") == "café \ufffd"


def test_long_text_is_elided_in_one_line() -> None:
    reply = parse_smtp_reply(b"550 " + b"x" * 10000 + b"\r\n")
    assert len(reply.one_line()) < 2100


# --- properties ---------------------------------------------------------------------------

texts = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60
).map(str.strip)


@given(
    code=st.integers(200, 599).filter(lambda c: c // 10 % 10 <= 5),
    enhanced=st.one_of(st.none(), st.tuples(st.integers(0, 999), st.integers(0, 999))),
    lines=st.lists(texts, min_size=1, max_size=6),
)
def test_smtp_round_trip(code: int, enhanced: tuple[int, int] | None, lines: list[str]) -> None:
    enh = f"{code // 100}.{enhanced[0]}.{enhanced[1]}" if enhanced and code // 100 != 3 else None
    wire = b""
    for index, text in enumerate(lines):
        sep = " " if index == len(lines) - 1 else "-"
        body = f"{enh} {text}" if enh else text
        wire += f"{code}{sep}{body}\r\n".encode()
    reply = parse_smtp_reply(wire)
    assert reply.code == code
    if enh is not None:
        assert reply.enhanced == enh
        assert reply.lines == tuple(lines)
    elif reply.enhanced is None:
        assert reply.lines == tuple(lines)


@given(st.binary(max_size=300))
def test_smtp_parser_only_raises_parse_errors(data: bytes) -> None:
    try:
        parse_smtp_reply(data)
    except ReplyParseError:
        pass


@given(st.binary(max_size=200))
def test_pop3_parser_only_raises_parse_errors(data: bytes) -> None:
    try:
        reply = parse_pop3_status(data)
    except ReplyParseError:
        return
    assert reply.status in ("+OK", "-ERR")
