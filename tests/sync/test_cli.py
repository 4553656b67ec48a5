"""imap-sync command line: help and usage errors (no server needed)."""

from __future__ import annotations

from tests.helpers import run_cli


def test_help_documents_layout_and_guard() -> None:
    out = run_cli("imap-sync", "--help").stdout
    for word in ("--maildir", "--dry-run", "--keep-deleted", "--allow-mass-delete",
                 "--max-delete-share", "--include", "--exclude", "Maildir++"):
        assert word in out


def test_missing_maildir_is_usage_error() -> None:
    result = run_cli("imap-sync", "--host", "127.0.0.1", expect=64)
    assert "--maildir" in result.stderr
