"""``mailtool explain`` end to end: plain text off a terminal, JSON, stdin, usage errors."""

from __future__ import annotations

import json

from tests.helpers import run_cli


def test_plain_view_for_a_pasted_reply() -> None:
    r = run_cli("explain", "550", "5.1.1", "<bob@example.net>: user unknown")
    assert "\x1b[" not in r.stdout  # no colour off a terminal
    assert "Bad destination mailbox address" in r.stdout
    assert "Exit code:   67 (NOUSER)" in r.stdout
    assert "Usual step:  RCPT TO" in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_pop3_line_starting_with_a_dash_is_not_an_option() -> None:
    r = run_cli("explain", "-ERR", "[IN-USE]", "mailbox", "locked")
    assert "Mailbox in use" in r.stdout and "75 (TEMPFAIL)" in r.stdout


def test_json_and_stdin() -> None:
    r = run_cli("--json", "explain", input="451-4.7.1 Greylisted\r\n451 4.7.1 come back later\r\n")
    doc = json.loads(r.stdout)
    assert doc["code"] == 451 and doc["enhanced"] == "4.7.1"
    assert doc["severity"] == "transient" and doc["exit_code"] == 75
    assert doc["text"] == "Greylisted\ncome back later"
    assert [p["code"] for p in doc["parts"]] == ["451", "4.X.X", "X.7.1"]


def test_enhanced_code_alone_lists_exit_code_per_basic_code() -> None:
    r = run_cli("explain", "--json", "5.7.8")
    doc = json.loads(r.stdout)
    assert doc["exit_codes_by_basic"] == {"535": 77, "554": 69}


def test_usage_errors() -> None:
    r = run_cli("explain", "no code here", expect=64)
    assert r.stderr.startswith("mailtool: no reply code found")
    run_cli("explain", expect=64)  # no argument and nothing on stdin
