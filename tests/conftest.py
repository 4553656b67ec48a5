"""Test isolation for every test: a private config/state/cache dir, an in-memory keyring,
and a socket guard that lets tests talk to loopback only."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The real-server fixtures (Dovecot, Postfix, dnsmasq); they start only when a test asks.
pytest_plugins = (
    ["tests.servers.fixtures"]
    if (Path(__file__).parent / "servers" / "fixtures.py").exists()
    else []
)


class MemoryKeyring:
    """An in-memory keyring backend (the real ones would touch the user's secrets)."""

    priority = 1

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point XDG dirs at a temp dir and forget the user's MAILTOOL_* settings."""
    home = tmp_path / "home"
    for name in ("config", "state", "cache"):
        (home / name).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    for var in ("MAILTOOL_CONFIG", "MAILTOOL_PASSWORD", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    # Subprocesses (the real CLI) must not reach the user's keyring either.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield home


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> MemoryKeyring:
    """An in-memory keyring for in-process tests."""
    import keyring

    ring = MemoryKeyring()
    monkeypatch.setattr(keyring, "get_password", ring.get_password)
    monkeypatch.setattr(keyring, "set_password", ring.set_password)
    monkeypatch.setattr(keyring, "delete_password", ring.delete_password)
    return ring


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(sock: socket.socket, address: Any) -> bool:
    if sock.family == socket.AF_UNIX:
        return True
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except (ValueError, TypeError, IndexError):
        return False


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not _allowed(self, address):
        raise OSError(f"test socket guard: connection to {address!r} refused (loopback only)")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not _allowed(self, address):
        raise OSError(f"test socket guard: connection to {address!r} refused (loopback only)")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to loopback only (127.0.0.0/8, ::1)."""
    from mailtool.protocol import transport

    # socket.socket for the tests' own sockets, the transport's socket type for mailtool's.
    for cls in (socket.socket, transport._Socket):
        monkeypatch.setattr(cls, "connect", _guarded_connect)
        monkeypatch.setattr(cls, "connect_ex", _guarded_connect_ex)
