"""Start-up time: ``mailtool --version``, ``mailtool --help`` and ``mailtool-sendmail``'s
import against ``python3 -c pass`` (the floor) — medians of repeated runs."""

from __future__ import annotations

import sys

from bench.common import measure, report, tool


def main() -> None:
    py = sys.executable
    mailtool = tool("mailtool") or "mailtool"
    samples = [
        measure("python3 -c pass", [py, "-c", "pass"], runs=21),
        measure("python3 -c 'import click'", [py, "-c", "import click"], runs=21),
        measure("mailtool --version", [mailtool, "--version"], runs=21),
        measure("mailtool --help", [mailtool, "--help"], runs=11),
    ]
    report("start-up", samples, baseline="python3 -c pass")


if __name__ == "__main__":
    main()
