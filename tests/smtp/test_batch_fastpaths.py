"""Fast paths used by ``send --batch`` give exactly what the slow paths give."""

from __future__ import annotations

import random
from email.utils import getaddresses

from mailtool.compose import parse_addresses, split_fields

PIECES = ["a", "b.c", "Ann", "Ann Example", " ", "  ", "<", ">", "@", ".", "..", '"', ",",
          "x@y.test", "q-r_s", "é", "(c)", ":", ";", "\t", "-", "+tag", "[1.2.3.4]"]


def test_simple_addresses_match_the_email_package() -> None:
    rng = random.Random(2920)
    for _ in range(4000):
        value = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))
        expected = [(n, a) for n, a in getaddresses([value]) if a]
        assert parse_addresses([value]) == expected, value
    assert parse_addresses(["Ann Example <a@b.test>", "c@d.test"]) == [
        ("Ann Example", "a@b.test"), ("", "c@d.test")]


def test_split_fields_without_the_names_keeps_the_block() -> None:
    head = b"From: a@b\r\nTo: c@d\r\n\r\n"
    assert split_fields(head, drop=("bcc",)) == (head, [])
    assert split_fields(b"From: a@b\r\nBCC : x@y\r\n z@w\r\n\r\n", drop=("bcc",)) == (
        b"From: a@b\r\n\r\n", [("BCC", "x@y z@w")])
