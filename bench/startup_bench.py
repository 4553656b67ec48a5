"""Start-up time: ``mailtool --version``, ``mailtool --help`` and ``mailtool-sendmail``'s
import against ``python3 -c pass`` (the floor) — medians of repeated runs."""

from __future__ import annotations

import sys

from bench.common import measure, report, tool


def _complete_env(words: str, cword: int) -> dict[str, str]:
    return {"_MAILTOOL_COMPLETE": "bash_complete", "COMP_WORDS": words,
            "COMP_CWORD": str(cword)}


def main() -> None:
    py = sys.executable
    mailtool = tool("mailtool") or "mailtool"
    samples = [
        measure("python3 -c pass", [py, "-c", "pass"], runs=21),
        measure("python3 -c 'import click'", [py, "-c", "import click"], runs=21),
        measure("mailtool --version", [mailtool, "--version"], runs=21),
        measure("mailtool --help", [mailtool, "--help"], runs=11),
        # What one TAB press costs when the static script calls back for a dynamic value
        # (account names from the config) or when Click's own script asks for everything.
        measure("completion: --account <TAB>", [mailtool], runs=21, env=_complete_env(
            "mailtool --account ", 2)),
        measure("completion: account show <TAB>", [mailtool], runs=21, env=_complete_env(
            "mailtool account show ", 3)),
    ]
    report("start-up", samples, baseline="python3 -c pass")


if __name__ == "__main__":
    main()
