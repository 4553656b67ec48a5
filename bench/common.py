"""Shared benchmark helpers: timing whole commands, medians, ratio tables.

Benchmarks are never part of the test command; run them with ``make bench`` or
``.venv/bin/python bench/run.py [NAME...]``. Every figure is a median of several runs, and
every comparison is a ratio against a peer measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import peak_rss_argv, read_wrapper_report  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"


def precompile() -> None:
    """Byte-compile mailtool so timings do not include compiling it (some environments set
    PYTHONDONTWRITEBYTECODE, which would recompile it on every start)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mailtool")],
                   check=False, stdout=subprocess.DEVNULL)


def tool(name: str) -> str | None:
    """Path of a program: the venv first (mailtool), then PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


@dataclass
class Sample:
    label: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_kb: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_command(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    setup: Callable[[], None] | None = None,
    check: bool = True,
) -> tuple[float, int]:
    """Run one command; return (wall seconds, peak RSS of the child in KiB)."""
    if setup is not None:
        setup()
    full_env = dict(os.environ)
    full_env.update(env or {})
    # Peak RSS through a fresh wrapper process: a child's ru_maxrss counts the memory of
    # the (v)forking parent, so measuring from this process would over-report.
    with tempfile.TemporaryDirectory(prefix="mailtool-bench-rss-") as tmp:
        report_file = Path(tmp) / "rss"
        wrapped = peak_rss_argv(list(argv), report_file)
        start = time.perf_counter()
        proc = subprocess.run(
            wrapped, input=input, stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env, check=False,
        )
        outer = time.perf_counter() - start
        rss, elapsed = read_wrapper_report(report_file)
        elapsed = elapsed or outer  # the command's own wall time, without the wrapper's
    if check and proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return elapsed, rss


def measure(
    label: str,
    argv: Sequence[str],
    runs: int = 7,
    warmup: int = 1,
    **kwargs: object,
) -> Sample:
    sample = Sample(label)
    for i in range(warmup + runs):
        seconds, rss = time_command(argv, **kwargs)  # type: ignore[arg-type]
        if i >= warmup:
            sample.seconds.append(seconds)
            sample.peak_rss_kb.append(rss)
    return sample


def report(title: str, samples: Sequence[Sample], baseline: str) -> None:
    """Print medians and ratios against ``baseline`` (a label among ``samples``)."""
    base = next(s for s in samples if s.label == baseline)
    print(f"\n## {title}")
    print(f"{'command':40} {'median':>10} {'ratio':>8}  (vs {baseline}, n={len(base.seconds)})")
    for sample in samples:
        ratio = sample.median / base.median if base.median else float("nan")
        print(f"{sample.label:40} {sample.median * 1000:8.1f}ms {ratio:8.2f}")
    sys.stdout.flush()
