"""Start-up time of the ``slowfast`` console script: ``slowfast --help`` and ``slowfast eval-ava --help`` (and any
other argument lists given), each run N times as separate processes; prints min / median / max wall seconds.

    python benchmarks/cli_startup.py [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = [["--help"], ["eval-ava", "--help"]]


def command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else ``python -m slowfast.cli``."""
    script = Path(sys.executable).with_name("slowfast")
    found = str(script) if script.is_file() else shutil.which("slowfast")
    return [found] if found else [sys.executable, "-m", "slowfast.cli"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    base = command()
    rows = []
    for case in CASES:
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([*base, *case], stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
        rows.append({"command": " ".join(["slowfast", *case]), "runs": args.runs, "min_s": min(times),
                     "median_s": statistics.median(times), "max_s": max(times)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'command':<26} {'runs':>4} {'min s':>7} {'median s':>9} {'max s':>7}   ({' '.join(base)})")
    for row in rows:
        print(f"{row['command']:<26} {row['runs']:>4} {row['min_s']:>7.3f} {row['median_s']:>9.3f} "
              f"{row['max_s']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
