"""The outbox through the real CLI against counting scripted servers: queue on 4xx, retry,
never queue 5xx, give up on schedule (clock injected with $MAILTOOL_NOW), fall back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.server import dead_port
from tests.helpers import run_cli
from tests.outbox.conftest import T0
from tests.outbox.smtpd import CountingSMTP

pytestmark = pytest.mark.timeout(90)

CRON = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@box> backup\n"
        b"Content-Type: text/plain\n\nbackup done\n")


def relay_env(srv: CountingSMTP, now: float = T0) -> dict[str, str]:
    return {"MAILTOOL_SMARTHOST": f"127.0.0.1:{srv.port}", "MAILTOOL_TLS": "none",
            "MAILTOOL_NOW": str(now)}


def at(now: float) -> dict[str, str]:
    return {"MAILTOOL_NOW": str(now)}


def queue_list() -> list[dict[str, object]]:
    rows = json.loads(run_cli("queue", "list", "--json").stdout)
    assert isinstance(rows, list)
    return rows


def test_451_queued_then_queue_run_delivers_exactly_once(outbox_dir: Path) -> None:
    with CountingSMTP() as srv:
        srv.tempfail = {"b@dst.test"}
        r = run_cli("-f", "me@src.test", "a@dst.test", "b@dst.test", input=CRON,
                    env=relay_env(srv), program="mailtool-sendmail")
        assert "queued for 1 recipient: 451 4.7.1 greylisted" in r.stderr
        assert dict(srv.received) == {"a@dst.test": 1}
        rows = queue_list()
        assert len(rows) == 1 and rows[0]["recipients"] == ["b@dst.test"]
        assert rows[0]["last_reply"] == "451 4.7.1 greylisted, try again later"
        assert rows[0]["attempts"] == 1
        assert oct(outbox_dir.stat().st_mode & 0o777) == "0o700"

        # Not due yet (first retry after 5 minutes): nothing is tried.
        connections = srv.server.connection_count
        r = run_cli("queue", "run", "--json", env=at(T0 + 60))
        assert json.loads(r.stdout)["entries"][0]["status"] == "waiting"
        assert srv.server.connection_count == connections

        # Still greylisted at the first retry: deferred again, quietly (exit 0, no output).
        r = run_cli("queue", "run", env=at(T0 + 300))
        assert r.stdout == "" and r.stderr == ""
        assert queue_list()[0]["attempts"] == 2

        srv.tempfail.clear()  # the server recovers
        r = run_cli("queue", "run", env=at(T0 + 300 + 600))
        assert r.stderr == ""
        assert queue_list() == []
        run_cli("queue", "flush")  # nothing left: nothing sent again
    srv.check()
    assert dict(srv.received) == {"a@dst.test": 1, "b@dst.test": 1}
    # The queued copy is the message as first sent (same bytes, Bcc-free, CRLF).
    assert srv.messages[0][2] == srv.messages[1][2]


def test_550_is_never_queued_and_bounced_on_request() -> None:
    with CountingSMTP() as srv:
        srv.reject = {"nobody@dst.test"}
        r = run_cli("-f", "me@src.test", "--bounce-to=ops@src.test", "nobody@dst.test",
                    input=CRON, env=relay_env(srv), program="mailtool-sendmail", expect=67)
        assert "550 5.1.1" in r.stderr and "queued" not in r.stderr
        assert queue_list() == []
    srv.check()
    assert dict(srv.received) == {"ops@src.test": 1}
    sender, rcpts, data = srv.messages[0]
    assert sender == "" and rcpts == ["ops@src.test"]  # null reverse-path: no bounce loops
    text = data.decode()
    assert "<nobody@dst.test>" in text and "550 5.1.1 no such user" in text
    assert "Subject: Cron <root@box> backup" in text and "backup done" not in text


def test_give_up_after_the_configured_lifetime(write_config: Callable[[str], Path]) -> None:
    with CountingSMTP() as srv:
        write_config(f'[accounts.box]\nfrom = "me@src.test"\nqueue_lifetime = "1d"\n'
                     f'bounce_to = "ops@src.test"\n[accounts.box.smtp]\nhost = "127.0.0.1"\n'
                     f'port = {srv.port}\ntls = "none"\n')
        srv.tempfail = {"slow@dst.test"}
        r = run_cli("slow@dst.test", input=CRON, env=at(T0), program="mailtool-sendmail")
        assert "queued for 1 recipient" in r.stderr
        run_cli("queue", "run", env=at(T0 + 300))
        row = queue_list()[0]
        assert row["attempts"] == 2
        assert row["next_attempt"] is not None
        # One second before the lifetime ends it is still only deferred.
        r = run_cli("queue", "flush", "--json", env=at(T0 + 86399))
        assert json.loads(r.stdout)["entries"][0]["status"] == "deferred"
        # A day after it was queued: one last try, then given up, reported, bounced.
        r = run_cli("queue", "run", env=at(T0 + 86400), expect=69)
        assert "<slow@dst.test>: expired" in r.stderr and "451 4.7.1" in r.stderr
        assert "report sent to ops@src.test" in r.stderr
        assert queue_list() == []
    srv.check()
    assert srv.received["slow@dst.test"] == 0
    bounce = srv.messages[-1]
    assert bounce[0] == "" and bounce[1] == ["ops@src.test"]
    assert b"queue lifetime" in bounce[2] and b"<slow@dst.test>" in bounce[2]


def test_lifetime_option_and_schedule_are_visible_in_json() -> None:
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        r = run_cli("send", "--smarthost", f"127.0.0.1:{srv.port}", "--tls", "none", "--json",
                    "--queue-on-tempfail", "-f", "me@src.test", "x@dst.test", input=CRON,
                    env=at(T0))
        doc = json.loads(r.stdout)
        assert doc["exit_code"] == 0 and doc["queued"]["recipients"] == ["x@dst.test"]
        assert doc["queued"]["next_attempt"] == T0 + 300
        entry_id = doc["queued"]["id"]
        show = json.loads(run_cli("queue", "show", entry_id[:12], "--json").stdout)
        assert show["id"] == entry_id and show["route"]["smarthost"] == f"127.0.0.1:{srv.port}"
        assert "Subject: Cron <root@box> backup" in show["headers"]
        r = run_cli("queue", "run", "--json", env=at(T0 + 300))
        entry = json.loads(r.stdout)["entries"][0]
        assert entry["status"] == "deferred" and entry["next_attempt"] == T0 + 300 + 600
        r = run_cli("queue", "run", "--lifetime", "10m", env=at(T0 + 900), expect=69)
        assert "expired" in r.stderr
    srv.check()


def test_queue_drop_and_show_text(outbox_dir: Path) -> None:
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        run_cli("-f", "me@src.test", "x@dst.test", input=CRON, env=relay_env(srv),
                program="mailtool-sendmail")
    entry_id = str(queue_list()[0]["id"])
    text = run_cli("queue", "show", entry_id).stdout
    assert "pending   <x@dst.test>  451 4.7.1" in text and "attempts (1):" in text
    assert entry_id in run_cli("queue", "list").stdout
    run_cli("queue", "drop", entry_id)
    assert queue_list() == []
    r = run_cli("queue", "drop", entry_id, expect=64)
    assert "no queued message" in r.stderr
    assert list((outbox_dir / "queue").iterdir()) == []


def test_no_queue_flag_exits_75_and_keeps_nothing() -> None:
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        run_cli("--no-queue", "-f", "me@src.test", "x@dst.test", input=CRON,
                env=relay_env(srv), program="mailtool-sendmail", expect=75)
    assert queue_list() == []


def test_every_relay_down_queues(write_config: Callable[[str], Path]) -> None:
    write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                 f'smarthosts = ["127.0.0.1:{dead_port()}", "127.0.0.1:{dead_port()}"]\n'
                 'tls = "none"\n')
    r = run_cli("x@dst.test", input=CRON, env=at(T0), program="mailtool-sendmail")
    assert "queued for 1 recipient" in r.stderr
    assert queue_list()[0]["recipients"] == ["x@dst.test"]


def test_fallback_to_the_next_smarthost(write_config: Callable[[str], Path]) -> None:
    with CountingSMTP() as busy, CountingSMTP() as grey, CountingSMTP() as good:
        busy.greeting = b"421 4.3.2 too busy\r\n"
        grey.tempfail = {"b@dst.test"}
        write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                     f'host = "127.0.0.1:{dead_port()}"\n'
                     f'smarthosts = ["127.0.0.1:{busy.port}", "127.0.0.1:{grey.port}", '
                     f'"127.0.0.1:{good.port}"]\ntls = "none"\n')
        r = run_cli("send", "--json", "a@dst.test", "b@dst.test", input=CRON)
        got = {o["recipient"]: o for o in json.loads(r.stdout)["recipients"]}
    for srv in (busy, grey, good):
        srv.check()
    # Dead host, then 421 at greeting: next. The third takes a, greylists b; the fourth b.
    assert dict(grey.received) == {"a@dst.test": 1}
    assert dict(good.received) == {"b@dst.test": 1}
    assert got["a@dst.test"]["host"] == f"127.0.0.1:{grey.port}"
    assert got["b@dst.test"]["host"] == f"127.0.0.1:{good.port}"
    assert busy.server.connection_count == 1


def test_fallback_after_451_at_mail(write_config: Callable[[str], Path]) -> None:
    with CountingSMTP() as first, CountingSMTP() as second:
        first.mail_reply = b"451 4.3.0 local problem\r\n"
        write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                     f'smarthosts = ["127.0.0.1:{first.port}", "127.0.0.1:{second.port}"]\n'
                     'tls = "none"\n')
        run_cli("x@dst.test", input=CRON, program="mailtool-sendmail")
    assert dict(second.received) == {"x@dst.test": 1} and not first.received
    assert queue_list() == []


def test_queue_run_keeps_mail_when_the_relay_refuses_the_login(
        write_config: Callable[[str], Path]) -> None:
    """Queued mail is never dropped for a session failure (no password, login refused,
    TLS broken): the run says why and exits with its code; the next run delivers."""
    with CountingSMTP() as srv:
        srv.all_tempfail = True
        write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                     f'host = "127.0.0.1"\nport = {srv.port}\ntls = "none"\n')
        run_cli("x@dst.test", input=CRON, env=at(T0), program="mailtool-sendmail")
        # Now the relay wants a login, and the password is not available (exit 77).
        srv.all_tempfail = False
        with CountingSMTP() as srv_auth:
            srv_auth.ehlo = b"250-count.test\r\n250 AUTH PLAIN\r\n"
            write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                         f'host = "127.0.0.1"\nport = {srv_auth.port}\ntls = "none"\n'
                         'user = "me"\npassword_command = "false"\n')
            r = run_cli("queue", "run", env=at(T0 + 300), expect=77)
        assert ": kept: " in r.stderr
        assert queue_list()[0]["recipients"] == ["x@dst.test"]
        # The login works again (the original relay, no AUTH): delivered.
        write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                     f'host = "127.0.0.1"\nport = {srv.port}\ntls = "none"\n')
        run_cli("queue", "flush")
    assert srv.received["x@dst.test"] == 1 and queue_list() == []
