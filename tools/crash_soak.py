#!/usr/bin/env python3
"""kill -9 soak of pop-fetch --delete and imap-sync against the private Dovecot.

    python tools/crash_soak.py            # the short form the tests run (8 kills each)
    python tools/crash_soak.py --long     # 50 kills each, 200 messages
    python tools/crash_soak.py --long --seed 42

Runs tests/crash/test_crash.py through pytest (which starts the private servers) with
MAILTOOL_CRASH_KILLS / MAILTOOL_CRASH_SEED set; any lost or duplicated message fails it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="50 kills of each command")
    parser.add_argument("--kills", type=int, help="kills per command (overrides --long)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    kills = args.kills or (50 if args.long else 8)
    env = dict(os.environ, MAILTOOL_CRASH_KILLS=str(kills), MAILTOOL_CRASH_SEED=str(args.seed))
    cmd = [sys.executable, "-m", "pytest", "-q", "tests/crash/test_crash.py",
           "-o", f"timeout={max(300, kills * 20)}"]
    print(f"{kills} kills per command, seed {args.seed}", flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
