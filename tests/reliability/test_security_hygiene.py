"""Static security hygiene: ``bandit`` finds nothing in ``src``, at any severity or confidence.

False positives go into the reviewed, commented allow-list in ``pyproject.toml`` (``[tool.bandit]``),
never into this test. pip-audit is not run here: it needs a vulnerability database on the network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bandit() -> str:
    beside_python = Path(sys.executable).with_name("bandit")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("bandit")
    if found is None:
        pytest.fail("bandit is not installed: pip install -e '.[dev]'")
    return found


def test_bandit_finds_nothing() -> None:
    result = subprocess.run([_bandit(), "-q", "-r", "src", "-c", "pyproject.toml"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
