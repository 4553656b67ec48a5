"""Helpers shared by the tests: run the CLI in-process or as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""


def run_cli(
    *args: str,
    expect: int | None = 0,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    program: str = "mailtool",
) -> Result:
    """Run ``mailtool ARGS`` as a real process (no stdin unless ``input``); check the code.

    ``program="mailtool-sendmail"`` runs the sendmail entry point instead.
    """
    module = {"mailtool": "mailtool", "mailtool-sendmail": "mailtool.sendmail"}[program]
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(ROOT))
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    result = Result(
        code=proc.returncode,
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
        stdout_bytes=proc.stdout,
    )
    if expect is not None and proc.returncode != expect:
        pytest.fail(
            f"mailtool {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


#: Runs a command and writes its peak RSS (KiB) to the file named first. A child's
#: ``ru_maxrss`` counts the memory of the process it was forked (or vforked) from, so
#: measuring straight from a big pytest or benchmark process over-reports; this small
#: fresh interpreter in between makes the figure the command's own.
PEAK_RSS_WRAPPER = (
    "import os, sys, time\n"
    "start = time.perf_counter()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "elapsed = time.perf_counter() - start\n"
    "with open(sys.argv[1], 'w') as f:\n"
    "    f.write(f'{usage.ru_maxrss} {elapsed}')\n"
    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n"
)


def peak_rss_argv(argv: list[str], report: Path) -> list[str]:
    """``argv`` wrapped so that its peak RSS lands in ``report`` (see ``read_peak_rss``)."""
    return [sys.executable, "-c", PEAK_RSS_WRAPPER, str(report), *argv]


def read_peak_rss(report: Path) -> int:
    """The peak RSS in KiB written by ``PEAK_RSS_WRAPPER`` (0 if the command was killed)."""
    return int(read_wrapper_report(report)[0])


def read_wrapper_report(report: Path) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds of the command alone, without the wrapper's start)."""
    try:
        rss, elapsed = report.read_text().split()
        return int(rss), float(elapsed)
    except (OSError, ValueError):
        return 0, 0.0
