"""CRLF normalisation, dot-stuffing and the argument guard (SMTP smuggling, injection)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailtool.errors import DataError
from mailtool.protocol.wire import (
    CRLFNormalizer,
    DotStuffer,
    dot_stuff,
    guard_argument,
    normalize_crlf,
)


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b"", b".\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\n", b"a\r\n.\r\n"),
        (b".a\n.\n..\n", b"..a\r\n..\r\n...\r\n.\r\n"),
        (b"x\n.\ny", b"x\r\n..\r\ny\r\n.\r\n"),
        (b"bare\rcr\r\n", b"bare\r\ncr\r\n.\r\n"),
        (b"smuggle\n.\r\nMAIL FROM:<x>\r\n", b"smuggle\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"),
        (b"lf.\n", b"lf.\r\n.\r\n"),
    ],
)
def test_dot_stuff_table(raw: bytes, wire: bytes) -> None:
    assert dot_stuff(raw) == wire


def _unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b".\r\n")
    lines = wire[:-3].split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20))
def test_dot_stuffer_is_chunking_invariant_and_safe(data: bytes, cuts: list[int]) -> None:
    whole = dot_stuff(data)
    stuffer = DotStuffer()
    out, pos = b"", 0
    for cut in cuts:
        out += stuffer.feed(data[pos : pos + cut])
        pos += cut
    out += stuffer.feed(data[pos:]) + stuffer.finish()
    assert out == whole
    # No bare CR or LF on the wire, and exactly one end-of-data marker at the end.
    assert whole.replace(b"\r\n", b"").count(b"\r") == 0
    assert whole.replace(b"\r\n", b"").count(b"\n") == 0
    assert (b"\r\n" + whole).find(b"\r\n.\r\n") == len(whole) - 3
    # Unstuffing gives the normalised message back.
    expected = normalize_crlf(data)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert _unstuff(whole) == expected


@given(st.binary(max_size=300), st.integers(1, 40))
def test_crlf_normalizer_chunking(data: bytes, size: int) -> None:
    norm = CRLFNormalizer()
    out = b"".join(norm.feed(data[i : i + size]) for i in range(0, len(data), size))
    out += norm.finish()
    assert out == normalize_crlf(data)


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "x\x1by", "del\x7f"])
def test_guard_refuses_controls(bad: str) -> None:
    with pytest.raises(DataError):
        guard_argument(bad, "header Subject")


def test_guard_accepts_tabs_and_unicode() -> None:
    assert guard_argument("Grüße\tok") == "Grüße\tok"


# --- the in-band TLS upgrade decision shared by SMTP, POP3 and IMAP ------------------------

def test_must_upgrade_table() -> None:
    from mailtool.errors import TLSError
    from mailtool.protocol.tls import TLSMode, must_upgrade

    def decide(mode: TLSMode, offered: bool) -> bool:
        return must_upgrade(mode, offered, host="h", command="STLS", implicit_port=995)

    assert decide(TLSMode.STARTTLS, True) is True
    assert decide(TLSMode.OPPORTUNISTIC, True) is True
    assert decide(TLSMode.OPPORTUNISTIC, False) is False
    assert decide(TLSMode.IMPLICIT, True) is False
    assert decide(TLSMode.NONE, True) is False
    with pytest.raises(TLSError) as err:
        decide(TLSMode.STARTTLS, False)
    assert err.value.step == "STLS" and "995" in (err.value.hint or "")
