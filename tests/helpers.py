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
