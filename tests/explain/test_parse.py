"""What people paste into ``explain``: codes, whole replies, bounces, POP3 and IMAP lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtool.errors import UsageError
from mailtool.protocol.explain import explain_code, hint_for
from mailtool.protocol.replies import Reply


@pytest.mark.parametrize(
    ("query", "protocol", "code", "enhanced", "resp_code", "severity"),
    [
        ("550", "smtp", 550, None, None, "permanent"),
        ("550 5.1.1", "smtp", 550, "5.1.1", None, "permanent"),
        ("5.7.1", "smtp", None, "5.7.1", None, "permanent"),
        ("4.7.1 Greylisted", "smtp", None, "4.7.1", None, "transient"),
        ("451-4.7.1 Greylisted, try again later", "smtp", 451, "4.7.1", None, "transient"),
        ("451-4.7.1 Greylisted\n451-4.7.1 for 300 seconds\n451 4.7.1 see url", "smtp", 451,
         "4.7.1", None, "transient"),
        ("  354 End data with <CR><LF>.<CR><LF>\r\n", "smtp", 354, None, None, "intermediate"),
        ("-ERR [IN-USE] mailbox locked", "pop3", None, None, "IN-USE", "transient"),
        ("-err [sys/perm] gone", "pop3", None, None, "SYS/PERM", "permanent"),
        ("-ERR no code", "pop3", None, None, None, "permanent"),
        ("IN-USE", "pop3", None, None, "IN-USE", "transient"),
        ("[AUTHENTICATIONFAILED]", "imap", None, None, "AUTHENTICATIONFAILED", "permanent"),
        ("[AUTHENTICATIONFAILED] Authentication failed.", "imap", None, None,
         "AUTHENTICATIONFAILED", "permanent"),
        ("a1 NO [AUTHENTICATIONFAILED] Authentication failed.", "imap", None, None,
         "AUTHENTICATIONFAILED", "permanent"),
        ("* OK [UIDVALIDITY 3857529045] UIDs valid", "imap", None, None, "UIDVALIDITY",
         "success"),
        ("A3 NO [TRYCREATE] no such mailbox", "imap", None, None, "TRYCREATE", "permanent"),
        ("nonexistent", "imap", None, None, "NONEXISTENT", "permanent"),
    ],
)
def test_forms(
    query: str, protocol: str, code: int | None, enhanced: str | None, resp_code: str | None,
    severity: str,
) -> None:
    e = explain_code(query)
    assert (e.protocol, e.code, e.enhanced, e.resp_code, e.severity) == (
        protocol, code, enhanced, resp_code, severity
    )


def test_multiline_keeps_every_line_of_text() -> None:
    e = explain_code("451-4.7.1 Greylisted\n451 4.7.1 try again in 5 minutes")
    assert e.text.splitlines() == ["Greylisted", "try again in 5 minutes"]
    assert "Greylisting" in e.action  # the text, not only the code, shapes the advice


def test_postfix_bounce_line_and_its_step() -> None:
    line = (
        "host mx.example.net[192.0.2.1] said: 550 5.1.1 <bob@example.net>: Recipient "
        "address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)"
    )
    e = explain_code(line)
    assert (e.code, e.enhanced, e.exit_code) == (550, "5.1.1", 67)
    assert e.step == "RCPT TO"


def test_exim_bounce_names_the_step() -> None:
    e = explain_code("SMTP error from remote mail server after end of data:\n"
                     "550 5.7.26 Unauthenticated email is not accepted")
    assert e.enhanced == "5.7.26" and e.step == "END OF DATA"


def test_unknown_enhanced_code_is_explained_by_its_digits() -> None:
    e = explain_code("550 5.7.99 custom policy")
    assert not e.known
    kinds = {p.kind: p for p in e.parts}
    assert kinds["class"].title == "Permanent failure"
    assert kinds["subject"].title == "Security or policy status"
    assert kinds["enhanced"].known is False
    assert e.exit_code == 69


def test_unknown_basic_code_is_explained_by_its_digits() -> None:
    e = explain_code("557")
    assert not e.known and e.severity == "permanent"
    assert "mail system" in e.parts[0].meaning


def test_enhanced_code_with_leading_zeroes_and_class_x() -> None:
    assert explain_code("5.01.001").title == "Bad destination mailbox address"
    e = explain_code("X.7.1")
    assert e.severity == "unknown"
    assert {str(b)[0] for b, _ in e.exit_codes_by_basic} == {"4", "5"}


def test_enhanced_code_of_other_class_is_not_taken_from_text() -> None:
    # "550 4.7.1": class mismatch, so 4.7.1 is text, not the enhanced code (RFC 2034).
    e = explain_code("550 4.7.1 hmm")
    assert e.enhanced is None and e.code == 550


def test_unknown_imap_code() -> None:
    e = explain_code("a NO [XYZZY] nope")
    assert e.resp_code == "XYZZY" and not e.known and e.severity == "permanent"


@pytest.mark.parametrize("bad", ["", "   ", "garbage", "hello world", "600", "9.9.9"])
def test_nothing_to_explain_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        explain_code(bad)


def test_hint_for_a_failed_reply() -> None:
    reply = Reply(status="535", lines=("bad credentials",), code=535, enhanced="5.7.8")
    hint = hint_for(reply)
    assert hint is not None and hint.startswith("5.7.8 Authentication credentials invalid")
    assert hint_for(Reply(status="250", lines=("ok",), code=250)) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_an_explanation_or_a_usage_error(text: str) -> None:
    try:
        e = explain_code(text)
    except UsageError:
        return
    assert e.title and e.action and e.step
    e.to_dict()


@pytest.mark.parametrize("text", ["+OKAY", "-ERRATA", "+ok", "-err"])
def test_pop3_lookalikes(text: str) -> None:
    try:
        e = explain_code(text)
    except UsageError:
        return
    assert e.protocol == "pop3"
