"""Kernel-test setup: triton's interpreter when there is no CUDA, `gpu` tests skipped without CUDA.

TRITON_INTERPRET is read when a @triton.jit function is defined, i.e. when a `kernels.triton` module is first
imported, so it is set here, while pytest loads this file and before any test runs. With CUDA the kernels are
compiled for the GPU instead and every test runs there.
"""

from __future__ import annotations

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and "tests/kernels/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(no_cuda)


@pytest.fixture(scope="session")
def device() -> str:
    """Where the small-shape kernel checks run: CUDA when present, else the CPU in triton's interpreter."""
    return "cuda" if HAS_CUDA else "cpu"


@pytest.fixture
def triton_backend():
    """Force every `kernels.ops` call in the test through the Triton kernels."""
    from kernels import ops

    with ops.kernel_backend("triton"):
        yield
