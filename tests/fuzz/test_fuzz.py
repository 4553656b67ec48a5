"""Hypothesis runs of every fuzz target, and a replay of the seed corpus through each."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"

# Bytes that look like protocol traffic reach deeper than uniform noise.
_TOKENS = st.sampled_from([
    b"250-", b"250 ", b"220 ", b"354 ", b"421 ", b"5.1.1 ", b"+OK ", b"-ERR [IN-USE] ", b".\r\n",
    b"..", b"\r\n", b"\n", b"* ", b"A0001 OK ", b"* 1 FETCH (", b"BODY[] ", b"{5}\r\n",
    b"{99999999999}\r\n", b"ENVELOPE (", b"BODYSTRUCTURE (", b"NIL", b'"x"', b"(", b")",
    b"UID 1 ", b"FLAGS (\\Seen) ", b"[CAPABILITY IMAP4rev1] ", b"* BYE ", b"&AOQ-", b"&",
    b"To: a@b, \"c\" <d@e>\r\n", b"Bcc: x@y\r\n", b"\r\n\r\n", b"AUTH PLAIN", b"=",
])
_DATA = st.one_of(st.binary(max_size=400),
                  st.lists(st.one_of(_TOKENS, st.binary(max_size=8)), max_size=60).map(b"".join))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_invariant(name: str) -> None:
    target = TARGETS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
              database=None)
    @given(_DATA)
    def run(data: bytes) -> None:
        target(data)

    run()


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def test_corpus_is_there() -> None:
    assert len(corpus_files()) >= 10


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_replay(name: str) -> None:
    """Every seed through every parser (a crash found once stays fixed)."""
    for path in corpus_files():
        data = path.read_bytes()
        TARGETS[name](data)
        TARGETS[name](data[: len(data) // 2])
