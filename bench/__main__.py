"""`python -m bench [--quick] [--only NAME] [--db sqlite|postgres|both]`.

Runs the benchmarks, prints their figures and appends them to bench/results.md.
"""

from __future__ import annotations

import argparse
import importlib
import time

from bench.common import Report, postgres_available, write_results

BENCHMARKS = [
    "page_throughput",
    "ledger_size",
    "card_generation",
    "mass_edit",
    "usage_api",
    "redemption",
    "autorecharge_sweep",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--only", action="append", help="run only these benchmarks")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in kinds and not postgres_available():
        print("PostgreSQL does not answer on 127.0.0.1:5432: running on SQLite only")
        kinds = ["sqlite"]
    reports: list[Report] = []
    started = time.monotonic()
    for name in args.only or BENCHMARKS:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            print(f"- {name}: not written yet")
            continue
        for kind in getattr(module, "DATABASES", kinds):
            if kind not in kinds:
                continue
            print(f"== {name} on {kind}", flush=True)
            reports.append(module.run(kind, quick=args.quick))
    write_results(
        reports, f"{'quick' if args.quick else 'full'}, {time.monotonic() - started:.0f} s"
    )
    print(f"Results appended to bench/results.md ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
