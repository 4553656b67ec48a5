"""The short form of the kill -9 soak (``tools/crash_soak.py --long`` for 50 kills each).

tests/pop3/test_crash.py and tests/sync/test_dovecot.py have their own kill tests (one
INBOX each); these add uniformly random kill times from start-up on, deliveries between
kills, and for imap-sync several folders at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.crash.harness import soak

KILLS = int(os.environ.get("MAILTOOL_CRASH_KILLS", "8"))
SEED = int(os.environ.get("MAILTOOL_CRASH_SEED", "7"))
#: Messages on the server at the start (the long soak uses more).
MESSAGES = 60 if KILLS <= 8 else 200


@pytest.mark.timeout(300 + KILLS * 20)
def test_pop_fetch_delete_survives_kill_9(dovecot: Any, mail_user: Any, test_ca: Any,
                                          tmp_path: Path) -> None:
    result = soak("pop", dovecot, mail_user, test_ca.ca_file, tmp_path / "md", kills=KILLS,
                  messages=MESSAGES, seed=SEED)
    assert result.kills >= max(1, KILLS // 4), result.codes


@pytest.mark.timeout(300 + KILLS * 20)
def test_imap_sync_survives_kill_9(dovecot: Any, mail_user: Any, test_ca: Any,
                                   tmp_path: Path) -> None:
    result = soak("imap", dovecot, mail_user, test_ca.ca_file, tmp_path / "mirror",
                  kills=KILLS, messages=MESSAGES, seed=SEED + 1,
                  folders=("INBOX", "Work", "Lists"))
    assert result.kills >= max(1, KILLS // 4), result.codes
