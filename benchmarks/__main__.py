"""``python -m benchmarks [case ...]``: run the cases, print the table, write results/latest.json."""

from __future__ import annotations

import importlib
import sys

from benchmarks.harness import CaseResult, print_table, write_results

CASES = ["bench_core", "bench_storage_debit", "bench_period_close", "bench_http", "bench_pg_concurrency",
         "bench_ingestion", "bench_usage_path", "bench_usage_http"]


def main(argv: list[str]) -> None:
    names = argv or CASES
    results: list[CaseResult] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        outcome = module.run()
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    print_table(results)
    write_results(results)


if __name__ == "__main__":
    main(sys.argv[1:])
