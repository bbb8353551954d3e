"""`import kernels` is tamer's kernels/ package, and no other installed distribution claims that name.

Hugging Face publishes a package named `kernels` too (transformers 5.25 and later depend on it). Installed
beside tamer, it shadows or is shadowed by kernels/ depending on sys.path order: the engine then loses its
ops, or transformers fails to import. pyproject.toml keeps transformers below 5.25; this test names the
clash if some other dependency brings the package in.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import kernels

REPO = Path(__file__).resolve().parents[2]


def test_kernels_is_this_projects_package():
    assert Path(kernels.__file__).resolve().parent == REPO / "kernels"


def test_no_other_distribution_provides_kernels():
    owners = set(importlib.metadata.packages_distributions().get("kernels", [])) - {"tamer"}
    assert not owners, (f"{sorted(owners)} also install a top-level `kernels` package, which clashes with tamer's "
                        f"kernels/; uninstall it (pip uninstall {' '.join(sorted(owners))}) or pin what requires it")
