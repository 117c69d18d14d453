"""Dependencies: every one is pinned in ``requirements.lock``, the tests run on exactly those
versions, and pip-audit finds no known vulnerability in them.

pip-audit needs vulnerability data from the network (PyPI's per-release JSON, or OSV). Where
neither answers it still exits 0 saying "No known vulnerabilities found" while it audited nothing,
so this test reads its JSON report: an audit that could look up no dependency at all is SKIPPED
(loudly, with the reason), one that could look up only some of them fails, and any vulnerability
not in the reviewed allow-list below fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"

# Vulnerability ids reviewed and accepted, each with why it does not apply. Empty: none accepted.
ALLOWED_VULNERABILITIES: dict[str, str] = {}


def _name(requirement: str) -> str:
    """The normalized distribution name of a requirement line (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned with ==: {line!r}"
        pins[_name(name)] = version.strip()
    return pins


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


def test_every_declared_dependency_is_pinned_and_installed_at_its_pin() -> None:
    pins = _locked()
    for requirement in _declared():
        name = _name(requirement)
        assert name in pins, f"{name} is declared in pyproject.toml but not in requirements.lock: run make lock"
        assert metadata.version(name) == pins[name], (
            f"{name} {metadata.version(name)} is installed, the lock says {pins[name]}: reinstall with make test")


def _pip_audit() -> str:
    beside_python = Path(sys.executable).with_name("pip-audit")
    found = str(beside_python) if beside_python.exists() else shutil.which("pip-audit")
    if found is None:
        pytest.fail("pip-audit is not installed: pip install -e '.[dev]'")
    return found


def test_no_known_vulnerability_in_the_locked_versions() -> None:
    result = subprocess.run(
        [_pip_audit(), "--requirement", str(LOCK), "--no-deps", "--disable-pip", "--format", "json",
         "--progress-spinner", "off"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pip-audit gave no report (exit {result.returncode}): {result.stderr[-2000:]}")
    dependencies = report["dependencies"]
    skipped = {d["name"]: d["skip_reason"] for d in dependencies if d.get("skip_reason")}
    if dependencies and len(skipped) == len(dependencies):
        pytest.skip("PIP-AUDIT COULD LOOK UP NO DEPENDENCY: no vulnerability service answered "
                    f"(first reason: {next(iter(skipped.values()))}); run `make audit` where PyPI or OSV is reachable")
    assert not skipped, f"pip-audit could not audit: {skipped}"
    found = {(d["name"], d["version"], v["id"]) for d in dependencies for v in d.get("vulns", [])
             if v["id"] not in ALLOWED_VULNERABILITIES}
    assert not found, f"known vulnerabilities in locked dependencies: {sorted(found)}"
