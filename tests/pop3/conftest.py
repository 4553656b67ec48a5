"""Helpers for the pop-fetch tests: run the CLI against the private Dovecot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Result, run_cli


def maildir_files(path: Path) -> list[Path]:
    """Message files of a Maildir (new and cur)."""
    return sorted(p for sub in ("new", "cur") if (path / sub).is_dir() for p in (path / sub).iterdir())


def maildir_bytes(path: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in maildir_files(path))


@pytest.fixture
def pop_fetch(dovecot, mail_user, test_ca) -> Callable[..., Result]:  # type: ignore[no-untyped-def]
    """``pop_fetch(*args, expect=0, tls="implicit")`` as ``mail_user`` over POP3S."""

    def run(*args: str, expect: int | None = 0, tls: str = "implicit", user=None,
            password: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Result:
        who = user or mail_user
        port = dovecot.pop3s_port if tls == "implicit" else dovecot.pop3_port
        full_env = {"MAILTOOL_PASSWORD": password or who.password, **(env or {})}
        return run_cli(
            "pop-fetch", "--host", "localhost", "--port", str(port), "--tls", tls,
            "--ca-file", str(test_ca.ca_file), "--user", who.name, *args,
            expect=expect, env=full_env, timeout=timeout,
        )

    return run
