"""TLSInfo works out certificate dates only when asked, with the ssl module's own result."""

from __future__ import annotations

import datetime
import ssl

import pytest

from mailtool.protocol.tls import TLSInfo


@pytest.mark.parametrize("raw", ["Jun  1 12:00:00 2027 GMT", "Dec 31 23:59:59 2030 GMT",
                                 "Jan 10 00:00:01 1999 GMT"])
def test_expiry_matches_ssl(raw: str) -> None:
    info = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, True, expires=raw)
    assert info.not_after is not None
    parsed = datetime.datetime.fromisoformat(info.not_after)
    assert parsed.timestamp() == ssl.cert_time_to_seconds(raw)
    expected = (parsed - datetime.datetime.now(datetime.UTC)).days
    assert info.days_left in (expected, expected - 1)  # a day may turn between the two


@pytest.mark.parametrize("raw", [None, "", "garbage", "Foo  1 12:00:00 2027 GMT",
                                 "Jun  1 12:00:00 2027 CET", "Jun 31 12:00:00 2027 GMT"])
def test_unknown_expiry_is_none(raw: str | None) -> None:
    info = TLSInfo("TLSv1.3", "x", None, True, expires=raw)
    assert info.not_after is None and info.days_left is None
