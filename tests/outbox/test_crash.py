"""Locks and crashes: two runners at once, and kill -9 at seeded points of a run. Each
recipient must get each message exactly once (counted by the scripted server)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailtool.endpoint import ConnectionOptions
from mailtool.outbox import Outbox, route_of
from mailtool.sendcore import SendRequest
from tests.helpers import ROOT, run_cli
from tests.outbox.smtpd import CountingSMTP

pytestmark = pytest.mark.timeout(120)

MESSAGES = 4
RCPTS = 2


def fill(outbox_dir: Path, srv: CountingSMTP | None, tag: str,
         account: str | None = None) -> list[str]:
    """Queue MESSAGES messages of RCPTS recipients each, due now; return the recipients.
    They go to ``srv``, or the way ``account`` says."""
    if srv is not None:
        req = SendRequest(smarthost=f"127.0.0.1:{srv.port}", conn=ConnectionOptions(tls="none"))
    else:
        req = SendRequest()
    outbox = Outbox(outbox_dir)
    everyone = []
    for i in range(MESSAGES):
        rcpts = [f"{tag}-m{i}-r{j}@dst.test" for j in range(RCPTS)]
        everyone += rcpts
        body = f"Subject: {tag} {i}\r\n\r\nmessage {i}\r\n".encode()
        outbox.create([body], sender="me@src.test", recipients=rcpts, now=time.time(),
                      route=route_of(req), account=account)
    return everyone


def spawn(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "mailtool", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def queued(outbox_dir: Path) -> list[str]:
    return os.listdir(outbox_dir / "queue")


def test_two_queue_runs_at_once(outbox_dir: Path) -> None:
    with CountingSMTP() as srv:
        everyone = fill(outbox_dir, srv, "run")
        procs = [spawn("queue", "run", "-v"), spawn("queue", "run", "-v")]
        results = [finish(p) for p in procs]
    srv.check()
    assert [code for code, _ in results] == [0, 0], results
    assert {r: srv.received[r] for r in everyone} == dict.fromkeys(everyone, 1)
    assert queued(outbox_dir) == []


def test_two_flushes_overlapping_never_send_an_entry_twice(outbox_dir: Path) -> None:
    # flush ignores the run lock; the entry locks must keep the two apart. A barrier
    # makes both runners hold a connection (and so an entry lock) at the same time.
    barrier = threading.Barrier(2, timeout=20)
    with CountingSMTP() as srv:
        everyone = fill(outbox_dir, srv, "flush")
        srv.after_ehlo = barrier.wait
        procs = [spawn("queue", "flush", "-v"), spawn("queue", "flush", "-v")]
        results = [finish(p) for p in procs]
    srv.check()
    assert [code for code, _ in results] == [0, 0], results
    assert srv.server.connection_count == 2
    assert {r: srv.received[r] for r in everyone} == dict.fromkeys(everyone, 1)
    assert "being delivered by another process" in results[0][1] + results[1][1]
    assert queued(outbox_dir) == []


def test_kill_9_during_queue_run_then_clean_run(outbox_dir: Path,
                                               write_config: Callable[[str], Path]) -> None:
    """SIGKILL when the servers have read the k-th line of the run (k seeded, several
    rounds): at a command, in the middle of the data, at the next MAIL or EHLO after a 250,
    at QUIT. Two relays: the first greylists half the recipients, the second takes them,
    so a message is delivered over two transactions and the state written after the first
    one matters. After each kill a clean run must deliver the rest, exactly once."""
    for seed in range(ROUNDS):
        _kill_round(outbox_dir, write_config, seed)


ROUNDS = 6
#: Lines the relays read in a whole run: EHLO and QUIT at each; per message, MAIL, both
#: RCPTs, DATA and the data at the first; MAIL, one RCPT, DATA and the data at the second.
EVENTS = 4 + MESSAGES * ((RCPTS + 3) + 4)


def _kill_round(outbox_dir: Path, write_config: Callable[[str], Path], seed: int) -> None:
    kill_at = random.Random(seed).randint(1, EVENTS)
    seen = {"n": 0}
    holder: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()

    def on_line(line: bytes) -> None:
        with lock:
            seen["n"] += 1
            hit = seen["n"] == kill_at
        if hit:
            holder["proc"].send_signal(signal.SIGKILL)
            holder["proc"].wait(timeout=30)
            raise EOFError("runner killed")

    with CountingSMTP() as first, CountingSMTP() as second:
        write_config(f'[accounts.box]\nfrom = "me@src.test"\n[accounts.box.smtp]\n'
                     f'smarthosts = ["127.0.0.1:{first.port}", "127.0.0.1:{second.port}"]\n'
                     'tls = "none"\n')
        everyone = fill(outbox_dir, None, f"kill{seed}", account="box")
        first.tempfail = {r for r in everyone if r.endswith("-r1@dst.test")}
        first.on_line = second.on_line = on_line
        holder["proc"] = spawn("queue", "run")
        code, err = finish(holder["proc"])
        assert code == -signal.SIGKILL, f"not killed (kill_at={kill_at}, seen={seen['n']}) {err}"
        before = dict(first.received + second.received)
        first.on_line = second.on_line = None
        run_cli("queue", "flush")
        first.check()
        second.check()
        got = first.received + second.received
    if kill_at == EVENTS:  # killed at the last QUIT: every 250 was recorded before it
        assert sum(before.values()) == len(everyone)
    assert {r: got[r] for r in everyone} == dict.fromkeys(everyone, 1), \
        f"seed {seed}: killed at line {kill_at}; delivered before the kill: {before}"
    assert queued(outbox_dir) == []
