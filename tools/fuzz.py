#!/usr/bin/env python3
"""Fuzz one of mailtool's parsers for a while (atheris when installed, else hypothesis).

    python tools/fuzz.py imap-parser --minutes 5
    python tools/fuzz.py all --minutes 1          # each target in turn
    python tools/fuzz.py --list

The targets and their invariants live in tests/fuzz/targets.py ("returns, or raises our
own error; round-trips where an encoder exists"). A failing input is written to
tests/fuzz/corpus/crash-<target>-<hash> so the test suite replays it from then on.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import TARGETS  # noqa: E402

CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def save_crash(name: str, data: bytes) -> Path:
    path = CORPUS / f"crash-{name}-{hashlib.sha256(data).hexdigest()[:12]}"
    path.write_bytes(data)
    return path


def with_hypothesis(name: str, seconds: float) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz.test_fuzz import _DATA

    target = TARGETS[name]
    deadline = time.monotonic() + seconds
    rounds = examples = 0
    while time.monotonic() < deadline:
        rounds += 1
        failing: list[bytes] = []

        @settings(max_examples=2000, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.one_of(_DATA, st.binary(max_size=4096)))
        def run(data: bytes) -> None:
            try:
                target(data)
            except Exception:
                failing.append(data)  # noqa: B023 - run() is called in this round
                raise

        try:
            run()
        except Exception as exc:  # report and keep the input
            path = save_crash(name, failing[-1] if failing else b"")
            print(f"{name}: FAILED ({exc.__class__.__name__}: {exc}); input saved as {path}")
            return 1
        examples += 2000
    print(f"{name}: ok, about {examples} inputs in {rounds} rounds")
    return 0


def with_atheris(name: str, seconds: float) -> int:
    import atheris  # type: ignore[import-not-found]

    target = TARGETS[name]

    def one(data: bytes) -> None:
        try:
            target(data)
        except Exception:
            save_crash(name, data)
            raise

    seeds = [str(p) for p in CORPUS.iterdir()]
    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", *seeds], one)
    atheris.Fuzz()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="|".join([*sorted(TARGETS), "all"]))
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--hypothesis", action="store_true", help="never use atheris")
    args = parser.parse_args()
    if args.list or not args.target:
        for name, fn in sorted(TARGETS.items()):
            print(f"{name:18} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    names = sorted(TARGETS) if args.target == "all" else [args.target]
    if any(n not in TARGETS for n in names):
        parser.error(f"unknown target {args.target!r} (see --list)")
    seconds = args.minutes * 60 / len(names)
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
        engine = with_hypothesis if args.hypothesis or len(names) > 1 else with_atheris
    except ImportError:
        engine = with_hypothesis
    return max(engine(name, seconds) for name in names)


if __name__ == "__main__":
    sys.exit(main())
