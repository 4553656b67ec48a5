"""IMAP response processing without a network: bytes in, ``SelectInfo`` / ``FetchData`` out.

The whole client path after the socket (``Transport.read_burst`` -> ``IMAPSession`` ->
parser -> ``IMAPCore`` dispatch -> the command's handler) driven over an in-memory
transport that answers each command with prepared bytes, so the figures are the CPU cost
of our own code and nothing else. Three workloads:

* ``qresync``: the answer to ``EXAMINE INBOX (QRESYNC ...)`` after 500 flag changes and
  100 expunges in a 5,000-message folder (one ``VANISHED (EARLIER)`` line, 450
  ``* n FETCH (UID u FLAGS (...) MODSEQ (m))`` lines), as ``imap-sync`` meets it;
* ``flags``: ``UID FETCH 1:* (UID FLAGS)`` over 5,000 messages (the non-QRESYNC resync);
* ``bodies``: ``UID FETCH (UID RFC822.SIZE FLAGS BODY.PEEK[])`` of 300 messages of 3 kB
  streamed to a sink (a full sync's shape; it must not get slower).

The peer is the same code at another commit (``--against REV``, default ``BASELINE``
below: the parser before the one-pass FETCH line work), extracted with ``git archive``
into a temporary directory; both run in fresh processes, alternately, and each figure is
the median of many repetitions (thread CPU time, so other load on the machine matters
less). Ratios are peer / ours (above 1: we are faster).

Run: ``.venv/bin/python bench/run.py imap_parse`` or
``.venv/bin/python bench/imap_parse_bench.py [--against REV] [--rounds N]``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The commit this benchmark was written against (before the FETCH line work).
BASELINE = "40b358a"
ROUNDS = 5
REPEAT = 60


def _qresync_answer(tag: bytes) -> bytes:
    rng = random.Random(7)
    uids = list(range(1, 5001))
    gone = set(rng.sample(uids, 100))
    changed = sorted(set(rng.sample([u for u in uids if u not in gone], 450)))
    lines = [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
        b"* OK [PERMANENTFLAGS ()] Read-only mailbox.",
        b"* 4900 EXISTS",
        b"* 0 RECENT",
        b"* OK [UIDVALIDITY 1700000000] UIDs valid",
        b"* OK [UIDNEXT 5001] Predicted next UID",
        b"* OK [HIGHESTMODSEQ 96000] Highest",
        b"* VANISHED (EARLIER) " + ",".join(str(u) for u in sorted(gone)).encode(),
    ]
    seqs = {uid: i for i, uid in enumerate(u for u in uids if u not in gone)}
    for n, uid in enumerate(changed):
        flags = b"\\Seen \\Flagged" if n % 3 else b"\\Flagged"
        lines.append(b"* %d FETCH (UID %d FLAGS (%s) MODSEQ (%d))"  # Dovecot's order
                     % (seqs[uid] + 1, uid, flags, 90000 + n))
    lines.append(tag + b" OK [READ-ONLY] Examine completed (0.001 + 0.000 secs).")
    return b"\r\n".join(lines) + b"\r\n"


def _flags_answer(tag: bytes) -> bytes:
    lines = [b"* %d FETCH (UID %d FLAGS (%s))" % (n, n * 2, b"\\Seen" if n % 4 else b"")
             for n in range(1, 5001)]
    lines.append(tag + b" OK Fetch completed (0.001 + 0.000 secs).")
    return b"\r\n".join(lines) + b"\r\n"


def _bodies_answer(tag: bytes) -> bytes:
    out = []
    for n in range(1, 301):
        body = (b"Subject: message %d\r\nFrom: a@example.test\r\n\r\n" % n
                + b"x" * 70 + b"\r\n") * 1
        body += b"y" * (3000 - len(body))
        out.append(b"* %d FETCH (UID %d RFC822.SIZE %d FLAGS (\\Seen) BODY[] {%d}\r\n"
                   % (n, n, len(body), len(body)) + body + b")\r\n")
    out.append(tag + b" OK Fetch completed (0.001 + 0.000 secs).\r\n")
    return b"".join(out)


class _Transport:
    """Just enough of ``Transport`` for ``IMAPCore``: TLS-like bursts from a buffer."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.tls_info = object()  # bursts, as over TLS
        self.transcript = None
        self.closed = False
        self._buf = b""
        self._pos = 0
        self.burst = 16 * 1024  # one TLS record's worth per read

    def send(self, data: bytes, *, log_as: bytes | None = None) -> None:
        if data.endswith(b"\r\n"):
            assert data.startswith(b"A0001 "), data  # one command per fresh client
            self._buf = self.answer
            self._pos = 0

    def _take(self, limit: int) -> bytes:
        if self._pos >= len(self._buf):
            from mailtool.errors import ConnectionLostError

            raise ConnectionLostError("fake server has nothing more")
        data = self._buf[self._pos : self._pos + min(limit, self.burst)]
        self._pos += len(data)
        return data

    def read_burst(self, limit: int = 65536) -> bytes:
        return self._take(limit)

    def read_available(self, limit: int = 65536) -> bytes:
        return self._take(limit)

    def readline(self, limit: int = 65536) -> bytes:
        end = self._buf.find(b"\n", self._pos)
        return self._take(end + 1 - self._pos if end >= 0 else limit)

    def close(self) -> None:
        self.closed = True


class _Sink:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def _client(answer: bytes) -> object:
    from mailtool.protocol.imap.client import IMAPClient

    client = IMAPClient(_Transport(answer))  # type: ignore[arg-type]
    client._set_capabilities(["IMAP4REV1", "CONDSTORE", "QRESYNC", "LITERAL+"])
    client.enabled = {"QRESYNC", "CONDSTORE"}
    client.authenticated = True
    return client


def _run_qresync(answer: bytes) -> int:
    client: object = _client(answer)
    info = client.select("INBOX", readonly=True, qresync=(1700000000, 90000, None))  # type: ignore[attr-defined]
    changed = {fd.uid: fd.flags for fd in info.fetches if fd.uid is not None}
    assert len(changed) == 450 and sum(len(v) for v in info.vanished) == 100, changed
    return len(changed)


def _run_flags(answer: bytes) -> int:
    client: object = _client(answer)
    flags: dict[int, tuple[str, ...]] = {}

    def collect(fd: object) -> None:
        uid = fd.uid  # type: ignore[attr-defined]
        if uid is not None:
            flags[uid] = fd.flags  # type: ignore[attr-defined]

    client.uid_fetch("1:*", ["UID", "FLAGS"], on_fetch=collect)  # type: ignore[attr-defined]
    assert len(flags) == 5000
    return len(flags)


def _run_bodies(answer: bytes) -> int:
    client: object = _client(answer)
    sinks: list[_Sink] = []

    def sink(info: object) -> _Sink:
        sinks.append(_Sink())
        return sinks[-1]

    got = client.uid_fetch("1:300", ["UID", "RFC822.SIZE", "FLAGS", "BODY.PEEK[]"],  # type: ignore[attr-defined]
                           sink=sink)
    assert len(got) == 300 and all(s.size == 3000 for s in sinks)
    return len(got)


WORKLOADS = {
    "qresync": (_qresync_answer, _run_qresync),
    "flags": (_flags_answer, _run_flags),
    "bodies": (_bodies_answer, _run_bodies),
}


def worker(repeat: int) -> dict[str, float]:
    """Median thread-CPU milliseconds of each workload in this process's mailtool."""
    result = {}
    for name, (make, run) in WORKLOADS.items():
        answer = make(b"A0001")
        for _ in range(3):  # warm up (lazy regexes, compiled record __init__s)
            run(answer)
        times = []
        for _ in range(repeat):
            start = time.thread_time()
            run(answer)
            times.append(time.thread_time() - start)
        result[name] = statistics.median(times) * 1000
    return result


def _extract(rev: str) -> str:
    tree = tempfile.mkdtemp(prefix="imap-parse-bench-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mailtool"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", tree], check=False,
                   stdout=subprocess.DEVNULL)
    return tree


def _measure(tree: str, repeat: int) -> dict[str, float]:
    env = dict(os.environ, MAILTOOL_BENCH_TREE=tree, PYTHONDONTWRITEBYTECODE="")
    proc = subprocess.run([sys.executable, __file__, "--worker", str(repeat)], env=env,
                          check=True, capture_output=True, text=True)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    against = os.environ.get("MAILTOOL_BENCH_AGAINST", BASELINE)
    rounds = ROUNDS
    if "--against" in args:
        against = args[args.index("--against") + 1]
    if "--rounds" in args:
        rounds = int(args[args.index("--rounds") + 1])
    import shutil

    peer_tree = _extract(against)
    try:
        ours: dict[str, list[float]] = {name: [] for name in WORKLOADS}
        peer: dict[str, list[float]] = {name: [] for name in WORKLOADS}
        for index in range(rounds):  # alternate, each round starting with the other one
            order = [(str(ROOT), ours), (peer_tree, peer)]
            for tree, into in order if index % 2 == 0 else order[::-1]:
                for name, value in _measure(tree, REPEAT).items():
                    into[name].append(value)
    finally:
        shutil.rmtree(peer_tree, ignore_errors=True)
    print(f"IMAP response processing, thread CPU ms (median of {rounds} processes x "
          f"{REPEAT} runs); peer = mailtool at {against}; load {os.getloadavg()[0]:.2f}")
    print(f"{'workload':10} {'ours':>9} {'peer':>9} {'peer/ours':>10}")
    for name in WORKLOADS:
        mine, theirs = statistics.median(ours[name]), statistics.median(peer[name])
        print(f"{name:10} {mine:9.2f} {theirs:9.2f} {theirs / mine:9.2f}x")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        sys.path.insert(0, os.environ.get("MAILTOOL_BENCH_TREE", str(ROOT)))
        print(json.dumps(worker(int(sys.argv[2]))))
    else:
        sys.path.insert(0, str(ROOT))
        main()
