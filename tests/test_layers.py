"""What may import what: each package imports only the project packages below it.

The rule is the architecture's: kernels, predictor and cost_model stand alone; backends builds on kernels;
router on predictor, cost_model and backends; deploy on cost_model and backends; tamer (the command) and
tests may import everything. An import anywhere in a module counts, inside a function too, since a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAY_IMPORT = {
    "kernels": set(),
    "predictor": set(),
    "cost_model": set(),
    "backends": {"kernels"},
    "router": {"predictor", "cost_model", "backends"},
    "deploy": {"cost_model", "backends"},
}
PROJECT_PACKAGES = set(MAY_IMPORT) | {"tamer"}


def project_imports(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import of a project package in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PROJECT_PACKAGES]
    return found


def test_project_imports_finds_absolute_and_lazy_imports() -> None:
    source = "import os\nfrom router.service import X\ndef f():\n    import cost_model.catalog\nfrom . import y\n"
    assert project_imports(source) == [(2, "router"), (4, "cost_model")]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_what_it_may(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    allowed = MAY_IMPORT[package] | {package}
    bad = [f"{path.relative_to(ROOT)}:{line} imports {imported}"
           for path in files for line, imported in project_imports(path.read_text())
           if imported not in allowed]
    assert not bad, f"{package}/ may import only {sorted(MAY_IMPORT[package]) or 'no other project package'}:\n" \
                    + "\n".join(bad)
