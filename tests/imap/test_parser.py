"""The pure IMAP lexer/parser and the sans-I/O session: RFC examples as tables, fed whole,
byte by byte and followed by trailing bytes; bounds; hypothesis invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtool.errors import DataError, ProtocolError
from mailtool.protocol.imap import utf7
from mailtool.protocol.imap.lexer import IMAPParseError
from mailtool.protocol.imap.parser import fetch_prefix_items, parse_line, parse_set
from mailtool.protocol.imap.session import (
    NEED_DATA,
    BodyChunk,
    BodyStart,
    CommandDone,
    ContinuationRequest,
    IMAPSession,
    LiteralData,
    Raw,
    ResponseReceived,
    Wait,
)
from mailtool.protocol.imap.types import (
    Continuation,
    ESearch,
    FetchData,
    ListEntry,
    MailboxStatus,
    StatusResponse,
    StreamedLiteral,
    Untagged,
    Vanished,
)

# --- single-line responses (RFC 9051 / 3501 examples) -----------------------------------

LINES: list[tuple[bytes, Any]] = [
    (b"* OK IMAP4rev1 Service Ready", StatusResponse(None, "OK", None, "IMAP4rev1 Service Ready")),
    (b"a001 OK LOGIN completed", StatusResponse("a001", "OK", None, "LOGIN completed")),
    (b"* BYE Autologout; idle for too long", StatusResponse(None, "BYE", None,
                                                            "Autologout; idle for too long")),
    (b"A1 no [AUTHENTICATIONFAILED] Authentication failed.", None),
    (b"+ Ready for additional command text", Continuation("Ready for additional command text",
                                                          b"Ready for additional command text")),
    (b"+", Continuation("", b"")),
    (b"* 172 EXISTS", Untagged("EXISTS", 172, None)),
    (b"* 44 EXPUNGE", Untagged("EXPUNGE", 44, None)),
    (b"* SEARCH 2 84 882", Untagged("SEARCH", None, (2, 84, 882), None)),
    (b"* SEARCH", Untagged("SEARCH", None, (), None)),
    (b"* SEARCH 2 5 (MODSEQ 917162500)", Untagged("SEARCH", None, (2, 5), 917162500)),
    (b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
     Untagged("FLAGS", None, ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"))),
    (b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED",
     Untagged("CAPABILITY", None, ("IMAP4REV1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED"))),
    (b"* ENABLED CONDSTORE QRESYNC", Untagged("ENABLED", None, ("CONDSTORE", "QRESYNC"))),
    (b'* LIST (\\Noselect) "/" ~/Mail/foo',
     Untagged("LIST", None, ListEntry(("\\Noselect",), "/", b"~/Mail/foo", "~/Mail/foo"))),
    (b'* LIST () NIL inbox', Untagged("LIST", None, ListEntry((), None, b"inbox", "inbox"))),
    (b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"',
     Untagged("LIST", None, ListEntry(("\\HasNoChildren",), "/", b"Entw&APw-rfe", "Entwürfe"))),
    (b'* LIST (\\Sent \\HasNoChildren) "." "Sent" ("CHILDINFO" ("SUBSCRIBED"))',
     Untagged("LIST", None, ListEntry(("\\Sent", "\\HasNoChildren"), ".", b"Sent", "Sent",
                                      (b"CHILDINFO", [b"SUBSCRIBED"])))),
    (b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)",
     Untagged("STATUS", None, MailboxStatus(b"blurdybloop", "blurdybloop",
                                            {"MESSAGES": 231, "UIDNEXT": 44292}))),
    (b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800',
     Untagged("ESEARCH", None, ESearch("A285", True, None, 7, 3800))),
    (b'* ESEARCH (TAG "a") UID ALL 1:3,5 COUNT 4',
     Untagged("ESEARCH", None, ESearch("a", True, parse_set("1:3,5"), None, None, 4))),
    (b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540",
     Untagged("VANISHED", None, Vanished(True, parse_set("41,43:116,118,120:211,214:540")))),
    (b"* VANISHED 405,407,410", Untagged("VANISHED", None, Vanished(False, parse_set("405,407,410")))),
    (b'* ID ("name" "Cyrus" "version" "1.5")',
     Untagged("ID", None, {"name": "Cyrus", "version": "1.5"})),
    (b"* ID NIL", Untagged("ID", None, {})),
    (b'* NAMESPACE (("" "/")) (("~" "/")) NIL',
     Untagged("NAMESPACE", None, (((("", "/"),), (("~", "/"),), ())))),
    (b"* XUNKNOWN foo (1 2) \"x\"", Untagged("XUNKNOWN", None, ["foo", ["1", "2"], b"x"])),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_lines(line: bytes, expected: Any) -> None:
    got = parse_line(line)
    if expected is not None:
        assert got == expected


def test_response_codes() -> None:
    r = parse_line(b"* OK [UIDVALIDITY 3857529045] UIDs valid")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert (r.code.name, r.code.args) == ("UIDVALIDITY", (3857529045,))
    r = parse_line(b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert r.code.args == ("\\Deleted", "\\Seen", "\\*")
    r = parse_line(b"A003 OK [APPENDUID 38505 3955] APPEND completed")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert r.code.args == ("38505", "3955")
    r = parse_line(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR] Dovecot ready.")
    assert isinstance(r, StatusResponse) and r.code is not None
    assert r.code.args == ("IMAP4REV1", "LITERAL+", "SASL-IR")
    r = parse_line(b"a NO [OVERQUOTA] Sorry")
    assert isinstance(r, StatusResponse) and str(r.reply()) == "NO [OVERQUOTA] Sorry"
    r = parse_line(b"* OK [HIGHESTMODSEQ 715194045007] Highest")
    assert isinstance(r, StatusResponse) and r.code is not None and r.code.args == (715194045007,)
    r = parse_line(b"* OK [READ-WRITE] SELECT completed")
    assert isinstance(r, StatusResponse) and r.code is not None and r.code.name == "READ-WRITE"


RFC_FETCH = (
    b'* 12 FETCH (FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
    b'RFC822.SIZE 4286 ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
    b'"IMAP4rev1 WG mtg summary and minutes" (("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" '
    b'"cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ((NIL NIL "minutes" '
    b'"CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    b'"<B27397-0100000@cac.washington.edu>") BODY ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL '
    b'NIL "7BIT" 3028 92) MODSEQ (624140003) UID 4827313)'
)


def test_rfc_fetch_example() -> None:
    r = parse_line(RFC_FETCH)
    assert isinstance(r, Untagged) and isinstance(r.value, FetchData)
    f = r.value
    assert f.seq == 12 and f.uid == 4827313 and f.size == 4286 and f.modseq == 624140003
    assert f.flags == ("\\Seen",)
    assert f.internaldate_dt is not None and f.internaldate_dt.utcoffset() is not None
    env = f.envelope
    assert env is not None and env.subject == "IMAP4rev1 WG mtg summary and minutes"
    assert [str(a) for a in env.cc] == ["minutes@CNRI.Reston.VA.US", "John Klensin <KLENSIN@MIT.EDU>"]
    assert env.in_reply_to is None and env.bcc == ()
    bs = f.bodystructure
    assert bs is not None and bs.mime_type == "text/plain" and bs.lines == 92
    assert bs.params == {"charset": "US-ASCII"} and bs.part_id == "1"


MULTIPART = (
    b'* 1 FETCH (UID 9 BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 1 '
    b'NIL NIL NIL NIL)(("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 20 2 NIL '
    b'NIL NIL NIL)("IMAGE" "PNG" ("NAME" "a.png") "<id1>" NIL "BASE64" 400 NIL '
    b'("INLINE" ("FILENAME" "a.png")) NIL NIL) "RELATED" ("BOUNDARY" "b2") NIL NIL NIL)'
    b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 300 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) '
    b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1 NIL NIL NIL NIL) 12 NIL ("ATTACHMENT" '
    b'("FILENAME" "fwd.eml")) NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL))'
)


def test_multipart_bodystructure() -> None:
    r = parse_line(MULTIPART)
    assert isinstance(r, Untagged) and isinstance(r.value, FetchData)
    bs = r.value.bodystructure
    assert bs is not None and bs.is_multipart and bs.subtype == "mixed"
    ids = [(p.part_id, p.mime_type) for p in bs.walk()]
    assert ids == [("", "multipart/mixed"), ("1", "text/plain"), ("2", "multipart/related"),
                   ("2.1", "text/html"), ("2.2", "image/png"), ("3", "message/rfc822")]
    png = bs.parts[1].parts[1]
    assert png.filename == "a.png" and png.disposition == "inline" and png.id == "<id1>"
    msg = bs.parts[2]
    assert msg.envelope is not None and msg.envelope.subject == "inner"
    assert msg.body is not None and msg.body.part_id == "3.1" and msg.lines == 12
    assert msg.filename == "fwd.eml"


def test_quoted_escapes_and_section_names() -> None:
    r = parse_line(b'* 3 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] "a \\"q\\" \\\\ b" '
                   b'BODY[1]<0> NIL BINARY[2] "x")')
    assert isinstance(r, Untagged) and isinstance(r.value, FetchData)
    assert r.value.items["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b'a "q" \\ b'
    assert r.value.body("1") is None and "BODY[1]<0>" in r.value.items
    assert r.value.items["BINARY[2]"] == b"x"


BAD_LINES = [
    b"",
    b"*",
    b"* ",
    b"A1 MAYBE done",
    b"* 12 FETCH (FLAGS (\\Seen)",
    b"* 12 FETCH (UID abc)",
    b"* 12 FETCH (UID 99999999999999999999999)",
    b'* 12 FETCH (ENVELOPE ("date" "subj"))',
    b'* 12 FETCH (ENVELOPE (NIL NIL (("a" NIL "b")) NIL NIL NIL NIL NIL NIL NIL))',
    b"* 12 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\"))",
    b'* 12 FETCH (BODY[1 "x")',
    b'* OK [UIDVALIDITY abc] x',
    b"* OK [UIDVALIDITY 1 x",
    b'* LIST (\\Noselect) "/',
    b"* STATUS box (MESSAGES)",
    b"* VANISHED 1:*",
    b"* VANISHED 0",
    b"* ESEARCH UID COUNT x",
    b"* SEARCH 1 x",
    b"* FLAGS (\\Seen (x))",
    b"* 1 FETCH " + b"(" * 200 + b")" * 200,
    b'* LIST () "/" "unterminated',
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_lines_raise_protocol_error(line: bytes) -> None:
    with pytest.raises(IMAPParseError):
        parse_line(line)


def test_fetch_prefix_items() -> None:
    prefix = b'* 7 FETCH (UID 42 FLAGS (\\Seen $Junk) RFC822.SIZE 1234 INTERNALDATE ' \
             b'"01-Jan-2024 10:00:00 +0000" MODSEQ (99) BODY[] {1234}'
    assert fetch_prefix_items(prefix) == {
        "UID": 42, "FLAGS": ("\\Seen", "$Junk"), "RFC822.SIZE": 1234,
        "INTERNALDATE": "01-Jan-2024 10:00:00 +0000", "MODSEQ": 99,
    }
    assert fetch_prefix_items(b"* 7 FETCH (BODY[] {3}") == {}


# --- the session: framing, fed whole / byte by byte / with trailing bytes ----------------

STREAM = (
    b"* 2 FETCH (UID 10 RFC822.SIZE 12 BODY[] {12}\r\nhello\r\nworld FLAGS (\\Seen))\r\n"
    b'* LIST () "/" {5}\r\na"b\\c\r\n'
    b"* 3 FETCH (UID 11 BODY[HEADER] {0}\r\n)\r\n"
    b"A0001 OK done\r\n"
)


def _events(session: IMAPSession, chunks: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        session.receive_data(chunk)
        out.extend(session.events())
    return out


def _normalise(events: list[Any]) -> list[Any]:
    """Merge adjacent body chunks (their split depends on how data arrived)."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, BodyChunk) and out and isinstance(out[-1], BodyChunk):
            out[-1] = BodyChunk(out[-1].data + event.data)
        elif isinstance(event, ResponseReceived):
            out.append(("R", event.response))
        elif isinstance(event, CommandDone):
            out.append(("D", event.command.tag, event.status))
        else:
            out.append(event)
    return out


def _session() -> IMAPSession:
    s = IMAPSession()
    s.command("UID FETCH", Raw("1:*"), [Raw("BODY[]")])
    return s


def test_session_whole_vs_byte_by_byte() -> None:
    whole = _normalise(_events(_session(), [STREAM]))
    bytewise = _normalise(_events(_session(), [STREAM[i : i + 1] for i in range(len(STREAM))]))
    assert whole == bytewise
    kinds = [type(e).__name__ if not isinstance(e, tuple) else e[0] for e in whole]
    assert kinds == ["BodyStart", "BodyChunk", "BodyEnd", "R", "R", "BodyStart", "BodyEnd", "R", "D"]
    start = whole[0]
    assert isinstance(start, BodyStart) and (start.seq, start.item, start.size) == (2, "BODY[]", 12)
    assert whole[1] == BodyChunk(b"hello\r\nworld")
    fetch = whole[3][1].value
    assert fetch.items == {"UID": 10, "RFC822.SIZE": 12, "BODY[]": StreamedLiteral(12),
                           "FLAGS": ("\\Seen",)}
    listing = whole[4][1].value
    assert listing.raw_name == b'a"b\\c'
    assert whole[-1][2].ok


def test_session_trailing_bytes_stay_pending() -> None:
    s = _session()
    first_end = STREAM.index(b"* LIST")
    s.receive_data(STREAM[: first_end + 7])
    events = list(s.events())
    assert isinstance(events[-1], ResponseReceived) and events[-1].response.kind == "FETCH"
    assert s.next_event() is NEED_DATA
    s.receive_data(STREAM[first_end + 7 :])
    rest = list(s.events())
    assert isinstance(rest[-1], CommandDone)


def test_untagged_collected_per_command_in_order() -> None:
    s = IMAPSession()
    a = s.command("NOOP").command
    b = s.command("UID SEARCH", Raw("ALL")).command
    s.receive_data(b"* 3 EXISTS\r\nA0001 OK noop\r\n* SEARCH 1 2\r\nA0002 OK search\r\n")
    done = [e for e in s.events() if isinstance(e, CommandDone)]
    assert [d.command.tag for d in done] == ["A0001", "A0002"]
    assert [u.kind for u in a.untagged] == ["EXISTS"]  # type: ignore[union-attr]
    assert [u.value for u in b.untagged] == [(1, 2)]  # type: ignore[union-attr]


def test_unknown_tag_is_protocol_error_and_session_dies() -> None:
    s = IMAPSession()
    s.command("NOOP")
    s.receive_data(b"B0007 OK who\r\n")
    with pytest.raises(IMAPParseError, match="no command in flight"):
        s.next_event()
    with pytest.raises(ProtocolError):
        s.next_event()


@pytest.mark.parametrize("announce", [b"{999999999999}", b"{2000000}", b"~{99999999999999999999}"])
def test_huge_inline_literal_refused_before_reading(announce: bytes) -> None:
    s = IMAPSession()
    s.command("LIST", "", "*")
    s.receive_data(b'* LIST () "/" ' + announce + b"\r\n")
    with pytest.raises(IMAPParseError, match="limit"):
        s.next_event()


def test_huge_body_literal_refused_before_reading() -> None:
    s = IMAPSession()
    s.command("UID FETCH", Raw("1"), [Raw("BODY.PEEK[]")])
    s.receive_data(b"* 1 FETCH (UID 1 BODY[] {999999999999}\r\n")
    with pytest.raises(IMAPParseError, match="above the limit"):
        s.next_event()


def test_long_line_refused() -> None:
    s = IMAPSession()
    s.receive_data(b"* OK " + b"x" * (9 * 1024 * 1024))
    with pytest.raises(IMAPParseError, match="longer than"):
        s.next_event()


def test_continuation_text_is_not_a_literal() -> None:
    s = IMAPSession()
    s.receive_data(b"+ send {5}\r\n")
    event = s.next_event()
    assert isinstance(event, ContinuationRequest) and event.continuation.text == "send {5}"


# --- rendering commands -----------------------------------------------------------------


def test_command_rendering_and_literals() -> None:
    s = IMAPSession()
    parts = s.command("LOGIN", "joe", 'pa "ss\\')
    assert parts.parts == [b'A0001 LOGIN joe "pa \\"ss\\\\"\r\n']
    parts = s.command("SELECT", "Entwürfe".encode())
    assert parts.parts == [b"A0002 SELECT {9}\r\n", Wait.CONTINUATION, "Entwürfe".encode() + b"\r\n"]
    s.literal_plus = True
    parts = s.command("APPEND", "INBOX", LiteralData(3, [b"abc"]))
    assert parts.parts[0] == b"A0003 APPEND INBOX {3+}\r\n" and not parts.synchronising
    s.literal_plus, s.literal_minus = False, True
    assert s.command("X", b"a" * 4096).parts[0].endswith(b"{4096+}\r\n")  # type: ignore[union-attr]
    assert s.command("X", b"a" * 4097).parts[1] is Wait.CONTINUATION
    assert s.command("X", "NIL").parts == [b'A0006 X "NIL"\r\n']
    assert s.command("X", "").parts == [b'A0007 X ""\r\n']
    with pytest.raises(DataError):
        s.command("X", Raw("ALL\r\nA2 LOGOUT"))
    with pytest.raises(DataError):
        s.command("X", "a\r\nb")


# --- sequence sets, modified UTF-7 ------------------------------------------------------


def test_parse_set() -> None:
    assert list(parse_set("5,1:3,4")) == [1, 2, 3, 4, 5]
    assert str(parse_set("9:7,1")) == "1,7:9"
    assert len(parse_set("1:1000000")) == 1000000


@pytest.mark.parametrize(("text", "wire"), [
    ("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("A&B", "A&-B"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
])
def test_utf7_examples(text: str, wire: str) -> None:
    assert utf7.encode(text) == wire
    assert utf7.decode(wire) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "&Jjo!-", "é", "&=-"])
def test_utf7_invalid(bad: str) -> None:
    with pytest.raises(ValueError):
        utf7.decode(bad)
    assert utf7.decode_mailbox(bad.encode()) == bad


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_utf7_round_trip(text: str) -> None:
    wire = utf7.encode(text)
    assert wire.isascii()
    assert utf7.decode(wire) == text


# --- hypothesis: only our protocol error, whatever the server sends ---------------------

_TOKENS = st.sampled_from([
    b"* ", b"A0001 ", b"+ ", b"OK ", b"NO ", b"BAD ", b"BYE ", b"FETCH ", b"1 ", b"(", b")",
    b"[", b"]", b"{3}\r\n", b"{0}\r\n", b"~{2}\r\n", b'"', b"\\", b"NIL ", b"UID ", b"FLAGS ",
    b"ENVELOPE ", b"BODYSTRUCTURE ", b"BODY[] ", b"BODY[1]<0> ", b"LIST ", b"STATUS ",
    b"ESEARCH ", b"VANISHED ", b"SEARCH ", b"\r\n", b"abc", b"12:3,4", b"\xff", b" ",
    b"MODSEQ ", b"INTERNALDATE ", b"RFC822.SIZE ", b"CAPABILITY ", b"[UIDVALIDITY ",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_TOKENS, max_size=40), st.binary(max_size=20))
def test_session_raises_only_protocol_errors(tokens: list[bytes], noise: bytes) -> None:
    s = IMAPSession()
    s.command("UID FETCH", Raw("1:*"), [Raw("BODY[]")])
    data = b"".join(tokens) + noise
    try:
        for i in range(0, len(data), 7):
            s.receive_data(data[i : i + 7])
            for _event in s.events():
                pass
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_line_raises_only_protocol_errors(data: bytes) -> None:
    for prefix in (b"", b"* ", b"* 1 FETCH (", b"A1 OK ["):
        try:
            parse_line(prefix + data)
        except ProtocolError:
            pass


# --- the FETCH fast path agrees with the general parser ---------------------------------
_MAX = 2**63 - 1  # the lexer's MAX_NUMBER
_NUMBER = st.one_of(st.integers(0, 2**64), st.sampled_from(
    [0, 1, 10**17, 10**18 - 1, 10**18, _MAX - 1, _MAX, _MAX + 1, 10**19 - 1, 10**19]))
_FLAG = st.sampled_from(["\\Seen", "\\Flagged", "$Label1", "NIL", "nil", "\\Draft",
                         "a.b-c_d", "\\*", "x\"y", "\\NIL", "Nil", "\\", "*", "%", "a]", "UID",
                         "MODSEQ", "FLAGS"])
_ITEM_TEXT = st.one_of(
    st.builds(lambda name, n: f"{name} {n}", st.sampled_from(["UID", "uid", "Uid"]), _NUMBER),
    st.builds(lambda name, n: f"{name} {n}", st.sampled_from(["RFC822.SIZE", "rfc822.size"]),
              _NUMBER),
    st.builds(lambda name, n: f"{name} ({n})", st.sampled_from(["MODSEQ", "modseq"]), _NUMBER),
    st.builds(lambda name, fl, sep: f"{name} (" + sep.join(fl) + ")",
              st.sampled_from(["FLAGS", "FLAGS", "flags"]), st.lists(_FLAG, max_size=4),
              st.sampled_from([" ", " ", "  "])),
    st.sampled_from(["INTERNALDATE \"01-Jan-2024 10:00:00 +0000\"", "X-GM-LABELS ()",
                     "FLAGS NIL", "UID NIL", "MODSEQ (1 2)", "UID -1", "UID 1.5", "FLAGS ( )",
                     "FLAGS (\\Seen )", "UID  7", "MODSEQ ( 5)"]),
)


def _parse_both(segments: list[bytes], literals: list[Any]) -> tuple[Any, Any]:
    from mailtool.protocol.imap.parser import parse_full, parse_response

    results = []
    for parse in (parse_response, parse_full):
        try:
            results.append(parse(segments, literals))
        except IMAPParseError as exc:
            results.append(type(exc))
    return results[0], results[1]


@given(st.lists(_ITEM_TEXT, max_size=5), st.sampled_from([" ", "  ", ""]),
       st.integers(0, 2**33), st.booleans())
@settings(max_examples=300, deadline=None)
def test_fast_fetch_path_matches_the_general_parser(items: list[str], sep: str, seq: int,
                                                    with_body: bool) -> None:
    text = f"* {seq} FETCH (" + sep.join(items)
    if with_body:
        segments = [(text + " BODY[] {5}").encode(), b")"]
        literals: list[Any] = [StreamedLiteral(5)]
    else:
        segments = [(text + ")").encode()]
        literals = []
    fast, full = _parse_both(segments, literals)
    assert fast == full
    again, _ = _parse_both(segments, literals)  # now in an order the parser may have learnt
    assert again == full
    from mailtool.protocol.imap import parser

    names = tuple(item.split(" ")[0] for item in items)
    if items and sep == " " and all(name in parser._SHAPE_ITEMS for name in names):
        parser._learn(names)  # whatever the values: this order's one-match path
        shaped, _ = _parse_both(segments, literals)
        assert shaped == full


def test_fast_fetch_path_is_taken_for_sync_responses() -> None:
    """The common shapes really take the fast path (no Lexer built)."""
    from mailtool.protocol.imap import parser

    calls = []
    original = parser.parse_full
    parser.parse_full = lambda *a: calls.append(a) or original(*a)  # type: ignore[assignment]
    try:
        got = parser.parse_response([b"* 4 FETCH (UID 9 MODSEQ (12) FLAGS (\\Seen))"], [])
        body = parser.parse_response([b"* 5 FETCH (UID 10 RFC822.SIZE 3 FLAGS () BODY[] {3}",
                                      b")"], [StreamedLiteral(3)])
        parser.parse_response([b"* 5 FETCH (UID 10 INTERNALDATE \"01-Jan-2024 10:00:00 +0000\")"], [])
    finally:
        parser.parse_full = original  # type: ignore[assignment]
    assert len(calls) == 1  # only the INTERNALDATE one
    assert got == Untagged(kind="FETCH", number=4, value=FetchData(
        seq=4, items={"UID": 9, "MODSEQ": 12, "FLAGS": ("\\Seen",)}))
    assert isinstance(body, Untagged) and body.value.items["BODY[]"] == StreamedLiteral(3)


@given(st.lists(_ITEM_TEXT, max_size=4), st.integers(1, 2**31))
@settings(max_examples=200, deadline=None)
def test_prefix_fast_path_agrees_with_the_regexes(items: list[str], seq: int) -> None:
    """``fetch_prefix_items`` takes the FETCH fast path when it can; it must find what the
    item regexes find (for servers that send each simple item once, as they do)."""
    from mailtool.protocol.imap import parser

    names = [i.split(" ", 1)[0] for i in items]
    if len(set(names)) != len(names):
        return  # duplicated items: the complete FETCH response decides, not the prefix
    prefix = f"* {seq} FETCH (".encode() + " ".join(items).encode() + b" BODY[] {12}"
    fast = parser.fetch_prefix_items(prefix)
    saved = parser._fast_fetch
    parser._fast_fetch = lambda *a: None  # type: ignore[assignment]
    try:
        slow = parser.fetch_prefix_items(prefix)
    finally:
        parser._fast_fetch = saved
    assert fast == slow


# --- the session's one-pass FETCH lines agree with framing each line -------------------

_OTHER_LINES = st.sampled_from([
    b"* 3 EXISTS", b"* VANISHED (EARLIER) 1:3,7", b"* OK [HIGHESTMODSEQ 9] x",
    b"* 4 FETCH (UID 3 BODY[HEADER] {5}\r\nab)\r\n FLAGS (\\Seen))",
    b"* 5 FETCH (UID 3 RFC822.SIZE 2 FLAGS (\\Seen) BODY[] {2}\r\nxy)",
    b"* 6 FETCH (UID 8 FLAGS {5}\r\n\\Seen)", b"* 7 FETCH (UID 9 FLAGS (\\Seen))\r",
    b"* 8 FETCH (UID 9 FLAGS (\\Seen)) ", b"* 9 fetch (UID 9 FLAGS (\\Seen))",
    b"A0001 OK done", b"A0009 OK not ours", b"", b"+ go on",
])


def _fetch_line_text(items: list[str], seq: int) -> bytes:
    return f"* {seq} FETCH (".encode() + " ".join(items).encode() + b")"


def _run(order: tuple[int, ...], values: list[tuple[int, str, int]]) -> list[bytes]:
    """A plain line in ``order`` (it teaches the parser the order), then lines in the same
    order with any values."""
    def line(uid: int, flags: str, modseq: int) -> bytes:
        texts = [f"UID {uid}", f"FLAGS ({flags})", f"MODSEQ ({modseq})"]
        return _fetch_line_text([texts[i] for i in order], uid % 10**9 or 1)

    return [line(1, "\\Seen", 1)] + [line(*v) for v in values]


_LINE = st.one_of(
    st.builds(lambda items, seq: [_fetch_line_text(items, seq)],
              st.lists(_ITEM_TEXT, min_size=1, max_size=4),
              st.sampled_from([1, 2, 9, 10, 9999999999, 10**10, 0])),
    # runs in the orders servers send (what the one-pass path is for)
    st.builds(_run, st.sampled_from([(0, 1, 2), (0, 2, 1), (1, 0), (0, 1), (2, 1, 0)]),
              st.lists(st.tuples(_NUMBER, st.sampled_from(
                  ["\\Seen", "", "\\Seen \\Flagged", "NIL", "$x \\*", "\\Seen  x", "nil",
                   "x\"y", "a] b", "%", "\\", "{2}", " \\Seen", "\\Seen\t"]),
                  _NUMBER), max_size=5)),
    st.builds(lambda line: [line], _OTHER_LINES),
)


def _session_responses(data: bytes, chunk: int, *, reference: bool) -> list[Any]:
    """What a session makes of ``data`` fed ``chunk`` bytes at a time: events (responses
    by value, commands by tag), the untagged responses kept on the command, and the type
    of the error that ended it, if any. ``reference``: without the FETCH fast paths."""
    from mailtool.protocol.imap import parser
    from mailtool.protocol.imap import session as session_mod

    saved = session_mod.fetch_lines, session_mod.parse_response
    if reference:
        session_mod.fetch_lines = lambda buf, limit: ([], 0)  # type: ignore[assignment]
        session_mod.parse_response = parser.parse_full
    events: list[Any] = []
    try:
        s = IMAPSession()
        command = s.command("EXAMINE", "INBOX").command
        try:
            for i in range(0, len(data), chunk):
                s.receive_data(data[i : i + chunk])
                events.extend(s.events())
        except ProtocolError as exc:
            events.append(type(exc))
        out = [*_normalise(events), ("untagged", list(command.untagged))]
    finally:
        session_mod.fetch_lines, session_mod.parse_response = saved
    return out


@given(st.lists(_LINE, max_size=8), st.sampled_from([b"\r\n", b"\n"]),
       st.integers(1, 200))
@settings(max_examples=300, deadline=None)
def test_session_fetch_lines_match_the_general_parser(runs: list[list[bytes]], end: bytes,
                                                      chunk: int) -> None:
    """Whole runs of FETCH lines are parsed in one pass straight from the input buffer;
    whatever the lines and however the bytes arrive, the events, the responses kept on
    the command and the errors are those of framing each line and parsing it with the
    general parser."""
    data = b"".join(line + end for run in runs for line in run)
    fast = _session_responses(data, chunk, reference=False)
    assert fast == _session_responses(data, chunk, reference=True)
    assert fast == _session_responses(data, len(data) + 1, reference=False)


def test_session_fetch_lines_take_the_one_pass_path() -> None:
    """A run of lines in the server's order is parsed in one pass (no framing per line),
    and each line still becomes its own event, in order, attributed to the command."""
    from mailtool.protocol.imap import session as session_mod

    s = IMAPSession()
    command = s.command("EXAMINE", "INBOX").command
    lines = [b"* %d FETCH (UID %d FLAGS (\\Seen) MODSEQ (%d))" % (n, 10 * n, 100 + n)
             for n in range(1, 201)]
    s.receive_data(b"* VANISHED (EARLIER) 5:9\r\n" + b"\r\n".join(lines) + b"\r\nA0001 OK x\r\n")
    framed = []
    saved = session_mod.parse_response
    session_mod.parse_response = lambda *a: framed.append(a) or saved(*a)  # type: ignore[assignment]
    try:
        events = list(s.events())
    finally:
        session_mod.parse_response = saved
    assert len(framed) <= 3  # VANISHED, the first FETCH (learns the order), the tagged OK
    assert [type(e).__name__ for e in events] == ["ResponseReceived"] * 201 + ["CommandDone"]
    assert events[0].response.kind == "VANISHED"  # type: ignore[union-attr]
    fetches = [e.response for e in events[1:-1]]  # type: ignore[union-attr]
    assert fetches == [parse_line(line) for line in lines]
    assert fetches[-1] == Untagged("FETCH", 200, FetchData(
        200, {"UID": 2000, "FLAGS": ("\\Seen",), "MODSEQ": 300}))
    assert all(e.command is command for e in events[:-1])  # type: ignore[union-attr]
    assert command.untagged == [e.response for e in events[:-1]]  # type: ignore[union-attr]


def test_session_fetch_lines_respect_the_line_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from mailtool.protocol.imap import session as session_mod

    monkeypatch.setattr(session_mod, "MAX_IMAP_LINE", 60)
    s = IMAPSession()
    s.command("EXAMINE", "INBOX")
    short = b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (5))\r\n"
    long = b"* 2 FETCH (UID 2 FLAGS (\\Seen" + b" \\Flagged" * 5 + b") MODSEQ (5))\r\n"
    s.receive_data(short + short + long)
    with pytest.raises(IMAPParseError, match="longer than 60"):
        list(s.events())


def test_session_fetch_lines_do_not_rescan_a_partial_line(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A line arriving in many pieces is not matched again at each piece (a hostile
    server's endless FLAGS list would make that quadratic): only once it is complete."""
    from mailtool.protocol.imap import session as session_mod

    calls: list[int] = []
    real = session_mod.fetch_lines
    monkeypatch.setattr(session_mod, "fetch_lines",
                        lambda buf, limit: calls.append(len(buf)) or real(buf, limit))
    s = IMAPSession()
    s.command("EXAMINE", "INBOX")
    s.receive_data(b"* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (5))\r\n* 2 FETCH (UID 2 FLAGS (")
    assert len(list(s.events())) == 1
    for _ in range(50):
        s.receive_data(b"\\Seen " * 100)
        assert list(s.events()) == []
    s.receive_data(b"\\Seen) MODSEQ (6))\r\n")
    events = list(s.events())
    assert len(calls) <= 3
    assert events[0].response.value.items["FLAGS"] == ("\\Seen",) * 5001  # type: ignore[union-attr]
