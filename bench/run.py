"""Run the benchmarks: ``bench/run.py`` runs every ``bench/*_bench.py``; names select some
(``bench/run.py startup send``). Each script exposes ``main()`` and prints its own table."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(argv: list[str]) -> int:
    names = sorted(p.stem[: -len("_bench")] for p in HERE.glob("*_bench.py"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        return 64
    from bench.common import precompile

    precompile()
    for name in chosen:
        print(f"# {name}")
        module = importlib.import_module(f"bench.{name}_bench")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
