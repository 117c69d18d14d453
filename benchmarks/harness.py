"""Timing, tables and the results file shared by every benchmark case."""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass
class Measurement:
    name: str
    ops: int
    seconds: list[float]

    @property
    def median_ops_per_s(self) -> float:
        return self.ops / statistics.median(self.seconds)

    @property
    def spread_pct(self) -> float:
        """(max - min) / median of the run times, in percent."""
        med = statistics.median(self.seconds)
        return 100 * (max(self.seconds) - min(self.seconds)) / med if med else 0.0


@dataclass
class CaseResult:
    case: str
    project: Measurement
    baseline: Measurement
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Project throughput as a fraction of the baseline's (1.0 = as fast)."""
        return self.project.median_ops_per_s / self.baseline.median_ops_per_s


def measure(name: str, ops: int, run: Callable[[int], None], *, repeat: int = 5) -> Measurement:
    """Call ``run(round)`` ``repeat`` times; each call must do ``ops`` operations."""
    seconds = []
    for round_no in range(repeat):
        started = time.perf_counter()
        run(round_no)
        seconds.append(time.perf_counter() - started)
    return Measurement(name, ops, seconds)


def print_table(results: list[CaseResult]) -> None:
    header = f"{'case':<48} {'project ops/s':>14} {'baseline ops/s':>15} {'ratio':>7} {'spread':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        spread = max(r.project.spread_pct, r.baseline.spread_pct)
        print(f"{r.case:<48} {r.project.median_ops_per_s:>14,.0f} {r.baseline.median_ops_per_s:>15,.0f} "
              f"{r.ratio:>6.2f}x {spread:>7.0f}%")


def write_results(results: list[CaseResult], path: Path = RESULTS) -> None:
    """Write ``results`` into the results file: a case run again replaces its old entry, the cases
    not run this time stay as they were (each entry carries the date it was measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date().isoformat()
    fresh = [{"case": r.case, "measured_on": today, "ratio": round(r.ratio, 3),
              "project": {**asdict(r.project), "median_ops_per_s": round(r.project.median_ops_per_s, 1)},
              "baseline": {**asdict(r.baseline), "median_ops_per_s": round(r.baseline.median_ops_per_s, 1)},
              "notes": r.notes} for r in results]
    kept: list[dict[str, object]] = []
    if path.exists():
        rerun = {entry["case"] for entry in fresh}
        kept = [entry for entry in json.loads(path.read_text(encoding="utf-8")).get("cases", [])
                if entry.get("case") not in rerun]
    payload = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "cases": kept + fresh,
    }
    path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
