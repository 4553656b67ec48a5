"""kill -9 at random moments, then a clean run: every message stored exactly once.

``soak(kind, ...)`` runs ``pop-fetch --delete`` or ``imap-sync`` against the harness's
Dovecot as a subprocess, SIGKILLs it at seeded random moments (some runs are left to
finish), delivers new mail between some runs, then runs once more without a kill and
compares what is stored locally with what the server had, body by body. For
``imap-sync`` some rounds also expunge messages and flag others on the server (the
removals and renames a kill can interrupt), and the clean run must mirror the flags
too. The short form runs in the test suite; ``tools/crash_soak.py --long`` runs 50
kills of each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import ROOT


@dataclass
class SoakResult:
    kills: int = 0
    finished: int = 0
    codes: list[int] = field(default_factory=list)


def message(tag: str, n: int, rng: random.Random) -> bytes:
    body = b"".join(b"%s line %d of %d\r\n" % (tag.encode(), k, n)
                    for k in range(rng.randint(1, 2500)))
    return (b"Subject: soak %s %d\r\nMessage-ID: <%s.%d@soak.test>\r\n\r\n"
            % (tag.encode(), n, tag.encode(), n) + body)


def local_bodies(maildir: Path) -> Counter[bytes]:
    """Message bodies of a Maildir (new and cur), CRLF line ends whatever is stored."""
    found: Counter[bytes] = Counter()
    for sub in ("new", "cur"):
        if (maildir / sub).is_dir():
            for p in (maildir / sub).iterdir():
                found[p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")] += 1
    return found


#: Expunges per folder over a whole soak: fewer than the mass-delete guard's floor (5),
#: so runs killed before recording them never add up to a stop.
EXPUNGES_PER_FOLDER = 4


def _imap(dovecot: Any, user: Any, ca_file: Path) -> Any:
    import imaplib
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    imap = imaplib.IMAP4_SSL("localhost", dovecot.imaps_port, ssl_context=ctx, timeout=30)
    imap.login(user.name, user.password)
    return imap


def _message_ids(imap: Any) -> dict[int, bytes]:
    """UID -> Message-ID of the selected folder."""
    import re

    _, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    found = {}
    for item in data:
        if isinstance(item, tuple):
            uid = re.search(rb"UID (\d+)", item[0])
            mid = re.search(rb"<[^>]+>", item[1])
            if uid and mid:
                found[int(uid.group(1))] = mid.group(0)
    return found


def change_on_server(dovecot: Any, user: Any, ca_file: Path, sent: dict[str, list[bytes]],
                     rng: random.Random, expunged: Counter[str]) -> None:
    """Flag or unflag a few messages of each folder and expunge one (within the cap);
    ``sent`` loses the expunged bodies."""
    imap = _imap(dovecot, user, ca_file)
    try:
        for folder in sent:
            imap.select(folder)
            ids = _message_ids(imap)
            if not ids:
                continue
            uids = sorted(ids)
            for uid in rng.sample(uids, min(len(uids), rng.randint(1, 6))):
                op = "+FLAGS.SILENT" if rng.random() < 0.7 else "-FLAGS.SILENT"
                imap.uid("STORE", str(uid), op, "(\\Flagged)")
            if expunged[folder] < EXPUNGES_PER_FOLDER and rng.random() < 0.6:
                uid = rng.choice(uids)
                imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
                imap.expunge()
                expunged[folder] += 1
                mid = ids[uid]
                sent[folder] = [m for m in sent[folder] if mid not in m.split(b"\r\n\r\n")[0]]
            imap.close()
    finally:
        imap.logout()


def server_flagged(dovecot: Any, user: Any, ca_file: Path, folder: str) -> set[bytes]:
    """Message-IDs of the folder's messages flagged on the server."""
    imap = _imap(dovecot, user, ca_file)
    try:
        imap.select(folder, readonly=True)
        ids = _message_ids(imap)
        _, data = imap.uid("SEARCH", "FLAGGED")
        return {ids[int(u)] for u in data[0].split()}
    finally:
        imap.logout()


def local_flagged(maildir: Path) -> set[bytes]:
    """Message-IDs of the Maildir's messages whose file name carries the F flag."""
    import re

    found = set()
    for p in (maildir / "cur").iterdir():
        if "F" in p.name.split(":2,", 1)[-1] and ":2," in p.name:
            mid = re.search(rb"<[^>]+>", p.read_bytes().split(b"\n\n", 1)[0])
            if mid:
                found.add(mid.group(0))
    return found


def argv(kind: str, dovecot: Any, user: Any, ca_file: Path, dest: Path) -> list[str]:
    common = ["--host", "localhost", "--tls", "implicit", "--ca-file", str(ca_file),
              "--user", user.name]
    if kind == "pop":
        return [sys.executable, "-m", "mailtool", "pop-fetch", *common, "--port",
                str(dovecot.pop3s_port), "--maildir", str(dest), "--delete"]
    return [sys.executable, "-m", "mailtool", "imap-sync", *common, "--port",
            str(dovecot.imaps_port), "--maildir", str(dest)]


def soak(kind: str, dovecot: Any, user: Any, ca_file: Path, dest: Path, *, kills: int,
         messages: int, seed: int, folders: tuple[str, ...] = ("INBOX",)) -> SoakResult:
    """Run the kill loop and the clean run; assert exactly-once storage. See module doc."""
    rng = random.Random(seed)
    sent: dict[str, list[bytes]] = {f: [] for f in folders}

    def deliver(count: int, tag: str) -> None:
        for i in range(count):
            folder = folders[i % len(folders)]
            msg = message(f"{tag}-{folder}", i, rng)
            dovecot.deliver_many(user, [msg], mailbox=folder)
            sent[folder].append(msg)

    deliver(messages, "s")
    cmd = argv(kind, dovecot, user, ca_file, dest)
    env = dict(os.environ, MAILTOOL_PASSWORD=user.password, PYTHONPATH=str(ROOT))
    result = SoakResult()
    expunged: Counter[str] = Counter()
    # Latest kill moment: a run that ends before its kill sets it to 90 % of that run's
    # length (faster code must still be killed mid-work often enough), and the next round
    # gets new mail so it has work to be killed in. One draw per round so seeds replay.
    latest = 0.8
    finished_early = False
    for round_ in range(kills):
        if finished_early:
            deliver(5, f"more{round_}")
        if kind == "imap" and rng.random() < 0.5:
            change_on_server(dovecot, user, ca_file, sent, rng, expunged)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(0.02, latest))
            latest = max(0.03, (time.monotonic() - start) * 0.9)
            finished_early = True
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            result.kills += 1
            finished_early = False
        proc.wait(timeout=60)
        assert proc.stderr is not None
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        result.codes.append(proc.returncode)
        # Anything but a kill is a clean exit or "try again later" (Dovecot's lock).
        assert proc.returncode in (0, 75, -signal.SIGKILL), err
        assert "Traceback" not in err, err
        if rng.random() < 0.25:
            deliver(3, f"late{round_}")
    for _attempt in range(30):  # Dovecot may still hold a killed session's lock
        done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=300, check=False)
        if done.returncode != 75:
            break
        time.sleep(0.2)  # waiting for the server to drop a dead session: no event to wait on
    assert done.returncode == 0, done.stderr.decode()
    result.finished += 1
    if kind == "imap":
        for folder in folders:
            local = dest if folder == "INBOX" else dest / f".{folder}"
            assert local_bodies(local) == Counter(sent[folder]), f"{folder}: lost or duplicated"
            assert local_flagged(local) == server_flagged(dovecot, user, ca_file, folder), \
                f"{folder}: flags differ"
    else:
        everything = Counter(m for msgs in sent.values() for m in msgs)
        assert local_bodies(dest) == everything
        assert dovecot.messages(user) == []  # all deleted, only after being stored
    # Both remove their own partial files of killed runs on the next (clean) run.
    for tmp in dest.rglob("tmp"):
        assert not list(tmp.iterdir()), f"leftovers in {tmp}"
    return result
