"""Fixtures of the hostile-server suite: the temp root the checker watches."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def root(tmp_path: Path, isolated_env: Path) -> Path:
    """The directory the checker snapshots: ``home/`` (XDG dirs), ``cwd/``, ``dest/``."""
    assert isolated_env == tmp_path / "home"
    return tmp_path
