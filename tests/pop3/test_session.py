"""The sans-I/O POP3 session and its pure parsers: fed whole, byte by byte, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtool.errors import DataError, LineTooLongError, ProtocolError
from mailtool.protocol.pop3.session import (
    NEED_DATA,
    Challenge,
    Data,
    DotUnstuffer,
    Greeting,
    Line,
    POP3Session,
    Status,
    apop_digest,
    check_uidl,
    encode_command,
    parse_capa,
    parse_list,
    parse_uidl,
    unstuff,
)
from mailtool.protocol.replies import parse_pop3_status
from mailtool.protocol.wire import dot_stuff


def drive(session: POP3Session, wire: bytes, step: int) -> list[object]:
    """Feed ``wire`` in pieces of ``step`` bytes; return the events, Data merged."""
    events: list[object] = []
    body = b""
    for i in range(0, len(wire), step):
        session.receive_data(wire[i : i + step])
        while (event := session.next_event()) is not NEED_DATA:
            if isinstance(event, Data):
                body += event.data
                continue
            if body:
                events.append(Data("RETR", body))
                body = b""
            events.append(event)
    return events


GREETING = b"+OK ready <1896.697170952@dbc.mtview.ca.us>\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_pipelined_retr_list_quit(step: int) -> None:
    message = b"Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\nlast\r\n"
    wire = (
        GREETING
        + b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n"
        + b"+OK message follows\r\n" + dot_stuff(message)
        + b"-ERR [SYS/TEMP] no such message\r\n"
        + b"+OK bye\r\n"
    )
    s = POP3Session()
    s.send_command("LIST")
    s.send_command("RETR", "1")
    s.send_command("RETR", "9")
    s.send_command("QUIT")
    events = drive(s, wire, step)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Greeting", "Status", "Line", "Line", "End", "Status", "Data", "End",
                     "Status", "Status"]
    assert isinstance(events[0], Greeting)
    assert events[0].timestamp == "<1896.697170952@dbc.mtview.ca.us>"
    assert events[2] == Line("LIST", b"1 120")
    assert isinstance(events[6], Data) and events[6].data == message
    err = events[8]
    assert isinstance(err, Status) and err.command == "RETR" and err.reply.resp_code == "SYS/TEMP"
    assert s.pending == 0


@pytest.mark.parametrize(
    ("wire", "body"),
    [
        (b".\r\n", b""),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...x\r\n.\r\n", b"..x\r\n"),
        (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n"),
        (b"x.\r\n.\r\n", b"x.\r\n"),
        (b"bare\n.x\r\n.\r\n", b"bare\nx\r\n"),  # a bare LF still starts a line
        (b"\r\n.\r\n", b"\r\n"),
    ],
)
def test_unstuff_table(wire: bytes, body: bytes) -> None:
    assert unstuff(wire + b"REST") == (body, b"REST")


def test_unstuff_unterminated() -> None:
    with pytest.raises(ProtocolError):
        unstuff(b"a\r\n.x\r\n")


@given(st.binary(max_size=600), st.lists(st.integers(1, 40), max_size=30))
def test_unstuff_inverts_dot_stuff_whatever_the_chunking(data: bytes, cuts: list[int]) -> None:
    # Our SMTP stuffer normalises line ends first; POP3 servers send CRLF text too.
    wire = dot_stuff(data)
    expected = wire[:-3]
    expected = b"\r\n".join(line[1:] if line.startswith(b".") else line
                            for line in expected.split(b"\r\n"))
    decoder = DotUnstuffer()
    out, pos, rest = b"", 0, None
    for cut in [*cuts, len(wire)]:
        got, rest = decoder.feed(wire[pos : pos + cut])
        pos += cut
        out += got
        if rest is not None:
            break
    assert rest == b"" and pos >= len(wire)
    assert out == expected


@given(st.binary(max_size=300))
def test_session_only_raises_protocol_errors(garbage: bytes) -> None:
    s = POP3Session()
    s.send_command("UIDL")
    s.send_command("RETR", "1")
    try:
        s.receive_data(garbage)
        for _ in range(1000):
            if s.next_event() is NEED_DATA:
                break
    except ProtocolError:
        pass


def test_auth_challenges_then_status() -> None:
    s = POP3Session()
    s.send_command("AUTH", "LOGIN")
    events = drive(s, GREETING + b"+ VXNlcm5hbWU6\r\n+ \r\n+OK in\r\n", 5)
    assert events[1] == Challenge("AUTH", b"VXNlcm5hbWU6")
    assert events[2] == Challenge("AUTH", b"")
    assert isinstance(events[3], Status) and events[3].reply.is_positive
    with pytest.raises(ProtocolError):  # the exchange is over
        s.send_auth_response(b"abc")


def test_unrequested_data_is_a_protocol_error() -> None:
    s = POP3Session()
    s.receive_data(GREETING + b"+OK surprise\r\n")
    assert isinstance(s.next_event(), Greeting)
    with pytest.raises(ProtocolError):
        s.next_event()
    with pytest.raises(ProtocolError):  # refuses further use
        s.next_event()


def test_endless_status_line_is_bounded() -> None:
    s = POP3Session()
    s.receive_data(b"+OK " + b"x" * 70000)
    with pytest.raises(LineTooLongError):
        s.next_event()


def test_endless_listing_line_is_bounded() -> None:
    s = POP3Session()
    s.send_command("UIDL")
    s.receive_data(GREETING + b"+OK\r\n1 " + b"x" * 70000)
    assert isinstance(s.next_event(), Greeting)
    assert isinstance(s.next_event(), Status)
    with pytest.raises(LineTooLongError):
        while s.next_event() is not NEED_DATA:
            pass


def test_single_line_list_and_uidl_with_argument() -> None:
    s = POP3Session()
    s.send_command("UIDL", "3")
    s.send_command("LIST", "3")
    events = drive(s, GREETING + b"+OK 3 abc\r\n+OK 3 120\r\n", 4)
    assert [type(e) for e in events] == [Greeting, Status, Status]


def test_discard_buffer_after_stls() -> None:
    s = POP3Session()
    s.send_command("STLS")
    s.receive_data(GREETING + b"+OK begin TLS\r\n+OK injected\r\n")
    assert isinstance(s.next_event(), Greeting)
    assert isinstance(s.next_event(), Status)
    assert s.discard_buffer() == len(b"+OK injected\r\n")
    assert s.next_event() is NEED_DATA


@pytest.mark.parametrize("arg", ["a\r\nDELE 1", "x\n", "nul\0", "sp ace"])
def test_command_argument_guard(arg: str) -> None:
    with pytest.raises((DataError, ProtocolError)):
        encode_command("USER", arg)


def test_pass_may_contain_spaces() -> None:
    assert encode_command("PASS", "a b") == b"PASS a b\r\n"


def test_apop_digest_rfc1939_example() -> None:
    assert apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == (
        "c4c9334bac560ecc979e58001b3e22fb"
    )


def test_capa() -> None:
    caps = parse_capa([b"TOP", b"sasl PLAIN LOGIN", b"PIPELINING", b""])
    assert caps == {"TOP": (), "SASL": ("PLAIN", "LOGIN"), "PIPELINING": ()}


@pytest.mark.parametrize(
    "uid", [b"", b"x" * 71, b"with space", b"tab\t", b"del\x7f", b"\xc3\xa9"]
)
def test_bad_uidls_are_refused(uid: bytes) -> None:
    with pytest.raises(ProtocolError):
        check_uidl(uid)


def test_uidl_limits() -> None:
    assert check_uidl(b"!" + b"~" * 69) == "!" + "~" * 69
    assert parse_uidl([b"1 a", b"2 b"]) == {1: "a", 2: "b"}
    with pytest.raises(ProtocolError, match="same unique-id"):
        parse_uidl([b"1 a", b"2 a"])
    with pytest.raises(ProtocolError, match="twice"):
        parse_uidl([b"1 a", b"1 b"])
    with pytest.raises(ProtocolError):
        parse_uidl([b"0 a"])
    with pytest.raises(ProtocolError):
        parse_uidl([b"1 a extra"])


def test_list_parsing() -> None:
    assert parse_list([b"1 100", b"2 5"]) == {1: 100, 2: 5}
    with pytest.raises(ProtocolError):
        parse_list([b"1 -5"])
    with pytest.raises(ProtocolError):
        parse_list([b"x 5"])


def test_status_codes() -> None:
    assert parse_pop3_status(b"-ERR [IN-USE] locked\r\n").resp_code == "IN-USE"


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_take_lines_gives_the_same_lines_as_line_events(step: int) -> None:
    """The bulk path (``take_lines``) and ``Line`` events see the same listing, however
    the bytes arrive, and a listing line is bounded either way."""
    listing = b"".join(b"%d u-%d\r\n" % (n, n) for n in range(1, 300))
    wire = b"+OK hi\r\n+OK 299 messages\r\n" + listing + b".\r\n+OK bye\r\n"
    session = POP3Session()
    session.send_command("UIDL")
    session.send_command("QUIT")
    got: list[bytes] = []
    kinds: list[str] = []
    for start in range(0, len(wire), step):
        session.receive_data(wire[start : start + step])
        while True:
            got += session.take_lines()
            event = session.next_event()
            if event is NEED_DATA:
                break
            kinds.append(type(event).__name__)
            if isinstance(event, Line):
                got.append(event.line)
    assert got == listing.replace(b"\r\n", b"\n").split(b"\n")[:-1]
    assert [k for k in kinds if k != "Line"] == ["Greeting", "Status", "End", "Status"]


def test_take_lines_refuses_an_endless_listing_line() -> None:
    from mailtool.errors import LineTooLongError
    from mailtool.protocol.pop3.session import MAX_STATUS_LINE

    session = POP3Session()
    session.send_command("LIST")
    session.receive_data(b"+OK\r\n+OK\r\n")
    session.next_event()
    session.next_event()
    session.receive_data(b"1 " + b"9" * (MAX_STATUS_LINE + 10) + b"\r\n.\r\n")
    with pytest.raises(LineTooLongError):
        session.take_lines()


def test_read_burst_takes_everything_already_arrived_without_waiting() -> None:
    """``Transport.read_burst`` (the POP3 client's read) returns what several server
    writes delivered, in one piece, and never waits for more once it has something."""
    import socket

    from mailtool.protocol.transport import Transport

    ours, theirs = socket.socketpair()
    with ours, theirs:
        transport = Transport(ours, "peer", timeout=5, peer=("peer", 0))
        for part in (b"+OK one\r\n", b"+OK two\r\n", b"x" * 100_000):
            theirs.sendall(part)
        got = b""
        while len(got) < 100_018:
            got += transport.read_burst()
        assert got == b"+OK one\r\n+OK two\r\n" + b"x" * 100_000
        theirs.sendall(b"more")
        assert transport.read_burst() == b"more"  # returns at once, no timeout
        theirs.close()
        from mailtool.errors import ConnectionLostError

        with pytest.raises(ConnectionLostError):
            transport.read_burst()
