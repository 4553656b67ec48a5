"""pytest fixtures for the private servers (loaded with ``pytest_plugins``).

Servers are session-scoped and start only when a test asks for them, so a run
that needs none starts none. ``mail_user`` gives each test a fresh Dovecot user,
so tests never see each other's mail. When a test that used a server fails, the
part of each server's log written during that test is added to the report.

The servers' work dirs live in one directory per session that the unprivileged
server accounts can reach (pytest's own temp dirs are mode 0700); a symlink
``servers`` in pytest's session temp dir points at it. It is removed at the end
of the session unless MAILTOOL_KEEP_SERVERS=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from ._process import Server, ServerError, make_servers_dir, tail
from .ca import TestCA
from .dnsmasq import DNSMasq, Record, Records
from .dovecot import Dovecot, User
from .postfix import Postfix

# Fixtures that start servers; tests using them get the "servers" marker.
SERVER_FIXTURES = frozenset({"dovecot", "postfix", "dnsmasq", "make_dnsmasq", "mail_user"})
# Per-test log excerpt attached to a failure report, per server.
REPORT_LOG_CHARS = 12000
INSTALL_HINT = "run scripts/install-deps.sh (it installs the servers the tests need)"

# Log sizes at the end of a test's setup, by log path: the report shows what came after.
_log_offsets = pytest.StashKey[dict[Path, int]]()


def _start(server: Server) -> None:
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(f"{server.name}: {exc}\n{INSTALL_HINT} if a program is missing",
                    pytrace=False)


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the private Dovecot and Postfix need root (they drop to their own "
                    "accounts); CI runs as root", pytrace=False)


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's directory for server work dirs and the test CA."""
    path = make_servers_dir()
    link = tmp_path_factory.getbasetemp() / "servers"
    try:
        link.symlink_to(path)
    except OSError:
        pass
    yield path
    if os.environ.get("MAILTOOL_KEEP_SERVERS") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_ca(servers_dir: Path) -> TestCA:
    """The test CA; clients trust ``test_ca.ca_file``, servers present ``test_ca.server``."""
    return TestCA(servers_dir / "tls")


@pytest.fixture(scope="session")
def dovecot(servers_dir: Path, test_ca: TestCA) -> Iterator[Dovecot]:
    """The session's Dovecot (IMAP, IMAPS, POP3, POP3S, LMTP, SASL socket)."""
    _needs_root()
    try:
        server = Dovecot(servers_dir / "dovecot", test_ca)
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postfix(servers_dir: Path, dovecot: Dovecot, test_ca: TestCA) -> Iterator[Postfix]:
    """The session's Postfix (smtp_port, submission_port) delivering into ``dovecot``."""
    try:
        server = Postfix(servers_dir / "postfix", dovecot, test_ca)
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dnsmasq(servers_dir: Path) -> Iterator[DNSMasq]:
    """The session's dnsmasq with the default records (see tests/servers/dnsmasq.py)."""
    try:
        server = DNSMasq(servers_dir / "dnsmasq")
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(server)
    yield server
    server.stop()


@pytest.fixture
def make_dnsmasq(servers_dir: Path) -> Iterator[Callable[..., DNSMasq]]:
    """Factory: ``make_dnsmasq(records)`` starts a dnsmasq stopped after the test."""
    started: list[DNSMasq] = []

    def factory(records: Records | list[Record] | tuple[Record, ...],
                local_zones: tuple[str, ...] = ("test",)) -> DNSMasq:
        workdir = Path(tempfile.mkdtemp(prefix="dnsmasq-", dir=servers_dir))
        try:
            server = DNSMasq(workdir, records, local_zones=local_zones)
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        _start(server)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> User:
    """A fresh Dovecot user with an empty mailbox (and a Postfix recipient if running)."""
    return dovecot.add_user()


# -- reporting ------------------------------------------------------------------------
def _servers_of(item: pytest.Item) -> list[Server]:
    funcargs = getattr(item, "funcargs", {}) or {}
    found: list[Server] = []
    for value in funcargs.values():
        if isinstance(value, Server):
            found.append(value)
    # A Postfix problem is often a Dovecot problem (SASL, LMTP): show both.
    for server in list(found):
        if isinstance(server, Postfix) and server.dovecot not in found:
            found.append(server.dovecot)
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SERVER_FIXTURES:
            item.add_marker(pytest.mark.servers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    servers = _servers_of(item)
    if not servers:
        return report
    offsets = item.stash.setdefault(_log_offsets, {})
    if call.when == "setup":
        for server in servers:
            try:
                offsets[server.log_path] = server.log_path.stat().st_size
            except OSError:
                offsets[server.log_path] = 0
    if report.failed:
        for server in servers:
            text = _read_from(server.log_path, offsets.get(server.log_path, 0))
            if text:
                report.sections.append((f"{server.name} log ({server.log_path})", text))
    return report


def _read_from(path: Path, offset: int) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return ""
    if size - offset > REPORT_LOG_CHARS * 4:
        return tail(path, REPORT_LOG_CHARS)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")[-REPORT_LOG_CHARS:]
