"""The embedding example runs and tells the story it claims to tell."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedded.py"


def test_example_main_meters_and_invoices() -> None:
    lines = runpy.run_path(str(EXAMPLE))["main"]()
    assert lines[0] == "trial started, balance $5.000"
    assert lines[1:4] == [
        "call 0: allowed=True balance=$4.500",
        "call 1: allowed=True balance=$4.000",
        "call 2: allowed=True balance=$3.500",
    ]
    assert lines[4] == "invoice INV-000001: total USD 1.50, due USD 0.00"


def test_example_runs_as_a_script() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, check=True, timeout=60)
    assert "invoice INV-000001" in done.stdout
