"""imap-sync benchmarks against mbsync (isync) and offlineimap, peers in the same run.

One private Dovecot (the test harness's), one account, one INBOX of ``MESSAGES``
messages (about 5 % carry a 0.2-2 MB attachment). Every tool mirrors it into its own
Maildir; workloads, each a median of several runs, reported as ratios to mbsync:

  full       first sync into an empty Maildir (mbsync with its default FSync)
  noop       resync with nothing changed
  new100     resync after 100 new messages
  flags      resync after 500 flag changes and 100 expunges made on the server

Peak RSS of each process comes from ``wait4``. Run: ``.venv/bin/python bench/run.py sync``
(``apt-get install -y isync offlineimap3`` for the peers; missing peers are skipped).
``MAILTOOL_BENCH_MESSAGES`` and ``MAILTOOL_BENCH_RUNS`` override the sizes.
"""

from __future__ import annotations

import imaplib
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import tool

MESSAGES = int(os.environ.get("MAILTOOL_BENCH_MESSAGES", "5000"))
RUNS = int(os.environ.get("MAILTOOL_BENCH_RUNS", "3"))
ATTACHMENT_SHARE = 0.05
OFFLINEIMAP_FULL_RUNS = 1  # offlineimap's full sync takes minutes; one run is enough
SEED = 7


def _message(n: int, rng: random.Random) -> bytes:
    head = (f"From: Bench <bench@example.test>\r\nTo: you@example.test\r\n"
            f"Subject: bench message {n}\r\nMessage-ID: <bench{n}.{rng.random()}@example.test>\r\n"
            f"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    text = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 2 + "\r\n") * 30
    if rng.random() >= ATTACHMENT_SHARE:
        return (head + "Content-Type: text/plain\r\n\r\n" + text).encode()
    size = rng.randint(200_000, 2_000_000)
    blob = os.urandom(size * 3 // 4)
    import base64

    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain\r\n\r\n" + text + "\r\n--b\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="a.bin"\r\n\r\n').encode() + b64 + \
        b"\r\n--b--\r\n"


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process (RSS from GNU time when present:
    ``wait4`` would report the forked Python parent's size for a short-lived child)."""
    timer = Path("/usr/bin/time")
    fd, rss_file = tempfile.mkstemp(prefix="rss-")
    os.close(fd)
    full = [str(timer), "-f", "%M", "-o", rss_file, *argv] if timer.exists() else argv
    start = time.perf_counter()
    proc = subprocess.run(full, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - start
    try:
        rss = int(Path(rss_file).read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = 0
    os.unlink(rss_file)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stdout.decode()[-1500:]}")
    return elapsed, rss


class Peer:
    def __init__(self, name: str, argv: list[str], local: Path, env: dict[str, str],
                 reset: Callable[[], None]) -> None:
        self.name, self.argv, self.local, self.env, self.reset = name, argv, local, env, reset
        self.times: dict[str, list[float]] = {}
        self.rss: dict[str, list[int]] = {}

    def timed(self, workload: str) -> None:
        seconds, rss = _run(self.argv, self.env)
        self.times.setdefault(workload, []).append(seconds)
        self.rss.setdefault(workload, []).append(rss)

    def untimed(self) -> None:
        _run(self.argv, self.env)


def _peers(work: Path, host: str, port: int, user: str, password: str, ca: str,
           env: dict[str, str], plain_port: int) -> list[Peer]:
    """The tools to compare. offlineimap gets cleartext IMAP (an advantage: imaplib2's own
    host name check rejects the test certificate, which has no common name)."""
    peers: list[Peer] = []
    mailtool = tool("mailtool")
    assert mailtool, "mailtool is not installed in .venv"
    m_local = work / "mailtool"

    def reset_mailtool() -> None:
        shutil.rmtree(m_local, ignore_errors=True)

    peers.append(Peer("mailtool", [mailtool, "imap-sync", "--host", f"{host}:{port}", "--tls",
                                   "implicit", "--user", user, "--ca-file", ca, "--maildir",
                                   str(m_local), "INBOX"],
                      m_local, dict(env, MAILTOOL_PASSWORD=password), reset_mailtool))
    mbsync = tool("mbsync")
    if mbsync:
        b_local = work / "mbsync"
        conf = work / "mbsyncrc"
        conf.write_text(f"""IMAPAccount bench
Host localhost
Port {port}
User {user}
Pass {password}
SSLType IMAPS
CertificateFile {ca}
PipelineDepth 50

IMAPStore far
Account bench

MaildirStore near
Inbox {b_local}
SubFolders Maildir++

Channel bench
Far :far:
Near :near:
Patterns INBOX
Sync Pull
Create Near
Expunge Near
SyncState *
""")
        conf.chmod(0o600)

        def reset_mbsync() -> None:
            shutil.rmtree(b_local, ignore_errors=True)
            b_local.mkdir()

        reset_mbsync()
        peers.append(Peer("mbsync", [mbsync, "-q", "-c", str(conf), "bench"], b_local, env,
                          reset_mbsync))
    offlineimap = tool("offlineimap3") or tool("offlineimap")
    if offlineimap:
        o_local = work / "offlineimap"
        conf = work / "offlineimaprc"
        conf.write_text(f"""[general]
accounts = bench
metadata = {work}/offlineimap-meta
ui = quiet

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {o_local}

[Repository remote]
type = IMAP
remotehost = {host}
remoteport = {plain_port}
remoteuser = {user}
remotepass = {password}
ssl = no
starttls = no
folderfilter = lambda f: f == 'INBOX'
readonly = True
""")

        def reset_offlineimap() -> None:
            shutil.rmtree(o_local, ignore_errors=True)
            shutil.rmtree(work / "offlineimap-meta", ignore_errors=True)
            o_local.mkdir()

        reset_offlineimap()
        peers.append(Peer("offlineimap", [offlineimap, "-c", str(conf), "-u", "quiet"],
                          o_local, env, reset_offlineimap))
    return peers


def _count(local: Path) -> int:
    total = 0
    for folder in [local, local / "INBOX"]:
        for sub in ("new", "cur"):
            if (folder / sub).is_dir():
                total += len(os.listdir(folder / sub))
    return total


def _report(peers: list[Peer], workloads: list[str]) -> None:
    base = next((p for p in peers if p.name == "mbsync"), peers[0])
    other = next((p for p in peers if p.name == "offlineimap"), None)
    load = os.getloadavg()
    print(f"\n## imap-sync, {MESSAGES} messages, medians of up to {RUNS} runs "
          f"(ratios vs {base.name}" + (f" and {other.name}" if other else "") + "; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"{'workload':10} {'tool':12} {'median':>10} {'ratio':>7} "
          + (f"{'vs ' + other.name:>15} " if other else "") + f"{'peak RSS':>10}")
    for workload in workloads:
        ref = base.times.get(workload)
        ref2 = other.times.get(workload) if other else None
        for peer in peers:
            times = peer.times.get(workload)
            if not times:
                continue
            med = statistics.median(times)
            ratio = med / statistics.median(ref) if ref else float("nan")
            ratio2 = med / statistics.median(ref2) if ref2 else float("nan")
            rss = max(peer.rss[workload]) / 1024
            print(f"{workload:10} {peer.name:12} {med * 1000:8.0f}ms {ratio:7.2f} "
                  + (f"{ratio2:15.3f} " if other else "") + f"{rss:8.1f}MB")
    sys.stdout.flush()


def main() -> None:
    from tests.servers._process import make_servers_dir
    from tests.servers.ca import TestCA
    from tests.servers.dovecot import Dovecot

    rng = random.Random(SEED)
    base = make_servers_dir()
    work = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    dovecot = Dovecot(base / "dovecot", TestCA(base / "tls"))
    dovecot.start()
    try:
        user = dovecot.add_user()
        dovecot.deliver_many(user, (_message(n, rng) for n in range(MESSAGES)))
        ca = str(dovecot.ca.ca_file)
        env = dict(os.environ, HOME=str(work), XDG_CONFIG_HOME=str(work / "cfg"),
                   XDG_STATE_HOME=str(work / "state"), XDG_CACHE_HOME=str(work / "cache"),
                   PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
                   PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(work / "pyc"))
        peers = _peers(work, dovecot.host, dovecot.imaps_port, user.name, user.password, ca,
                       env, dovecot.imap_port)
        # full sync: each run starts from an empty Maildir
        for run in range(RUNS):
            for peer in peers:
                if peer.name == "offlineimap" and run >= OFFLINEIMAP_FULL_RUNS:
                    continue
                peer.reset()
                peer.timed("full")
        for peer in peers:
            if peer.name == "offlineimap" and RUNS > OFFLINEIMAP_FULL_RUNS:
                peer.reset()
                peer.untimed()
            got = _count(peer.local)
            if got != MESSAGES:
                print(f"warning: {peer.name} holds {got} of {MESSAGES} messages")
        # The first tool to run after a change meets Dovecot's cold caches (its indexes are
        # brought up to date lazily): each round starts with a different tool.
        def in_turn(round_: int) -> list[Peer]:
            shift = round_ % len(peers)
            return peers[shift:] + peers[:shift]

        for round_ in range(RUNS):
            for peer in in_turn(round_):
                peer.timed("noop")
        ctx = ssl.create_default_context(cafile=ca)
        for round_ in range(RUNS):
            dovecot.deliver_many(user, (_message(MESSAGES + rng.randrange(10**9), rng)
                                        for _ in range(100)))
            for peer in in_turn(round_):
                peer.timed("new100")
        for round_ in range(RUNS):
            imap = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ctx)
            imap.login(user.name, user.password)
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "ALL")
            uids = [int(u) for u in data[0].split()]
            for uid in rng.sample(uids, min(500, len(uids) // 2)):
                imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)")
            gone = rng.sample(uids, min(100, len(uids) // 10))
            imap.uid("STORE", ",".join(map(str, gone)), "+FLAGS.SILENT", "(\\Deleted)")
            imap.expunge()
            imap.logout()
            for peer in in_turn(round_):
                peer.timed("flags")
        _report(peers, ["full", "noop", "new100", "flags"])
    finally:
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
