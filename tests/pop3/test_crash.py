"""kill -9 at random points, then a clean run: every message stored exactly once, none lost.

Kill points are drawn from a seeded generator (MAILTOOL_CRASH_SEED overrides the seed,
MAILTOOL_CRASH_KILLS the number of kills) so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.pop3.conftest import maildir_bytes

KILLS = int(os.environ.get("MAILTOOL_CRASH_KILLS", "10"))
SEED = int(os.environ.get("MAILTOOL_CRASH_SEED", "1939"))


def messages(count: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(count):
        body = b"".join(b"line %d of message %d\n" % (k, i) for k in range(rng.randint(1, 3000)))
        out.append(b"Subject: crash %d\nMessage-ID: <%d@crash.test>\n\n" % (i, i) + body)
    return out


def file_count(md: Path) -> int:
    return sum(len(os.listdir(md / sub)) for sub in ("tmp", "new", "cur") if (md / sub).is_dir())


def wait_for_progress(proc: subprocess.Popen[bytes], md: Path, before: int) -> None:
    """Return once the run has created a file in the Maildir (or ended, or 30 s passed)."""
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if file_count(md) != before:
            return
        time.sleep(0.002)  # watching another process's files: there is no event to wait on


@pytest.mark.timeout(300)
def test_kill_9_at_random_points_then_clean_run(dovecot, mail_user, test_ca, tmp_path):  # type: ignore[no-untyped-def]
    rng = random.Random(SEED)
    delivered = messages(150, rng)
    dovecot.deliver_many(mail_user, delivered)
    md = tmp_path / "md"
    argv = [sys.executable, "-m", "mailtool", "pop-fetch", "--host", "localhost",
            "--port", str(dovecot.pop3s_port), "--tls", "implicit",
            "--ca-file", str(test_ca.ca_file), "--user", mail_user.name,
            "--maildir", str(md), "--delete"]
    env = {**os.environ, "MAILTOOL_PASSWORD": mail_user.password,
           "PYTHONPATH": str(ROOT)}
    outcomes: list[int] = []
    # How long after the first new file the kill may come. A run that ends before its kill
    # narrows the window, so faster code still gets killed mid-work often enough.
    window = 0.3
    for _ in range(3 * KILLS):
        if outcomes.count(-signal.SIGKILL) >= KILLS // 2 + 2:
            break
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # A random moment in the life of a run: mostly while messages are being written
        # (measured from the first new file, since start-up time varies with load), some
        # during connect/login/listing.
        if rng.random() < 0.8:
            wait_for_progress(proc, md, file_count(md))
        try:
            proc.wait(timeout=rng.uniform(0.0, window))
            window *= 0.7
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
        outcomes.append(proc.returncode)
        # Anything but a kill must be a clean exit or "try later" (Dovecot's [IN-USE]).
        assert proc.returncode in (0, 75, -signal.SIGKILL), err
        # New mail for every next run, so that each one has work to be killed in (a run
        # with --delete empties the server; an idle run would end before any kill).
        extra = messages(rng.randint(20, 40), rng)
        extra = [m.replace(b"crash", b"late%d" % len(outcomes)) for m in extra]
        dovecot.deliver_many(mail_user, extra)
        delivered += extra
    assert outcomes.count(-signal.SIGKILL) >= KILLS // 2, outcomes
    # The clean run (retried while Dovecot still holds a killed session's lock).
    for _attempt in range(20):
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=120, check=False)
        if proc.returncode != 75:
            break
        time.sleep(0.2)  # waiting for Dovecot to notice the dead session: no event to wait on
    assert proc.returncode == 0, proc.stderr.decode()
    assert dovecot.messages(mail_user) == []
    stored = Counter(maildir_bytes(md))
    assert stored == Counter(delivered)
    assert max(stored.values()) == 1
