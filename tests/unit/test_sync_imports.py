"""The IMAP and sync modules stay cheap to import: no typing, pathlib, dataclasses, json,
datetime, logging, email or click at module level (each costs a no-op resync start-up time;
type-only imports sit under ``if TYPE_CHECKING:``), and they build no regex at import that
a sync may never use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    [*(ROOT / "mailtool" / "sync").glob("*.py"),
     *(ROOT / "mailtool" / "protocol" / "imap").glob("*.py"),
     ROOT / "mailtool" / "imapconn.py", ROOT / "mailtool" / "folder_cache.py"]
)
FORBIDDEN = {"typing", "pathlib", "dataclasses", "json", "datetime", "logging", "email",
             "click", "rich", "inspect", "fnmatch", "base64"}
#: Regexes a sync run needs from its first response on (lines, literals, arguments).
REGEXES_AT_IMPORT = {"session.py": 2}


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported at module level, outside ``if TYPE_CHECKING:`` blocks."""
    found: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append(node.module)
            elif isinstance(node, ast.If):
                test = node.test
                if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                    visit(node.orelse)
                else:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)

    visit(tree.body)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_costly_imports_at_module_level(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    costly = [m for m in _runtime_imports(tree) if m.split(".")[0] in FORBIDDEN]
    assert not costly, f"{path.name} imports {costly} at module level"
    compiled = [node for node in tree.body if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and ast.unparse(node.value.func) == "re.compile"]
    assert len(compiled) <= REGEXES_AT_IMPORT.get(path.name, 0), path.name


def test_importing_the_sync_stack_loads_none_of_them_itself() -> None:
    """Dynamic check: what the shared modules do not load, ours do not load either."""
    shared = ("mailtool.endpoint", "mailtool.protocol.transport", "mailtool.protocol.replies",
              "mailtool.protocol.sasl", "mailtool.protocol.tls", "mailtool.errors",
              "mailtool.record", "mailtool.store.maildir", "mailtool.store.atomic",
              "mailtool.store.lineends", "mailtool.protocol.wire", "mailtool.protocol.transcript")
    code = (
        "import sys\n"
        f"for m in {shared!r}: __import__(m)\n"
        "before = set(sys.modules)\n"
        "import mailtool.imapconn, mailtool.sync.engine, mailtool.sync.source\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert not [m for m in out if m.split(".")[0] in FORBIDDEN], out
