"""tamer's top-level packages are its own: no other installed distribution claims their names.

Hugging Face publishes a package named `kernels` (transformers 5.25 and later depend on it). Installed beside
tamer, it shadows or is shadowed by kernels/ depending on sys.path order: the engine then loses its ops, or
transformers fails to import. pyproject.toml keeps transformers below 5.25; these tests name such a clash,
for kernels/ and the other top-level packages, if some dependency brings one in.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tamer", "router", "predictor", "cost_model", "backends", "kernels", "deploy")


@pytest.mark.parametrize("name", PACKAGES)
def test_import_resolves_to_this_project(name):
    assert Path(importlib.import_module(name).__file__).resolve().parent == REPO / name


@pytest.mark.parametrize("name", PACKAGES)
def test_no_other_distribution_provides_the_name(name):
    owners = set(importlib.metadata.packages_distributions().get(name, [])) - {"tamer"}
    assert not owners, (f"{sorted(owners)} also install a top-level `{name}` package, which clashes with tamer's "
                        f"{name}/; uninstall it (pip uninstall {' '.join(sorted(owners))}) or pin what requires it")
