"""Scripted fault servers: what real servers will not do on demand. Through the real CLI."""

from __future__ import annotations

import json

import pytest

from tests.faults.server import Conn, ScriptedServer, dead_port
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(60)

EHLO = b"250-fault.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
MSG = b"From: a@src.test\r\nTo: x@dst.test\r\nSubject: t\r\n\r\nhello\r\n"


def relay(srv: ScriptedServer) -> list[str]:
    return ["--smarthost", f"127.0.0.1:{srv.port}", "--tls", "none", "-f", "a@src.test"]


def greet(c: Conn, ehlo: bytes = EHLO) -> None:
    c.send(b"220 fault.test ESMTP\r\n")
    c.expect(b"EHLO")
    c.send(ehlo)


def outcomes(stdout: str) -> dict[str, dict[str, object]]:
    doc = json.loads(stdout)
    return {o["recipient"]: o for o in doc["recipients"]}


def test_421_at_greeting_defers() -> None:
    def handler(c: Conn) -> None:
        c.send(b"421 4.3.2 too busy\r\n")
        c.read_until_closed()

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", input=MSG, expect=75)
    srv.check()
    out = outcomes(r.stdout)["x@dst.test"]
    assert out["status"] == "deferred" and out["code"] == 421 and out["step"] == "greeting"


def test_mixed_rcpt_replies_each_reported() -> None:
    seen: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c)
        c.expect(b"MAIL FROM:<a@src.test>")
        for _ in range(4):
            seen.append(c.readline())
        c.expect(b"DATA")
        c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n451 4.3.0 try later\r\n"
               b"452 4.2.2 full\r\n550 5.1.1 no such user\r\n354 go\r\n")
        data = c.read_data()
        seen.append(data)
        c.send(b"250 2.0.0 queued\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    rcpts = ["ok@dst.test", "later@dst.test", "full@dst.test", "nouser@dst.test"]
    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", *rcpts, input=MSG, expect=67)
    srv.check()
    got = outcomes(r.stdout)
    assert [got[x]["status"] for x in rcpts] == ["accepted", "deferred", "deferred", "rejected"]
    assert got["nouser@dst.test"]["enhanced"] == "5.1.1"
    assert got["nouser@dst.test"]["exit_code"] == 67
    assert got["ok@dst.test"]["step"] == "end of DATA"
    assert seen[-1] == MSG + b".\r\n"
    # The human table goes to stderr when something failed.
    assert "nouser@dst.test" in r.stderr and "550" in r.stderr


def test_only_temporary_rcpt_failures_exit_75() -> None:
    def handler(c: Conn) -> None:
        greet(c)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n450 4.2.1 greylisted\r\n554 5.5.1 no valid recipients\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", input=MSG, expect=75)
    srv.check()
    assert outcomes(r.stdout)["x@dst.test"]["code"] == 450


def test_552_after_data_rejects_all() -> None:
    def handler(c: Conn) -> None:
        greet(c)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        c.read_data()
        c.send(b"552 5.3.4 message too big\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", "y@dst.test", input=MSG,
                    expect=69)
    srv.check()
    got = outcomes(r.stdout)
    assert {o["status"] for o in got.values()} == {"rejected"}
    assert {o["code"] for o in got.values()} == {552}


def test_connection_dropped_mid_data_defers() -> None:
    def handler(c: Conn) -> None:
        greet(c)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        c.readline()
        c.reset()

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", input=MSG, expect=75)
    srv.check()
    out = outcomes(r.stdout)["x@dst.test"]
    assert out["status"] == "deferred" and out["code"] is None


def test_size_limit_checked_before_data_and_no_bare_lf() -> None:
    captured: list[bytes] = []

    def handler(c: Conn) -> None:
        greet(c, b"250-fault.test\r\n250 SIZE 100000\r\n")
        line = c.readline()
        if line.startswith(b"QUIT"):  # the big message: refused before MAIL
            captured.append(line)
            c.send(b"221 bye\r\n")
            return
        assert line.startswith(b"MAIL FROM:<a@src.test> SIZE=")
        captured.append(line)
        c.send(b"250 ok\r\n")
        c.expect(b"RCPT")
        c.send(b"250 ok\r\n")
        c.expect(b"DATA")
        c.send(b"354 go\r\n")
        captured.append(c.read_data())
        c.send(b"250 ok\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    body = b"Subject: s\n\n.leading dot\nbare\rcr\n\n.\nend"
    with ScriptedServer(handler) as srv:
        run_cli("send", *relay(srv), "x@dst.test", input=body, expect=0)
        big = b"Subject: big\n\n" + b"x" * 200000
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", input=big, expect=69)
    srv.check()
    data = captured[1]
    assert data == (b"Subject: s\r\n\r\n..leading dot\r\nbare\r\ncr\r\n\r\n..\r\nend\r\n.\r\n")
    assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert outcomes(r.stdout)["x@dst.test"]["step"] == "SIZE"
    assert captured[2] == b"QUIT\r\n"  # no MAIL, no data for the oversized message


def test_t_takes_recipients_and_strips_bcc_and_bdat() -> None:
    got: dict[str, object] = {}

    def handler(c: Conn) -> None:
        greet(c, b"250-fault.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
        got["mail"] = c.expect(b"MAIL")
        got["rcpt"] = [c.expect(b"RCPT"), c.expect(b"RCPT")]
        head = c.expect(b"BDAT")
        size = int(head.split()[1])
        assert head.split()[2:] == [b"LAST"]
        got["data"] = c.read_exact(size)
        c.send(b"250 ok\r\n250 ok\r\n250 ok\r\n250 2.0.0 got it\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    msg = b"From: a@src.test\nTo: x@dst.test\nBcc: secret@dst.test\nSubject: t\n\nhi\n"
    with ScriptedServer(handler) as srv:
        run_cli("send", "--smarthost", f"127.0.0.1:{srv.port}", "--tls", "none", "-t", "-i",
                "-oi", input=msg, expect=0)
    srv.check()
    assert got["mail"] == b"MAIL FROM:<a@src.test> BODY=8BITMIME\r\n" or \
        got["mail"] == b"MAIL FROM:<a@src.test>\r\n"
    assert [r.strip() for r in got["rcpt"]] == [b"RCPT TO:<x@dst.test>",  # type: ignore[attr-defined]
                                               b"RCPT TO:<secret@dst.test>"]
    assert got["data"] == b"From: a@src.test\r\nTo: x@dst.test\r\nSubject: t\r\n\r\nhi\r\n"


def test_header_injection_refused_without_connecting() -> None:
    r = run_cli("send", "--smarthost", f"127.0.0.1:{dead_port()}", "--from", "a@src.test",
                "--to", "x@dst.test", "--subject", "hi\nBcc: evil@x.test", "--body", "b",
                expect=65)
    assert "control character" in r.stderr


def test_dry_run_connects_to_nothing() -> None:
    def handler(c: Conn) -> None:  # pragma: no cover - must never run
        c.send(b"554 no\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--dry-run", "--json", "--from", "a@src.test",
                    "--to", "x@dst.test", "--bcc", "b@dst.test", "--subject", "s",
                    "--body", "b")
    assert srv.connection_count == 0
    doc = json.loads(r.stdout)
    assert doc["recipients"] == ["x@dst.test", "b@dst.test"]
    assert doc["routes"][0]["kind"] == "smarthost" and "Subject: s" in doc["headers"]
    assert "Bcc" not in doc["headers"]


def test_json_schema_is_stable() -> None:
    def handler(c: Conn) -> None:
        greet(c)
        c.expect(b"MAIL")
        c.expect(b"RCPT")
        c.expect(b"DATA")
        c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
        c.read_data()
        c.send(b"250 2.0.0 ok\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--json", "x@dst.test", input=MSG)
    doc = json.loads(r.stdout)
    assert set(doc) == {"sender", "message_id", "size", "exit_code", "recipients", "routes"}
    assert set(doc["recipients"][0]) == {"recipient", "status", "step", "code", "enhanced",
                                         "text", "host", "exit_code"}
    assert r.stderr == ""  # quiet on success


def test_sendmail_entry_point_and_batch() -> None:
    count = {"msgs": 0}

    def handler(c: Conn) -> None:
        greet(c)
        while True:
            line = c.readline()
            if line.upper().startswith(b"QUIT"):
                c.send(b"221 bye\r\n")
                return
            assert line.startswith(b"MAIL")
            c.expect(b"RCPT")
            c.expect(b"DATA")
            c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
            c.read_data()
            count["msgs"] += 1
            c.send(b"250 ok\r\n")

    env = {"MAILTOOL_SMARTHOST": "", "MAILTOOL_TLS": "none"}
    with ScriptedServer(handler) as srv:
        env["MAILTOOL_SMARTHOST"] = f"127.0.0.1:{srv.port}"
        run_cli("-oi", "-FCronDaemon", "-f", "root@src.test", "x@dst.test", input=MSG,
                env=env, program="mailtool-sendmail")
        mbox = b"".join(b"From a@src.test Thu Jan  1 00:00:00 2026\n" + MSG.replace(b"\r", b"")
                        + b"\n" for _ in range(5))
        r = run_cli("send", *relay(srv), "--batch", input=mbox)
    srv.check()
    assert count["msgs"] == 6
    assert srv.connection_count == 2  # one connection for the whole batch
    assert len(r.stdout.splitlines()) == 5 and all("\tok\t" in x for x in r.stdout.splitlines())


def _batch(n: int) -> bytes:
    return b"".join(b"From a@src.test Thu Jan  1 00:00:00 2026\n"
                    + MSG.replace(b"\r", b"").replace(b"Subject: t", f"Subject: m{i}".encode())
                    + b"\n" for i in range(1, n + 1))


def _transaction(c: Conn) -> bytes:
    c.expect(b"MAIL FROM:<a@src.test>")
    c.expect(b"RCPT TO:<x@dst.test>")
    c.expect(b"DATA")
    c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
    return c.read_data()


def test_batch_pipelines_the_next_message_behind_the_final_dot() -> None:
    """RFC 2920 3.1: the next MAIL/RCPT/DATA follow a message's data before its reply; a
    451 to one message's data defers that message only."""

    def handler(c: Conn) -> None:
        greet(c)
        data = [_transaction(c)]
        for _ in range(2):
            # The next transaction arrives before we answer the previous final dot.
            c.expect(b"MAIL FROM:<a@src.test>")
            c.expect(b"RCPT TO:<x@dst.test>")
            c.expect(b"DATA")
            c.send(b"250 2.0.0 queued\r\n" if len(data) != 2 else b"451 4.3.0 disk full\r\n")
            c.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
            data.append(c.read_data())
        assert [b"Subject: m%d" % i in d for i, d in enumerate(data, 1)] == [True] * 3
        c.expect(b"QUIT")
        c.send(b"250 2.0.0 queued\r\n221 bye\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--batch", "--json", input=_batch(3), expect=75)
    srv.check()
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["index"] for d in docs] == [1, 2, 3]
    states = [d["recipients"][0]["status"] for d in docs]
    assert states == ["accepted", "deferred", "accepted"]
    assert docs[1]["recipients"][0]["code"] == 451


def test_batch_connection_lost_before_a_final_reply() -> None:
    """The server vanishes after a message's data (no reply): that message is deferred
    (sent, fate unknown: never reported delivered); the next goes on a new connection."""

    def handler(c: Conn) -> None:
        greet(c)
        if srv.connection_count == 1:
            _transaction(c)
            c.expect(b"MAIL FROM")
            c.reset()
            return
        _transaction(c)
        c.send(b"250 2.0.0 queued\r\n")
        c.expect(b"QUIT")
        c.send(b"221 bye\r\n")

    with ScriptedServer(handler) as srv:
        r = run_cli("send", *relay(srv), "--batch", "--json", input=_batch(2), expect=75)
    srv.check()
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["recipients"][0]["status"] for d in docs] == ["deferred", "accepted"]
    assert docs[0]["recipients"][0]["step"] == "end of DATA"
    assert srv.connection_count == 2


def test_batch_results_stay_in_order_across_connections() -> None:
    """Messages alternating between two hosts: each line still comes in message order (a
    final reply pending on one connection is read before another connection is used)."""

    def handler(c: Conn) -> None:
        greet(c)
        while True:
            line = c.readline()
            if line.upper().startswith(b"QUIT"):
                c.send(b"221 bye\r\n")
                return
            assert line.startswith(b"MAIL")
            c.expect(b"RCPT")
            c.expect(b"DATA")
            c.send(b"250 ok\r\n250 ok\r\n354 go\r\n")
            c.read_data()
            c.send(b"250 2.0.0 queued\r\n")

    with ScriptedServer(handler, host="127.0.0.2") as one:
        with ScriptedServer(handler, host="127.0.0.3", port=one.port) as two:
            mbox = b"".join(
                b"From a@src.test Thu Jan  1 00:00:00 2026\nFrom: a@src.test\nTo: x@[%s]\n"
                b"Subject: m%d\n\nhello\n\n" % (host, i)
                for i, host in enumerate([b"127.0.0.2", b"127.0.0.3", b"127.0.0.2"], 1))
            r = run_cli("send", "--batch", "--tls", "none", "--port", str(one.port),
                        input=mbox)
    one.check()
    two.check()
    assert [line.split("\t")[:2] for line in r.stdout.splitlines()] == [
        ["1", "ok"], ["2", "ok"], ["3", "ok"]]
    assert one.connection_count == 1 and two.connection_count == 1


def test_batch_refused_message_keeps_its_place() -> None:
    """A message refused before sending (no recipient) gets its error line in its place:
    the pending result of the message before it is read first."""

    def handler(c: Conn) -> None:
        greet(c)
        _transaction(c)
        c.send(b"250 2.0.0 one\r\n")  # message 1's final reply, before message 3 arrives
        _transaction(c)
        c.expect(b"QUIT")
        c.send(b"250 2.0.0 three\r\n221 bye\r\n")

    mbox = _batch(3).replace(b"To: x@dst.test\nSubject: m2", b"Subject: m2")
    with ScriptedServer(handler) as srv:
        r = run_cli("send", "--smarthost", f"127.0.0.1:{srv.port}", "--tls", "none",
                    "--batch", input=mbox, expect=64)
    srv.check()
    assert [line.split("\t")[:2] for line in r.stdout.splitlines()] == [
        ["1", "ok"], ["2", "error"], ["3", "ok"]]
