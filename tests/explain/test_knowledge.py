"""The knowledge base is complete against the registries, and agrees with exit_code_for."""

from __future__ import annotations

import pytest

from mailtool.exitcodes import ExitCode
from mailtool.protocol import explain_data
from mailtool.protocol.explain import all_entries, explain_code, explain_reply, lookup
from mailtool.protocol.replies import Reply, exit_code_for

# Transcribed from the IANA "SMTP Enhanced Status Codes" registry (RFC 5248), Enumerated
# Status Codes, as we could check it: RFC 3463 plus the later additions (RFC 3886 X.1.9,
# RFC 7505 X.1.10 / X.7.27, RFC 6710 X.3.6 / X.7.15-16, RFC 4954 X.5.6 / X.7.8-9 / X.7.11-12,
# RFC 4468 X.6.6, RFC 6531 X.6.7-10, RFC 5248 X.7.10 / X.7.13-14, RFC 7293 X.7.17-19,
# RFC 7372 X.7.20-26, X.7.28 (reference unverified), RFC 8617 X.7.29, RFC 8689 X.7.30).
ENHANCED_REGISTRY = (
    ["X.0.0"]
    + [f"X.1.{d}" for d in range(0, 11)]
    + [f"X.2.{d}" for d in range(0, 5)]
    + [f"X.3.{d}" for d in range(0, 7)]
    + [f"X.4.{d}" for d in range(0, 8)]
    + [f"X.5.{d}" for d in range(0, 7)]
    + [f"X.6.{d}" for d in range(0, 11)]
    + [f"X.7.{d}" for d in range(0, 31)]
)

# RFC 5321 section 4.2.2/4.2.3, plus RFC 3207 (454), RFC 4954 (235 334 432 454 530 534 535
# 538) and RFC 7504 (521 556).
SMTP_REPLY_CODES = [
    211, 214, 220, 221, 235, 250, 251, 252, 334, 354,
    421, 432, 450, 451, 452, 454, 455,
    500, 501, 502, 503, 504, 521, 530, 534, 535, 538,
    550, 551, 552, 553, 554, 555, 556,
]

# IANA "POP3 Extended Response Codes": RFC 2449, RFC 3206, RFC 6856.
POP3_REGISTRY = ["IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH", "UTF8"]

# IANA "IMAP Response Codes": the RFC 3501/9051 section 7.1 ones and RFC 5530's list.
IMAP_BASE = [
    "ALERT", "BADCHARSET", "CAPABILITY", "PARSE", "PERMANENTFLAGS", "READ-ONLY",
    "READ-WRITE", "TRYCREATE", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
]
IMAP_5530 = [
    "UNAVAILABLE", "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
    "PRIVACYREQUIRED", "CONTACTADMIN", "NOPERM", "INUSE", "EXPUNGEISSUED", "CORRUPTION",
    "SERVERBUG", "CLIENTBUG", "CANNOT", "LIMIT", "OVERQUOTA", "ALREADYEXISTS", "NONEXISTENT",
]


def test_enhanced_registry_is_covered() -> None:
    have = {e.code for e in explain_data.ENHANCED_CODES}
    missing = [c for c in ENHANCED_REGISTRY if c not in have]
    assert not missing, f"registry codes missing from the knowledge base: {missing}"
    extra = have - set(ENHANCED_REGISTRY)
    assert not extra, f"codes in the knowledge base that the registry lacks: {extra}"


def test_smtp_codes_are_covered() -> None:
    have = {e.code for e in explain_data.SMTP_CODES}
    assert {str(c) for c in SMTP_REPLY_CODES} <= have


def test_pop3_and_imap_registries_are_covered() -> None:
    assert set(POP3_REGISTRY) <= {e.code for e in explain_data.POP3_CODES}
    assert set(IMAP_BASE + IMAP_5530) <= {e.code for e in explain_data.IMAP_CODES}


def test_every_class_and_subject_is_explained() -> None:
    assert set(explain_data.CLASSES) == {"2", "4", "5"}
    assert set(explain_data.SUBJECTS) == {str(d) for d in range(8)}


@pytest.mark.parametrize("entry", all_entries(), ids=lambda e: e.code)
def test_entry_is_complete(entry: explain_data.Entry) -> None:
    for name in ("title", "meaning", "action", "step", "standard"):
        value = getattr(entry, name)
        assert value and value == value.strip(), f"{entry.code}: empty or untrimmed {name}"
    assert entry.standard.startswith(("RFC", "IANA")), entry.standard
    assert lookup(entry.code) is entry
    for basic in entry.basic:
        assert 200 <= basic <= 599


def test_codes_are_unique() -> None:
    codes = [e.code for e in all_entries()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("code", SMTP_REPLY_CODES)
def test_basic_code_exit_agrees_with_replies(code: int) -> None:
    e = explain_code(str(code))
    assert e.known
    assert e.exit_code == exit_code_for(Reply(status=str(code), lines=(), code=code))
    expected = {"2": "success", "3": "intermediate", "4": "transient", "5": "permanent"}
    assert e.severity == expected[str(code)[0]]


@pytest.mark.parametrize("entry", explain_data.ENHANCED_CODES, ids=lambda e: e.code)
@pytest.mark.parametrize("cls", ["4", "5"])
def test_enhanced_code_exit_agrees_with_replies(entry: explain_data.Entry, cls: str) -> None:
    enhanced = cls + entry.code[1:]
    e = explain_code(enhanced)
    assert e.known and e.title == entry.title
    assert e.severity == ("transient" if cls == "4" else "permanent")
    assert e.exit_codes_by_basic, enhanced
    for basic, code in e.exit_codes_by_basic:
        assert str(basic)[0] == cls
        assert code == exit_code_for(
            Reply(status=str(basic), lines=(), code=basic, enhanced=enhanced)
        )
    assert e.exit_code == e.exit_codes_by_basic[0][1]
    # And with each associated basic code, as a server would send it.
    for basic in entry.basic:
        if str(basic)[0] != cls:
            continue
        full = explain_code(f"{basic} {enhanced} text")
        assert full.exit_code == exit_code_for(
            Reply(status=str(basic), lines=("text",), code=basic, enhanced=enhanced)
        )


@pytest.mark.parametrize("entry", explain_data.POP3_CODES, ids=lambda e: e.code)
def test_pop3_exit_agrees_with_replies(entry: explain_data.Entry) -> None:
    e = explain_code(f"-ERR [{entry.code}] text")
    assert e.protocol == "pop3" and e.resp_code == entry.code and e.known
    assert e.exit_code == exit_code_for(Reply(status="-ERR", lines=("text",), resp_code=entry.code))


@pytest.mark.parametrize("entry", explain_data.IMAP_CODES, ids=lambda e: e.code)
def test_imap_exit_agrees_with_replies(entry: explain_data.Entry) -> None:
    e = explain_code(f"a1 {entry.status} [{entry.code}] text")
    assert e.protocol == "imap" and e.resp_code == entry.code and e.known
    reply = Reply(status=entry.status, lines=("text",), resp_code=entry.code)
    assert e.exit_code == exit_code_for(reply)
    assert explain_reply(reply).exit_code == e.exit_code


@pytest.mark.parametrize(
    ("query", "exit_code"),
    [
        ("550 5.1.1", ExitCode.NOUSER),
        ("535 5.7.8", ExitCode.NOPERM),
        ("5.7.8", ExitCode.NOPERM),
        ("451 4.7.1", ExitCode.TEMPFAIL),
        ("556 5.1.10", ExitCode.NOHOST),
        ("550 5.7.26", ExitCode.UNAVAILABLE),
        ("421", ExitCode.TEMPFAIL),
        ("-ERR [IN-USE]", ExitCode.TEMPFAIL),
        ("-ERR [AUTH] bad", ExitCode.NOPERM),
        ("[AUTHENTICATIONFAILED]", ExitCode.NOPERM),
        ("a NO [OVERQUOTA] full", ExitCode.TEMPFAIL),
        ("250 2.1.5 ok", ExitCode.OK),
    ],
)
def test_known_exit_codes(query: str, exit_code: ExitCode) -> None:
    assert explain_code(query).exit_code == exit_code
