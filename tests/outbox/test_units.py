"""Pure parts of the outbox: the retry schedule, rewriting rules, the spool's records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mailtool.compose import MessageSource
from mailtool.config import parse_config
from mailtool.delivery import RecipientOutcome
from mailtool.errors import ConfigError, UsageError
from mailtool.outbox.rewrite import (
    add_missing_from,
    expand_aliases,
    is_local,
    rewrite_from_header,
    rewrite_sender,
)
from mailtool.outbox.schedule import DAY, Schedule, parse_duration, schedule_for
from mailtool.outbox.spool import Outbox
from tests.helpers import run_cli
from tests.outbox.smtpd import CountingSMTP


def acct(body: str) -> Any:
    return parse_config("[accounts.a]\n" + body).accounts["a"]


def test_schedule_grows_to_an_hour_and_stops_at_the_lifetime() -> None:
    s = Schedule()
    assert [s.interval(n) for n in range(1, 8)] == [300, 600, 1200, 2400, 3600, 3600, 3600]
    assert all(s.interval(n) >= 1800 for n in range(4, 100))  # RFC 5321: >= 30 min later on
    assert s.interval(10**9) == 3600  # no overflow
    assert s.lifetime == 5 * DAY
    assert s.next_attempt(0, 1, 100) == 400
    assert s.next_attempt(0, 9, 5 * DAY - 10) == 5 * DAY  # the last try at the deadline
    assert not s.expired(0, 5 * DAY - 1) and s.expired(0, 5 * DAY)


def test_durations_and_account_schedule() -> None:
    assert [parse_duration(x) for x in (90, "90", "5m", "2h", "5d", "1w", "1.5h")] == \
        [90, 90, 300, 7200, 432000, 604800, 5400]
    for bad in ("soon", "-5m", True, "5 days"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    s = schedule_for(acct('queue_lifetime = "2d"\nretry_first = "1m"\n'))
    assert (s.lifetime, s.first, s.longest) == (2 * DAY, 60, 3600)
    assert schedule_for(None, 60).lifetime == 60


def test_local_addresses() -> None:
    node = os.uname().nodename
    assert is_local("root") and is_local("root@localhost") and is_local(f"cron@{node}")
    assert not is_local("root@example.org")


def test_aliases_expand_envelope_recipients() -> None:
    a = acct('aliases = { root = "admin", admin = ["ann@x.test", "ops@x.test"], '
             '"*" = "catch@x.test", "bob@x.test" = "robert@y.test" }\n')
    got = expand_aliases(["root@localhost", "www-data", "bob@x.test", "ann@x.test",
                          "zed@x.test"], a)
    assert got == ["ann@x.test", "ops@x.test", "catch@x.test", "robert@y.test", "zed@x.test"]
    assert expand_aliases(["root"], acct("")) == ["root"]
    with pytest.raises(ConfigError, match="loop"):
        expand_aliases(["a"], acct('aliases = { a = "b", b = "a" }\n'))
    with pytest.raises(ConfigError):
        expand_aliases(["a"], acct("aliases = 3\n"))


@pytest.mark.parametrize(("header", "expected"), [
    ("root (Cron Daemon)", "Cron Daemon <box@x.test>"),
    ("root", "Box <box@x.test>"),
    ('"Log Watch" <logwatch@localhost>', "Log Watch <box@x.test>"),
    ("Ann <ann@real.test>", "Ann <ann@real.test>"),  # a real address is left alone
])
def test_rewrite_from_keeps_the_display_name(header: str, expected: str) -> None:
    a = acct('from = "Box <box@x.test>"\nrewrite_from = true\n')
    src = MessageSource.from_bytes(f"From: {header}\nSubject: s\n\nbody\n".encode())
    rewrite_from_header(src, a)
    assert src.header_values("from") == [expected]
    assert b"".join(src.chunks()).endswith(b"\r\n\r\nbody\r\n")
    assert rewrite_sender("root", a) == "box@x.test"
    assert rewrite_sender("me@real.test", a) == "me@real.test"
    assert rewrite_sender("", a) == ""  # the null sender stays null


def test_rewrite_from_address_setting_and_missing_from() -> None:
    a = acct('rewrite_from = "cron@x.test"\n')
    src = MessageSource.from_bytes(b"Subject: s\n\nbody\n")
    assert rewrite_from_header(src, a, full_name="Cron Daemon")
    assert src.header_values("from") == ["Cron Daemon <cron@x.test>"]
    with pytest.raises(ConfigError):
        rewrite_sender("root", acct("rewrite_from = true\n"))  # no address anywhere
    src = MessageSource.from_bytes(b"Subject: s\n\nbody\n")
    assert add_missing_from(src, "root@x.test", "Cron Daemon")
    assert src.header_values("from") == ["Cron Daemon <root@x.test>"]
    assert not add_missing_from(src, "root@x.test", "Other")


def test_spool_records_and_removes(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "ob")
    entry, lock = box.create([b"Subject: s\r\n\r\nhi\r\n"], sender="me@x.test",
                             recipients=["a@y.test", "b@y.test"], now=1000.0, route={},
                             hold=True)
    assert lock is not None and lock.held
    assert not entry.lock().acquire()  # held by the creator, even across descriptors
    lock.release()
    assert oct((tmp_path / "ob").stat().st_mode & 0o777) == "0o700"
    assert box.ids() == [entry.id] and os.listdir(box.tmp_dir) == []
    entry.record([RecipientOutcome("a@y.test", "accepted", "DATA", 250, "2.0.0", "ok", "h"),
                  RecipientOutcome("b@y.test", "deferred", "RCPT TO", 451, "4.7.1", "grey",
                                   "h")], now=1001.0)
    again = box.load(entry.id)
    assert again is not None and again.pending == ["b@y.test"]
    assert again.recipients[0]["status"] == "accepted"
    assert box.find(entry.id[:8]).id == entry.id
    with pytest.raises(UsageError):
        box.find("999")
    box.remove(again)
    assert box.ids() == [] and box.load(entry.id) is None


def test_spool_first_costs_two_fsyncs_and_a_settled_entry_goes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spooling before the first attempt: one fsync of the file, one of the directory; the
    delivery hook that settles every recipient removes the entry without more; the message
    reads back exactly, after the entry's first line."""
    box = Outbox(tmp_path / "ob").ensure()
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    raw = b"Subject: s\r\n\r\n" + b"x" * 70_000 + b"\r\n.\r\n"
    entry, lock = box.create([raw[:10], raw[10:]], sender="me@x.test",
                             recipients=["a@y.test"], now=1000.0, route={"smarthost": None},
                             hold=True)
    assert len(synced) == 2
    loaded = box.load(entry.id)
    assert loaded is not None and loaded.state["size"] == len(raw) == entry.state["size"]
    source = loaded.message()
    assert b"".join(source.chunks()) == raw and source.size == len(raw)
    source.close()
    entry.record([RecipientOutcome("a@y.test", "accepted", "DATA", 250, "2.0.0", "ok", "h")])
    assert len(synced) == 2 and box.ids() == [] and os.listdir(box.queue_dir) == []
    assert lock is not None
    lock.release()


def test_sendmail_F_adds_from_when_missing() -> None:
    with CountingSMTP() as srv:
        run_cli("-F", "Cron Daemon", "-f", "root@src.test", "x@dst.test",
                input=b"Subject: no from\n\nhi\n", program="mailtool-sendmail",
                env={"MAILTOOL_SMARTHOST": f"127.0.0.1:{srv.port}", "MAILTOOL_TLS": "none"})
    srv.check()
    data = srv.messages[0][2]
    assert b"From: Cron Daemon <root@src.test>\r\n" in data
