"""The CLI contract: version, help, usage errors, exit codes, fast start, import boundaries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mailtool.cli.main import run
from mailtool.errors import MailtoolError
from mailtool.exitcodes import ExitCode, worst
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mailtool"


def test_version() -> None:
    result = run_cli("--version")
    assert result.stdout.startswith("mailtool, version ")


def test_help_lists_only_existing_commands() -> None:
    result = run_cli("--help")
    assert "Usage: mailtool" in result.stdout
    commands = sorted(
        p.stem.replace("_", "-") for p in (PACKAGE / "cli" / "commands").glob("*.py")
        if not p.name.startswith("_")
    )
    section = result.stdout.split("Commands:", 1)[1] if "Commands:" in result.stdout else ""
    listed = []
    for line in section.splitlines()[1:]:
        if not line.strip():
            break  # the epilog follows the command list
        if line.startswith("  ") and not line.startswith("   "):
            listed.append(line.split()[0])
    listed.sort()
    assert listed == commands


def test_unknown_command_is_usage_error() -> None:
    result = run_cli("no-such-command", expect=ExitCode.USAGE)
    assert "No such command" in result.stderr


def test_bad_global_option_is_usage_error() -> None:
    run_cli("--timeout", "zero", expect=ExitCode.USAGE)


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mailtool", "--version"], capture_output=True, text=True,
        timeout=60, check=True, cwd=ROOT,
    )
    assert "mailtool" in out.stdout


@pytest.fixture
def dummy_command() -> object:
    import click

    from mailtool.cli.app import cli

    @click.command("dummy-for-tests")
    def dummy() -> int:
        """Do nothing."""
        return 0

    cli.add_command(dummy)
    yield dummy
    cli.commands.pop("dummy-for-tests", None)


def test_broken_config_exits_78(tmp_path: Path, dummy_command: object, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[accounts\nx = 1\n")
    assert run(["--config", str(bad), "dummy-for-tests"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "line 1" in err


def test_unknown_account_exits_78(tmp_path: Path, dummy_command: object, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[accounts.a.smtp]\nhost = "x"\n')
    assert run(["--config", str(cfg), "--account", "b", "dummy-for-tests"]) == ExitCode.CONFIG
    assert "no account named 'b'" in capsys.readouterr().err
    assert run(["--config", str(cfg), "--account", "a", "dummy-for-tests"]) == ExitCode.OK


def test_internal_error_exits_70_without_traceback(
    monkeypatch: pytest.MonkeyPatch, dummy_command: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import mailtool.cli.app as app

    def boom(self: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(app.AppContext, "account", boom)
    assert run(["--account", "x", "dummy-for-tests"]) == ExitCode.SOFTWARE
    err = capsys.readouterr().err
    assert "internal error: KeyError" in err and "Traceback" not in err
    assert run(["-v", "--account", "x", "dummy-for-tests"]) == ExitCode.SOFTWARE
    assert "Traceback" in capsys.readouterr().err


def test_worst_exit_code_ranking() -> None:
    assert worst() == ExitCode.OK
    assert worst(ExitCode.OK, ExitCode.TEMPFAIL) == ExitCode.TEMPFAIL
    assert worst(ExitCode.TEMPFAIL, ExitCode.NOUSER) == ExitCode.NOUSER
    assert worst(ExitCode.NOUSER, ExitCode.SOFTWARE, ExitCode.OK) == ExitCode.SOFTWARE


def test_error_one_line_format() -> None:
    from mailtool.protocol.replies import parse_smtp_reply

    err = MailtoolError(
        "rejected", step="RCPT TO:<a@b.test>", reply=parse_smtp_reply(b"550 5.1.1 user unknown\r\n")
    )
    assert err.one_line() == "RCPT TO:<a@b.test>: rejected: 550 5.1.1 user unknown"


def test_version_imports_nothing_heavy() -> None:
    code = (
        "import sys; from mailtool.cli.main import run; rc = run(['--version']); "
        "heavy = [m for m in ('rich', 'dns', 'keyring', 'email.mime') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stdout
    assert out.strip().endswith("[]")


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from mailtool.cli.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()): run(['--help'])\n"
        "print([m for m in ('rich', 'dns', 'keyring') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stdout
    assert out.strip().endswith("[]")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_import_boundaries() -> None:
    """protocol/ imports no click/rich/keyring/dns; the library never imports the CLI;
    only the transport layer (transport.py and its TLS half tlssock.py) touches
    socket/ssl or the C modules under them."""
    problems = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        names = _imports(path)
        tops = {n.split(".")[0] for n in names}
        if rel.startswith("protocol/"):
            bad = tops & {"click", "rich", "keyring", "dns"}
            if bad:
                problems.append(f"{rel} imports {sorted(bad)}")
            # The protocol layer sits below the library: errors, exit codes and records only.
            upward = sorted(
                n for n in names
                if n.startswith("mailtool.") and not n.startswith("mailtool.protocol")
                and n not in ("mailtool.errors", "mailtool.exitcodes", "mailtool.record")
            )
            if upward:
                problems.append(f"{rel} imports the library: {upward}")
        if rel not in ("cli", "__main__.py") and not rel.startswith("cli/") and any(n.startswith("mailtool.cli") for n in names):
            problems.append(f"{rel} imports the CLI")
        if (rel not in ("protocol/transport.py", "protocol/tlssock.py")
                and tops & {"socket", "ssl", "_socket", "_ssl"}):
            problems.append(f"{rel} imports socket/ssl")
    assert problems == []


def test_every_command_has_help_with_text() -> None:
    from click.testing import CliRunner

    from mailtool.cli.app import cli

    runner = CliRunner()
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert len(result.output.splitlines()) > 3, name
