"""pop-fetch against the private Dovecot: byte-exact storage, keep/delete modes, TLS, logins."""

from __future__ import annotations

import json
import random
import sys

import pytest

from mailtool.retrieve import UIDLState, state_path
from tests.pop3.conftest import maildir_bytes, maildir_files

pytestmark = pytest.mark.timeout(180)


def mixed_messages(count: int, seed: int = 8) -> list[bytes]:
    """Messages of varied sizes with the awkward cases: leading dots, 'From ' lines,
    very long lines, 8-bit bytes, a lone '.' line, no final newline."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        lines = [f"Subject: message {i}".encode(), f"Message-ID: <{i}@test>".encode(), b""]
        for _ in range(rng.randint(1, 60)):
            kind = rng.random()
            if kind < 0.1:
                lines.append(b"." * rng.randint(1, 3) + b"dot line")
            elif kind < 0.15:
                lines.append(b".")
            elif kind < 0.2:
                lines.append(b"From the start of a line")
            elif kind < 0.25:
                lines.append(bytes(rng.randint(0x80, 0xFF) for _ in range(40)))
            elif kind < 0.27:
                lines.append(b"L" * rng.randint(2000, 200_000))
            else:
                lines.append(b"text " * rng.randint(0, 20))
        body = b"\n".join(lines)
        if i % 7:
            body += b"\n"
        out.append(body)
    return out


def server_bytes(dovecot, user) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Dovecot's files, as POP3 can carry them: a multi-line response always ends with a
    line end, so a message stored without a final newline arrives with one."""
    out = []
    for path in dovecot.messages(user):
        data = path.read_bytes()
        out.append(data if data.endswith(b"\n") else data + b"\n")
    return sorted(out)


def test_mixed_messages_byte_exact_then_keep_mode(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    msgs = mixed_messages(220)
    dovecot.deliver_many(mail_user, msgs)
    md = tmp_path / "Mail"
    r = pop_fetch("--maildir", str(md))
    assert r.stdout == "" and r.stderr == ""  # quiet for cron when not a terminal
    stored = maildir_bytes(md)
    assert stored == server_bytes(dovecot, mail_user)
    assert len(stored) == 220
    # keep mode: nothing new, nothing printed, nothing deleted
    r = pop_fetch("--maildir", str(md), "--json")
    doc = json.loads(r.stdout)
    assert doc["new"] == 0 and doc["stored"] == 0 and doc["on_server"] == 220
    assert len(maildir_files(md)) == 220
    # new messages only on the third run
    extra = [b"Subject: late %d\n\nnew\n" % i for i in range(3)]
    dovecot.deliver_many(mail_user, extra)
    r = pop_fetch("--maildir", str(md), "--json")
    doc = json.loads(r.stdout)
    assert doc["new"] == 3 and doc["stored"] == 3 and doc["deleted"] == 0
    assert sorted(m["status"] for m in doc["messages"]) == ["stored"] * 3
    assert len(maildir_files(md)) == 223
    # --delete: the server ends empty, every message on disk exactly once
    all_server = server_bytes(dovecot, mail_user)
    r = pop_fetch("--maildir", str(md), "--delete", "-v")
    assert "0 new, 0 stored, 223 deleted" in r.stderr
    assert dovecot.messages(mail_user) == []
    assert maildir_bytes(md) == all_server


def test_fifty_megabyte_message(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    line = b"0123456789abcdef" * 4 + b"\n"
    big = b"Subject: big\n\n" + line * (50 * 1024 * 1024 // len(line)) + b".\n..x\n"
    dovecot.deliver_many(mail_user, [big])
    md = tmp_path / "md"
    pop_fetch("--maildir", str(md), "--delete")
    [path] = maildir_files(md)
    assert path.stat().st_size == len(big)
    assert path.read_bytes() == big
    assert dovecot.messages(mail_user) == []


def test_delete_after_days(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    dovecot.deliver_many(mail_user, [b"Subject: a\n\nA\n", b"Subject: b\n\nB\n"])
    md = tmp_path / "md"
    pop_fetch("--maildir", str(md), "--delete-after", "3")
    assert len(dovecot.messages(mail_user)) == 2  # too young
    # age the first one by rewriting the state as if fetched 4 days ago
    path = state_path(None, "localhost", mail_user.name)
    state = UIDLState(path).load()
    first = sorted(state.messages)[0]
    state.messages[first] = str(int(state.messages[first]) - 4 * 86400)
    state.save()
    r = pop_fetch("--maildir", str(md), "--delete-after", "3", "--json")
    doc = json.loads(r.stdout)
    assert doc["deleted"] == 1
    assert [m["uidl"] for m in doc["messages"] if m["deleted"]] == [first]
    assert len(dovecot.messages(mail_user)) == 1
    assert len(maildir_files(md)) == 2


def test_stls_with_verification_and_plain(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    dovecot.deliver_many(mail_user, [b"Subject: s\n\nS\n"])
    r = pop_fetch("--maildir", str(tmp_path / "md"), "--tls", "starttls", "--auth", "PLAIN",
                  "-v", tls="starttls")
    assert "-> STLS" in r.stderr and "verified" in r.stderr
    assert "AUTH PLAIN <PLAIN response redacted>" in r.stderr  # SASL-IR, redacted
    assert mail_user.password not in r.stderr
    assert len(maildir_files(tmp_path / "md")) == 1


def test_apop_login_in_cleartext_to_loopback(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    dovecot.deliver_many(mail_user, [b"Subject: s\n\nS\n"])
    r = pop_fetch("--maildir", str(tmp_path / "md"), "--auth", "APOP", "-v", tls="none")
    assert "APOP " + mail_user.name + " <digest redacted>" in r.stderr
    assert len(maildir_files(tmp_path / "md")) == 1


def test_untrusted_certificate_exits_69(dovecot, mail_user, tmp_path):  # type: ignore[no-untyped-def]
    from tests.helpers import run_cli

    r = run_cli("--timeout", "10", "pop-fetch", "--host", "localhost",
                "--port", str(dovecot.pop3s_port), "--tls", "implicit",
                "--user", mail_user.name, "--maildir", str(tmp_path / "md"), expect=69,
                env={"MAILTOOL_PASSWORD": mail_user.password})
    assert "certificate" in r.stderr


def test_wrong_password_exits_77_with_server_text(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    r = pop_fetch("--maildir", str(tmp_path / "md"), password="wrong", expect=77)
    assert r.stderr.count("\n") == 1
    assert "Authentication failed" in r.stderr  # Dovecot's own words
    r = pop_fetch("--maildir", str(tmp_path / "md"), "--auth", "USER", password="wrong",
                  expect=77)
    assert "PASS" in r.stderr and "wrong" not in r.stderr


def test_mbox_mda_and_stdout(dovecot, mail_user, pop_fetch, tmp_path):  # type: ignore[no-untyped-def]
    msgs = [b"Subject: one\n\nFrom me\n>From you\n", b"Subject: two\n\nplain"]
    dovecot.deliver_many(mail_user, msgs)
    mbox = tmp_path / "mbox"
    pop_fetch("--mbox", str(mbox))
    data = mbox.read_bytes()
    assert data.count(b"\nFrom MAILER-DAEMON ") + data.startswith(b"From ") == 2
    assert b"\n>From me\n>>From you\n" in data  # mboxrd quoting
    assert data.endswith(b"\nplain\n\n")  # final newline added, blank separator
    assert not (tmp_path / "mbox.lock").exists()
    # the MDA gets each message on stdin; argv, no shell
    out = tmp_path / "mda-out"
    out.mkdir()
    script = tmp_path / "mda.py"
    script.write_text(
        "import sys, os, uuid\n"
        "data = sys.stdin.buffer.read()\n"
        "open(os.path.join(sys.argv[1], uuid.uuid4().hex), 'wb').write(data)\n"
    )
    pop_fetch("--mda", f"{sys.executable} {script} {out}", "--all")
    assert sorted(p.read_bytes() for p in out.iterdir()) == server_bytes(dovecot, mail_user)
    # an MDA exiting 75 defers: not recorded, exit 75
    fail = tmp_path / "defer.py"
    fail.write_text("import sys; sys.stdin.buffer.read(); sys.exit(75)\n")
    dovecot.deliver_many(mail_user, [b"Subject: three\n\nx\n"])
    r = pop_fetch("--mda", f"{sys.executable} {fail}", "--delete", expect=75)
    # the two stored earlier are deleted; the deferred one stays
    assert server_bytes(dovecot, mail_user) == [b"Subject: three\n\nx\n"]
    assert "deferred" in r.stderr
    # --stdout --limit 1: the one new message as is
    r = pop_fetch("--stdout", "--limit", "1")
    assert r.stdout_bytes == b"Subject: three\n\nx\n"
    r = pop_fetch("--stdout", expect=0)
    assert r.stdout_bytes == b""


def _commands(stderr: str) -> list[str]:
    """The commands a ``-v`` transcript shows pop-fetch sending, first word only."""
    return [line.split(" -> ", 1)[1].split()[0] for line in stderr.splitlines()
            if " -> " in line]


def test_keep_mode_rerun_sends_only_uidl_and_writes_nothing(dovecot, mail_user, pop_fetch,  # type: ignore[no-untyped-def]
                                                            tmp_path):
    """The cron case: nothing new costs one UIDL and no state write; a new message costs a
    LIST of that message only, then its RETR."""
    dovecot.deliver_many(mail_user, [b"Subject: %d\n\nbody %d\n" % (i, i) for i in range(30)])
    md = tmp_path / "md"
    pop_fetch("--maildir", str(md))
    path = state_path(None, "localhost", mail_user.name)
    before = path.stat()
    r = pop_fetch("--maildir", str(md), "-v")
    sent = _commands(r.stderr)
    assert sent.count("UIDL") == 1 and sent[-2:] == ["UIDL", "QUIT"], sent
    assert not {"LIST", "STAT", "RETR", "TOP", "DELE"} & set(sent), sent
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino, before.st_mtime_ns, before.st_size)
    assert not (md / "tmp").exists() or not list((md / "tmp").iterdir())
    dovecot.deliver(mail_user, b"Subject: late\n\nlate\n")
    r = pop_fetch("--maildir", str(md), "-v")
    lines = [line.split(" -> ", 1)[1] for line in r.stderr.splitlines() if " -> " in line]
    assert [x for x in lines if x.startswith(("LIST", "RETR"))] == ["LIST 31", "RETR 31"]
    assert len(maildir_files(md)) == 31
    assert path.stat().st_ino != before.st_ino  # recorded: replaced atomically
