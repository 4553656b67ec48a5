from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

T0 = 1_800_000_000.0  # the injected clock ($MAILTOOL_NOW) starts here


@pytest.fixture
def write_config(isolated_env: Path) -> Callable[[str], Path]:
    """Write the default config file (``$XDG_CONFIG_HOME/mailtool/config.toml``)."""

    def write(text: str) -> Path:
        path = isolated_env / "config" / "mailtool" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600)
        return path

    return write


@pytest.fixture
def outbox_dir(isolated_env: Path) -> Path:
    return isolated_env / "state" / "mailtool" / "outbox"
