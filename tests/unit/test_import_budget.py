"""Import budget of the send path: ``mailtool-sendmail`` must start as fast as msmtp, so a
run imports only what it uses. These tests run the real entry point in a fresh process
against a scripted SMTP server and fail when a heavy module comes back (a runtime
``typing`` import, pathlib for a path, json for the spool line, ssl for a cleartext relay,
the email package for a message sent as given...).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.faults.server import Conn, ScriptedServer
from tests.helpers import ROOT

#: Never imported by mailtool-sendmail relaying over cleartext (``--tls none``) without a
#: configuration file. Each costs milliseconds of every cron mail.
FORBIDDEN = (
    "typing", "dataclasses", "pathlib", "json", "tomllib", "ssl", "email", "click", "rich",
    "dns", "keyring", "inspect", "datetime", "base64", "encodings.idna", "ipaddress",
    "urllib", "zlib", "logging", "subprocess", "tempfile", "random", "hashlib", "shutil",
    "contextlib", "mailtool.protocol.sasl", "mailtool.protocol.transcript",
    "mailtool.secrets", "mailtool.mx", "mailtool.cli",
)

#: What bin/mailtool-sendmail does (main(), which leaves with os._exit); the modules loaded
#: by then go to the file named first.
RUNNER = """
import os, sys
report, sys.argv = sys.argv[1], ["mailtool-sendmail", *sys.argv[2:]]
real_exit = os._exit

def leave(code):
    with open(report, "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))
    real_exit(code)

os._exit = leave
from mailtool.sendmail import main
main()
"""

MESSAGE = b"From: cron@src.test\nTo: ann@dst.test\nSubject: nightly\n\nall good\n"


def _smtp(conn: Conn) -> None:
    conn.send(b"220 sink.test ESMTP\r\n")
    conn.expect(b"EHLO")
    conn.send(b"250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    conn.expect(b"MAIL FROM:<cron@src.test>")
    conn.expect(b"RCPT TO:<ann@dst.test>")
    conn.expect(b"DATA")
    conn.send(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
    data = conn.read_data()
    assert b"all good" in data
    conn.send(b"250 2.0.0 queued\r\n")
    conn.expect(b"QUIT")
    conn.send(b"221 bye\r\n")


def _run_sendmail(tmp_path: os.PathLike[str], env: dict[str, str]) -> set[str]:
    report = os.path.join(tmp_path, "modules")
    with ScriptedServer(_smtp) as srv:
        full = dict(os.environ, PYTHONPATH=str(ROOT), MAILTOOL_SMARTHOST=f"127.0.0.1:{srv.port}",
                    MAILTOOL_TLS="none", **env)
        proc = subprocess.run(
            [sys.executable, "-c", RUNNER, report, "-oi", "-f", "cron@src.test", "ann@dst.test"],
            input=MESSAGE, capture_output=True, env=full, timeout=60, check=False)
    srv.check()
    assert proc.returncode == 0, proc.stderr.decode()
    assert srv.connection_count == 1
    with open(report) as handle:
        return set(handle.read().split())


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.mark.timeout(60)
def test_sendmail_without_config_imports_nothing_heavy(tmp_path: os.PathLike[str]) -> None:
    modules = _run_sendmail(tmp_path, {})
    assert "mailtool.protocol.smtp.client" in modules  # it did run the real send path
    assert _loaded(modules, FORBIDDEN) == []
    # Not even the regex engine (~5 ms): our bin/ scripts do not import it either, unlike
    # the console-script wrappers pip generates.
    assert _loaded(modules, ("re",)) == []


@pytest.mark.timeout(60)
def test_sendmail_with_config_adds_only_the_toml_reader_once(tmp_path: os.PathLike[str]) -> None:
    config = os.path.join(tmp_path, "config.toml")
    with open(config, "w") as handle:
        handle.write('[accounts.cron]\nfrom = "cron@src.test"\n[accounts.cron.smtp]\n'
                     'host = "relay.invalid"\n')
    os.chmod(config, 0o600)
    modules = _run_sendmail(tmp_path, {"MAILTOOL_CONFIG": config})
    assert "tomllib" in modules
    # tomllib itself brings typing (and its contextlib), datetime and string; nothing else
    # may come with it.
    allowed = ("tomllib", "typing", "contextlib", "datetime", "string")
    assert _loaded(modules, tuple(n for n in FORBIDDEN if n not in allowed)) == []
    # The next run finds the parsed file in the cache: no TOML reader at all.
    again = _run_sendmail(tmp_path, {"MAILTOOL_CONFIG": config})
    assert "mailtool.config" in again and _loaded(again, FORBIDDEN) == []


@pytest.mark.timeout(60)
def test_importing_the_send_modules_runs_no_heavy_import() -> None:
    code = ("import sys; import mailtool.sendmail, mailtool.sendcore, mailtool.delivery, "
            "mailtool.endpoint, mailtool.config, mailtool.compose, mailtool.outbox.sending, "
            "mailtool.outbox.runner; print(' '.join(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60, check=True)
    assert _loaded(set(proc.stdout.split()), FORBIDDEN) == []


@pytest.mark.parametrize(("name", "module"), [("mailtool", "mailtool.cli.main"),
                                              ("mailtool-sendmail", "mailtool.sendmail")])
def test_entry_scripts_import_only_their_main(name: str, module: str) -> None:
    """bin/ holds the installed commands (pyproject's script-files): they import ``sys``
    and their main, nothing else (pip's generated wrappers import ``re`` first). When this
    interpreter has them installed next to it, they are ours, with only the first line
    (the interpreter) rewritten."""
    import ast

    source = (ROOT / "bin" / name).read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"sys", module}
    assert source.startswith("#!python\n")
    installed = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(installed):
        with open(installed) as handle:
            first, rest = handle.read().split("\n", 1)
        assert first.startswith("#!") and rest == source.split("\n", 1)[1]


@pytest.mark.timeout(60)
def test_installed_mailtool_runs_without_the_regex_engine(tmp_path: os.PathLike[str]) -> None:
    installed = os.path.join(os.path.dirname(sys.executable), "mailtool")
    if not os.path.exists(installed):
        pytest.skip("mailtool is not installed next to this interpreter")
    report = os.path.join(tmp_path, "modules")
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp_path, "state"),
               MAILTOOL_DEBUG_MODULES=report)
    proc = subprocess.run([installed, "queue", "list"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0 and "empty" in proc.stdout, proc.stderr
    with open(report) as handle:
        modules = set(handle.read().split())
    assert "mailtool.cli.fastparse" in modules and _loaded(modules, ("re",)) == []
