"""Every benchmark script starts: `python bench/NAME.py --help` imports what it needs and prints its usage.

Run as a script, a file's folder comes first on sys.path, and bench/queue.py would then stand in for the
standard library's `queue` (which torch imports): each script puts the repository root there instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
