"""imap-list on a big folder: ``mailtool imap-list INBOX --limit 50`` on 100,000 messages.

Starts a private Dovecot (the test harness's, needs root like the tests), fills one INBOX
with ``MESSAGES`` small messages, lets Dovecot build its index once, then times whole
processes, each a median of several runs, against a peer measured in the same run: a
stdlib ``imaplib`` script doing the same work (UID SEARCH ALL, UID FETCH of the newest 50
with ENVELOPE/FLAGS/RFC822.SIZE) without any start-up cost of ours. The goal is "well
under a second" on loopback.

Run: ``.venv/bin/python bench/run.py imap_list`` (MAILTOOL_BENCH_MESSAGES to change N).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import measure, report, tool

MESSAGES = int(os.environ.get("MAILTOOL_BENCH_MESSAGES", "100000"))
RUNS = 7

PEER = r"""
import imaplib, ssl, sys
host, port, user, password, ca = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
m.login(user, password)
m.select("INBOX", readonly=True)
typ, data = m.uid("SEARCH", None, "ALL")
uids = data[0].split()[-50:]
if uids:
    typ, rows = m.uid("FETCH", b",".join(uids).decode(),
                      "(UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE)")
m.logout()
"""


def _message(n: int) -> bytes:
    return (
        f"From: Sender {n % 97} <s{n % 97}@example.test>\nTo: bench@mail.test\n"
        f"Subject: benchmark message number {n}\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
        f"Message-ID: <bench{n}@example.test>\n\nbody {n}\n"
    ).encode()


def main() -> None:
    from tests.servers._process import make_servers_dir
    from tests.servers.ca import TestCA
    from tests.servers.dovecot import Dovecot

    base = make_servers_dir()
    dovecot = Dovecot(base / "dovecot", TestCA(base / "tls"))
    dovecot.start()
    home = tempfile.mkdtemp(prefix="imap-list-bench-")
    try:
        user = dovecot.add_user()
        dovecot.deliver_many(user, (_message(i) for i in range(1, MESSAGES + 1)))
        ca = str(dovecot.ca.ca_file)
        env = {"HOME": home, "XDG_CONFIG_HOME": home, "XDG_CACHE_HOME": home,
               "MAILTOOL_PASSWORD": user.password,
               "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
               "PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": os.path.join(home, "pyc")}
        mailtool = tool("mailtool") or "mailtool"
        ours = [mailtool, "imap-list", "INBOX", "--limit", "50", "--host", "localhost",
                "--port", str(dovecot.imaps_port), "--tls", "implicit", "--ca-file", ca,
                "--user", user.name]
        peer = [sys.executable, "-c", PEER, "localhost", str(dovecot.imaps_port), user.name,
                user.password, ca]
        # Dovecot indexes the 100,000 new files on the first SELECT: not ours to time.
        measure("warm-up", ours, runs=1, warmup=0, env=env)
        samples = [
            measure("mailtool imap-list INBOX --limit 50", ours, runs=RUNS, env=env),
            measure("imaplib script (same commands)", peer, runs=RUNS, env=env),
        ]
        report(f"imap-list on a {MESSAGES}-message folder (whole processes)", samples,
               "imaplib script (same commands)")
        for s in samples:
            print(f"{s.label:40} peak RSS {max(s.peak_rss_kb) // 1024} MiB")
    finally:
        dovecot.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
