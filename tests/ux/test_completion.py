"""Shell completion: generated scripts current, working in bash/zsh/fish, dynamic values
from local files only, and no heavy imports on the completion path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.ux.cli_tree import ROOT, all_nodes

COMPLETIONS = ROOT / "completions"


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def accounts(isolated_env: Path) -> Path:
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text('default_account = "work"\n[accounts.work.smtp]\nhost = "a"\n'
                   '[accounts.home.pop3]\nhost = "b"\n[accounts."weird.one".imap]\nhost = "c"\n')
    folders = isolated_env / "cache" / "mailtool" / "folders" / "work.json"
    folders.parent.mkdir(parents=True)
    folders.write_text(json.dumps({"folders": [{"name": "INBOX"}, {"name": "Archive/2024"},
                                               "Sent"]}))
    return cfg


@pytest.mark.parametrize("script", ["gen_completions.py", "gen_manpage.py", "gen_fast_table.py"])
def test_generated_files_are_current(script: str) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--check"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        f"{proc.stderr.strip()}\nThe Click tree changed: run scripts/{script} and commit"
        " completions/, man/ and mailtool/cli/fast_table.py (run scripts/gen_completions.py,"
        " scripts/gen_manpage.py and scripts/gen_fast_table.py)."
    )


def _complete(words: str, cword: int) -> list[str]:
    result = run_cli(env={"_MAILTOOL_COMPLETE": "bash_complete", "COMP_WORDS": words,
                          "COMP_CWORD": str(cword)})
    return result.stdout.splitlines()


def test_account_option_completes_configured_accounts(accounts: Path) -> None:
    assert _complete("mailtool --account ", 2) == ["plain,work", "plain,home",
                                                     "plain,weird.one"]
    assert _complete("mailtool --account h", 2) == ["plain,home"]
    assert _complete("mailtool account show w", 3) == ["plain,work", "plain,weird.one"]


def test_account_completion_honours_config_option(accounts: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("[accounts.elsewhere.smtp]\nhost = 'x'\n")
    assert _complete(f"mailtool --config {other} --account ", 4) == ["plain,elsewhere"]


def test_broken_or_missing_config_completes_nothing(isolated_env: Path) -> None:
    assert [line for line in _complete("mailtool --account ", 2) if line] == []
    cfg = isolated_env / "config" / "mailtool" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[accounts\n")
    result = run_cli(env={"_MAILTOOL_COMPLETE": "bash_complete",
                          "COMP_WORDS": "mailtool --account ", "COMP_CWORD": "2"})
    assert result.stdout.strip() == "" and result.stderr == ""


def test_folder_cache_reader(accounts: Path) -> None:
    from mailtool.cli.complete import cached_folders, folder_cache_path

    assert cached_folders("work") == ["INBOX", "Archive/2024", "Sent"]
    assert cached_folders("home") == []
    folder_cache_path("home").write_text('["A", 3, {"x": 1}]')
    assert cached_folders("home") == ["A"]
    folder_cache_path("home").write_text("{not json")
    assert cached_folders("home") == []


FORBIDDEN = ("rich", "dns", "keyring")
_PROBE = """
import os, sys
from mailtool.cli.main import main
try:
    main([])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')
"""


@pytest.mark.parametrize("node", all_nodes(), ids=lambda n: n.key or "mailtool")
def test_completion_imports_no_rich_dns_keyring(node: object, accounts: Path) -> None:
    """Completing options, and dynamic values, of every command stays light."""
    path = " ".join(node.path)  # type: ignore[attr-defined]
    line = f"mailtool --account work {path} --".replace("  ", " ")
    env = _env(accounts)
    env.update(_MAILTOOL_COMPLETE="bash_complete", COMP_WORDS=line,
               COMP_CWORD=str(len(line.split()) - 1))
    proc = subprocess.run([sys.executable, "-c", _PROBE % (FORBIDDEN,)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert "HEAVY=\n" in proc.stderr, (
        f"completing '{line}' imported {proc.stderr.strip()}: import it inside the function"
        " that needs it")
    assert "--help" in proc.stdout


# --- the generated scripts, in the real shells -------------------------------------------


def _shell(argv: list[str], script: str, home: Path) -> str:
    proc = subprocess.run([*argv, script], capture_output=True, text=True, timeout=60,
                          env=_env(home), cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


BASH = """
source completions/mailtool.bash
t() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _mailtool
      echo "$*|${COMPREPLY[*]}"; }
t mailtool acc
t mailtool account ''
t mailtool account add --smtp-tls s
t mailtool --account ''
t mailtool --account = h
t mailtool -v account show w
t mailtool --timeout 5 account --js
"""


def test_bash_script(accounts: Path) -> None:
    out = _shell(["bash", "--norc", "-c"], BASH, accounts).splitlines()
    assert out == [
        "mailtool acc|account",
        "mailtool account |add default list remove set-password show test",
        "mailtool account add --smtp-tls s|starttls",
        "mailtool --account |work home weird.one",
        "mailtool --account = h|home",
        "mailtool -v account show w|work weird.one",
        "mailtool --timeout 5 account --js|",
    ]


ZSH = """
compdef() { : }
compadd() { if [[ $1 == -a ]]; then print -rl -- ${(P)2}; else print -rl -- "$@"; fi }
_describe() { print -rl -- ${(P)4} }
_files() { print "<files>" }
compset() { : }
source completions/_mailtool
t() { words=("$@"); CURRENT=$#; print -r -- "$*|${(j:,:)${(f)"$(_mailtool)"}}" }
t mailtool account ''
t mailtool account add --smtp-tls ''
t mailtool --account ''
t mailtool account show ''
t mailtool --config ''
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_script(accounts: Path) -> None:
    out = _shell(["zsh", "-f", "-c"], ZSH, accounts).splitlines()
    assert out[0].startswith("mailtool account |add:Add an account")
    assert out[1:] == [
        "mailtool account add --smtp-tls |implicit,starttls,none",
        "mailtool --account |work,home,weird.one",
        "mailtool account show |work,home,weird.one",
        "mailtool --config |<files>",
    ]


FISH = """
source completions/mailtool.fish
for line in 'mailtool acc' 'mailtool account ' 'mailtool --account ' \\
        'mailtool account add --smtp-tls ' 'mailtool account show w'
    echo "$line|"(complete -C $line | string split -f1 \\t | string join ,)
end
"""


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_script(accounts: Path) -> None:
    out = _shell(["fish", "--no-config", "-c"], FISH, accounts).splitlines()
    assert out == [
        "mailtool acc|account",
        "mailtool account |add,default,list,remove,set-password,show,test",
        "mailtool --account |home,weird.one,work",
        "mailtool account add --smtp-tls |implicit,none,starttls",
        "mailtool account show w|weird.one,work",
    ]
