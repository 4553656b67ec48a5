"""The POP path stays cheap: importing pop-fetch's library modules, and doing a keep-mode
rerun's local work (read the state, parse a UIDL listing, open the Maildir), loads none of
the modules a rerun with nothing new does not need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Costly at start-up and not needed by a rerun (hashlib: only APOP, CRAM-MD5, message
#: keys of new messages; json: only a version 1 state to migrate, or --json output).
FORBIDDEN = {"typing", "pathlib", "json", "dataclasses", "email", "click", "rich", "hashlib",
             "datetime", "logging", "inspect", "ipaddress", "subprocess", "ctypes"}

SCRIPT = """
import json as _json_for_the_report_only, sys
del sys.modules["json"], sys.modules["json.decoder"], sys.modules["json.scanner"]
del sys.modules["json.encoder"]
before = set(sys.modules)
import mailtool.retrieve as R
from mailtool.store.destinations import MaildirDestination
import mailtool.store.mbox  # only with --mbox/--stdout, but as lean
imported = sorted(set(sys.modules) - before)
state = R.UIDLState(sys.argv[1]).load()
uids = R.POP3Client  # the client class is there without a connection
from mailtool.protocol.pop3.session import parse_uidl
listing = parse_uidl([b"%d %s" % (n, u.encode()) for n, u in enumerate(state.messages, 1)])
assert set(listing.values()) == set(state.messages)
MaildirDestination(sys.argv[2]).known_keys()
after_work = sorted(set(sys.modules) - before)
print(_json_for_the_report_only.dumps([imported, after_work]))
"""


def test_pop_library_imports_and_rerun_work_load_nothing_costly(tmp_path: Path) -> None:
    state = tmp_path / "s.uidl"
    state.write_text("mailtool-pop3-uidl 2\n" + "".join(f"u{n} 1700000000 -\n"
                                                        for n in range(500)))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(state), str(tmp_path / "md")],
        capture_output=True, text=True, timeout=60, check=True, cwd=ROOT,
    )
    imported, after_work = json.loads(proc.stdout)
    assert "mailtool.retrieve" in imported and "mailtool.protocol.pop3.session" in imported
    assert "mailtool.store.mbox" in imported
    assert not FORBIDDEN & {m.split(".")[0] for m in imported}, imported
    assert not FORBIDDEN & {m.split(".")[0] for m in after_work}, after_work
