"""The dependency rule, checked on the source itself (import-linter checks it too, in `make test`)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CORE_ALLOWED_THIRD_PARTY = {"msgspec"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_core_imports_only_stdlib_msgspec_and_itself() -> None:
    offenders = {}
    for path in (SRC / "billing_core").rglob("*.py"):
        bad = {name for name in _imports(path)
               if name not in sys.stdlib_module_names and name not in CORE_ALLOWED_THIRD_PARTY
               and name != "billing_core"}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}


def test_adapters_never_import_entrypoints() -> None:
    offenders = [str(p.relative_to(SRC)) for p in (SRC / "adapters").rglob("*.py") if "entrypoints" in _imports(p)]
    assert offenders == []


def test_runtime_code_never_imports_the_contract_kit_or_test_libraries() -> None:
    """``adapters.testing`` ships with the package but is test code: pytest is no runtime dependency."""
    kit = SRC / "adapters" / "testing"
    offenders = {}
    for path in SRC.rglob("*.py"):
        if kit in path.parents:
            continue
        imported = _imports(path) & {"pytest", "hypothesis", "_pytest"}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            imported.update(n for n in names if n == "adapters.testing" or n.startswith("adapters.testing."))
        if imported:
            offenders[str(path.relative_to(SRC))] = sorted(imported)
    assert offenders == {}


def test_core_has_no_float_money() -> None:
    offenders = []
    for path in (SRC / "billing_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "float":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
