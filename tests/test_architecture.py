"""Import contracts: the domain core, the store and the reports never import Qt (napari-style layering), and the
layers (pyproject.toml, [tool.importlinter]) only import downwards: gui / commands / cli, then analysis, report,
store, core."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "xfr_desktop"
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", ["core", "store", "report"])
def test_layer_source_never_imports_qt(layer):
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in imported_modules(p) if m.split(".")[0] in QT_MODULES)
                 for p in (PACKAGE / layer).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_importing_every_core_module_loads_no_qt():
    modules = sorted("xfr_desktop." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                     for layer in ("core", "store", "report") for p in (PACKAGE / layer).rglob("*.py")
                     if p.name != "__init__.py")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in {QT_MODULES!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_layer_contracts_hold():
    """lint-imports (import-linter, a test dependency) checks every import, including those inside functions."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout
