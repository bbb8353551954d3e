"""kernels.ops: backend selection, the context manager, errors that say how to fix, and cheap imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernels import ops, reference

KERNEL_OPS = ["rms_norm", "fused_add_rms_norm", "rotary_embedding", "silu_and_mul", "store_kv_cache",
              "paged_decode_attention", "paged_prefill_attention"]


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ops.UnknownKernelBackendError, match="known backends: auto, triton, cpu, reference"):
        ops.set_kernel_backend("cuda")
    assert ops.get_kernel_backend() == "auto"


def test_context_manager_restores_the_previous_backend_even_on_error():
    with ops.kernel_backend("reference"):
        with pytest.raises(RuntimeError):
            with ops.kernel_backend("triton"):
                assert ops.get_kernel_backend() == "triton"
                raise RuntimeError("boom")
        assert ops.get_kernel_backend() == "reference"
    assert ops.get_kernel_backend() == "auto"


@pytest.mark.parametrize("name", KERNEL_OPS)
def test_cpu_tensors_get_the_cpu_kernel_where_there_is_one_else_the_reference(name):
    import inspect

    x = torch.zeros(2, 4)
    for backend in ("auto", "cpu"):
        with ops.kernel_backend(backend):
            chosen = ops._select(name, x)
        if name in ops.CPU_OPS:
            assert chosen.__module__ == f"kernels.cpu.{name}"
            assert inspect.signature(chosen) == inspect.signature(getattr(reference, name))
        else:
            assert chosen is getattr(reference, name)
    with ops.kernel_backend("reference"):
        assert ops._select(name, x) is getattr(reference, name)


@pytest.mark.parametrize("name", KERNEL_OPS)
def test_triton_backend_selects_the_kernel_with_the_reference_signature(name):
    pytest.importorskip("triton")
    import inspect

    with ops.kernel_backend("triton"):
        kernel = ops._select(name, torch.zeros(2, 4, device="cuda" if torch.cuda.is_available() else "cpu"))
    assert kernel.__module__ == f"kernels.triton.{name}"
    assert inspect.signature(kernel) == inspect.signature(getattr(reference, name))
    assert inspect.signature(getattr(ops, name)) == inspect.signature(getattr(reference, name))


def test_rope_tables_stay_torch():
    positions, inv_freq = torch.arange(5), torch.rand(4)
    with ops.kernel_backend("triton"):
        cos, sin = ops.rope_cos_sin(positions, inv_freq, torch.float32, 2.0)
    expected = reference.rope_cos_sin(positions, inv_freq, torch.float32, 2.0)
    torch.testing.assert_close(cos, expected[0])
    torch.testing.assert_close(sin, expected[1])


def test_missing_triton_says_how_to_fix(monkeypatch):
    monkeypatch.setattr(ops, "_triton_import_error", lambda: ImportError("No module named 'triton'"))
    chosen = ops._select("rms_norm", torch.zeros(1, 4))  # auto on CPU: the C++ kernel, which needs no triton
    assert chosen.__module__ in ("kernels.cpu.rms_norm", "kernels.reference")
    if torch.cuda.is_available():
        assert ops._select("rms_norm", torch.zeros(1, 4, device="cuda")) is reference.rms_norm  # quiet fallback
    with ops.kernel_backend("triton"), pytest.raises(ops.TritonUnavailableError, match="pip install triton"):
        ops.rms_norm(torch.zeros(1, 4), torch.ones(4), 1e-6)


def test_cpu_tensors_without_the_interpreter_say_how_to_fix(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setattr(ops, "_is_interpreter_active", lambda: False)
    with ops.kernel_backend("triton"), pytest.raises(ops.TritonUnavailableError, match="TRITON_INTERPRET=1"):
        ops.silu_and_mul(torch.zeros(1, 4))


def test_importing_kernels_does_not_import_triton():
    code = "import sys, kernels, kernels.ops; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=Path(__file__).resolve().parents[2])


def test_cpu_choice_follows_the_backend_in_force():
    """_select remembers its CPU choice per (backend, op): switching backends back and forth still switches."""
    x = torch.zeros(1, 4)
    auto_choice = ops._select("rms_norm", x)
    with ops.kernel_backend("reference"):
        assert ops._select("rms_norm", x) is reference.rms_norm
    assert ops._select("rms_norm", x) is auto_choice
    with ops.kernel_backend("reference"):
        assert ops._select("silu_and_mul", x) is reference.silu_and_mul
    assert ops._select("silu_and_mul", x) is ops._resolve("silu_and_mul", x)  # the remembered choice is the fresh one
