"""When the outbox pays for fsync: mailtool-sendmail spools every message before its first
connection, but makes the spooled copy durable only if it stays queued (a message the server
took needs no fsync), and always before the exit status says "queued"."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from mailtool import sendmail
from mailtool.outbox.spool import Outbox
from tests.outbox.smtpd import CountingSMTP

MESSAGE = b"From: cron@src.test\nTo: ops@dst.test\nSubject: nightly\n\nall good\n"


def _count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch os.fsync to record what each call synced (the fd's path)."""
    synced: list[str] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return synced


def _sendmail(monkeypatch: pytest.MonkeyPatch, port: int, *args: str) -> int:
    monkeypatch.setenv("MAILTOOL_SMARTHOST", f"127.0.0.1:{port}")
    monkeypatch.setenv("MAILTOOL_TLS", "none")
    monkeypatch.setenv("MAILTOOL_TIMEOUT", "10")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSAGE)))
    return sendmail.run(["-oi", "-f", "cron@src.test", *args])


def test_entry_made_durable_on_demand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Outbox(tmp_path / "ob").ensure()
    synced = _count_fsyncs(monkeypatch)
    entry, lock = box.create([b"Subject: s\r\n\r\nhi\r\n"], sender="me@x.test",
                             recipients=["a@y.test"], now=1000.0, route={}, hold=True,
                             durable=False)
    assert synced == [] and box.ids() == [entry.id]  # published, not yet synced
    entry.make_durable()
    assert synced == [entry.path, box.queue_dir]  # the file, then the directory entry
    box.remove(entry, durable=False)
    entry.make_durable()  # gone: nothing left to sync
    assert len(synced) == 2
    assert lock is not None
    lock.release()


@pytest.mark.timeout(60)
def test_delivered_message_costs_no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _count_fsyncs(monkeypatch)
    with CountingSMTP() as srv:
        assert _sendmail(monkeypatch, srv.port, "ops@dst.test") == 0
    srv.check()
    assert len(srv.messages) == 1 and b"all good" in srv.messages[0][2]
    assert synced == []
    box = Outbox(sendmail_outbox())
    assert box.ids() == []


@pytest.mark.timeout(60)
def test_deferred_message_is_durable_before_exit(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    synced = _count_fsyncs(monkeypatch)
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        assert _sendmail(monkeypatch, srv.port, "ops@dst.test") == 0  # queued counts as taken
    srv.check()
    assert "queued for 1 recipient" in capsys.readouterr().err
    box = Outbox(sendmail_outbox())
    [entry_id] = box.ids()
    entry_path = os.path.join(box.queue_dir, entry_id)
    # The message file is synced, and the queue directory after it (its entry's name).
    assert entry_path in synced
    assert box.queue_dir in synced[synced.index(entry_path) + 1:]


def sendmail_outbox() -> str:
    from mailtool.outbox.spool import default_path

    return default_path()
