"""The seam the engine calls: every hot op, dispatched to its Triton kernel or to its torch reference.

Backends, chosen per process with `set_kernel_backend(name)` or for a block with `with kernel_backend(name):`
  auto       (default) the Triton kernel for CUDA tensors when triton imports; for CPU tensors the C++ kernel
             of `kernels.cpu` where the op has one and it builds here, `kernels.reference` otherwise;
  triton     always the Triton kernel: CUDA tensors, or CPU tensors in triton's interpreter, which needs
             TRITON_INTERPRET=1 in the environment before the first kernel module is imported;
  cpu        the C++ kernel for the ops in CPU_OPS (an error if it cannot be built), the reference for the rest;
  reference  always `kernels.reference`.
Each op has the signature and semantics of its `kernels.reference` twin; triton is imported, and the C++
kernels compiled (kernels/cpu/build.py), on first use. `rope_cos_sin` stays torch (it runs once per step, not
per layer). The backend is process-wide, not per thread.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator

import torch

from kernels import reference

BACKENDS = ("auto", "triton", "cpu", "reference")
# Ops with a C++ CPU kernel in kernels/cpu. Prefill attention stays torch: one fused scaled_dot_product_attention
# per sequence already does its work in a few large calls.
CPU_OPS = ("rms_norm", "fused_add_rms_norm", "rotary_embedding", "silu_and_mul", "store_kv_cache",
           "paged_decode_attention")
_state = {"backend": "auto"}
_triton_ops: dict[str, Callable] = {}  # op name -> Triton launcher, filled on first use
_cpu_ops: dict[str, Callable] = {}  # op name -> C++ CPU launcher, filled on first use
_cpu_selected: dict[tuple[str, str], Callable] = {}  # (backend, op name) -> what _select picks for CPU tensors


class UnknownKernelBackendError(ValueError):
    """A backend name that is not one of BACKENDS."""


class TritonUnavailableError(RuntimeError):
    """The triton backend was asked for where it cannot run (triton missing, or CPU tensors without the interpreter)."""


def set_kernel_backend(name: str) -> None:
    """Use backend `name` ("auto", "triton" or "reference") for every op from now on, in this process."""
    if name not in BACKENDS:
        raise UnknownKernelBackendError(f"unknown kernel backend {name!r}; known backends: {', '.join(BACKENDS)}")
    _state["backend"] = name


def get_kernel_backend() -> str:
    """The backend name in force."""
    return _state["backend"]


@contextlib.contextmanager
def kernel_backend(name: str) -> Iterator[None]:
    """Use backend `name` inside the block, then restore the previous one."""
    previous = get_kernel_backend()
    set_kernel_backend(name)
    try:
        yield
    finally:
        _state["backend"] = previous


@functools.cache
def _triton_import_error() -> Exception | None:
    try:
        importlib.import_module("triton")
    except Exception as exc:  # ImportError, or a broken install raising something else
        return exc
    return None


def is_triton_importable() -> bool:
    """True when `import triton` works here (checked once per process)."""
    return _triton_import_error() is None


def _triton_op(name: str) -> Callable:
    if name not in _triton_ops:
        _triton_ops[name] = getattr(importlib.import_module(f"kernels.triton.{name}"), name)
    return _triton_ops[name]


def _cpu_op(name: str) -> Callable:
    if name not in _cpu_ops:
        _cpu_ops[name] = getattr(importlib.import_module(f"kernels.cpu.{name}"), name)
    return _cpu_ops[name]


def cpu_kernels_available() -> bool:
    """True when the C++ CPU kernels build and load here (the first call builds them: about 25 s on 2 cores)."""
    from kernels.cpu.build import cpu_kernels_available as available

    return available()


def prepare(device: torch.device) -> None:
    """Build now what the backend in force will run for tensors on `device` (the C++ CPU kernels), so that
    the first step does not wait for it."""
    if device.type == "cpu" and _state["backend"] in ("auto", "cpu"):
        cpu_kernels_available()


def _is_interpreter_active() -> bool:
    from kernels.triton.launch import interpreter_active

    return interpreter_active()


def _select(name: str, x: torch.Tensor) -> Callable:
    """The implementation of op `name` for tensors on x's device under the backend in force. For CPU tensors
    outside the triton backend the answer depends on nothing else that changes within a process (the C++
    kernels build or not, once), so it is looked up once per (backend, op): this runs several times per layer."""
    backend = _state["backend"]
    if backend != "triton" and x.is_cpu:
        op = _cpu_selected.get((backend, name))
        if op is None:
            op = _cpu_selected[(backend, name)] = _resolve(name, x)
        return op
    return _resolve(name, x)


def _resolve(name: str, x: torch.Tensor) -> Callable:
    backend = _state["backend"]
    if backend == "reference":
        return getattr(reference, name)
    if backend == "cpu" or (backend == "auto" and not x.is_cuda):
        if name in CPU_OPS and x.device.type == "cpu" and (backend == "cpu" or cpu_kernels_available()):
            return _cpu_op(name)
        return getattr(reference, name)
    if backend == "auto" and not is_triton_importable():
        return getattr(reference, name)
    if not is_triton_importable():
        raise TritonUnavailableError(f"kernel backend 'triton' needs triton, which failed to import "
                                     f"({_triton_import_error()!r}); pip install triton, or use backend 'reference'")
    op = _triton_op(name)
    if not x.is_cuda and not _is_interpreter_active():
        raise TritonUnavailableError(f"kernel backend 'triton' got {x.device.type} tensors for {name}; on CPU the "
                                     "kernels run only in triton's interpreter: set TRITON_INTERPRET=1 before the "
                                     "first kernel is imported, move the tensors to CUDA, or use backend 'reference'")
    return op


def pack_linear_weight(weight: torch.Tensor, batch_size_hint: int) -> torch.Tensor | None:
    """The weight prepacked for `linear` where the backend in force would use the packed CPU path (CPU, fp32 or
    bf16, oneDNN present, backend auto or cpu); None elsewhere, and `linear` then runs the plain weight."""
    from kernels.cpu import packed_linear

    if _state["backend"] not in ("auto", "cpu") or not packed_linear.can_pack(weight):
        return None
    return packed_linear.pack_weight(weight, batch_size_hint)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           packed: torch.Tensor | None = None) -> torch.Tensor:
    """See `kernels.reference.linear`; `packed` (from pack_linear_weight) runs through oneDNN instead of
    torch's GEMM (kernels/cpu/packed_linear.py), except under the reference backend."""
    if packed is not None and _state["backend"] != "reference":
        from kernels.cpu.packed_linear import packed_linear

        return packed_linear(x, packed, bias)
    return reference.linear(x, weight, bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """See `kernels.reference.rms_norm`. x: (num_tokens, hidden_size)."""
    return _select("rms_norm", x)(x, weight, eps)


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """See `kernels.reference.fused_add_rms_norm`; returns (y, r) and may overwrite x and residual."""
    return _select("fused_add_rms_norm", x)(x, residual, weight, eps)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype,
                 attention_scaling: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """See `kernels.reference.rope_cos_sin` (always torch)."""
    return reference.rope_cos_sin(positions, inv_freq, dtype, attention_scaling)


def rotary_embedding(query: torch.Tensor, key: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *,
                     is_neox: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """See `kernels.reference.rotary_embedding`; returns (q', k'), possibly the inputs rotated in place."""
    return _select("rotary_embedding", query)(query, key, cos, sin, is_neox=is_neox)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """See `kernels.reference.silu_and_mul`. x: (num_tokens, 2 * intermediate_size)."""
    return _select("silu_and_mul", x)(x)


def store_kv_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                   slot_mapping: torch.Tensor) -> None:
    """See `kernels.reference.store_kv_cache`; negative slots are skipped."""
    _select("store_kv_cache", key)(key, value, key_cache, value_cache, slot_mapping)


def paged_decode_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                           block_tables: torch.Tensor, context_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """See `kernels.reference.paged_decode_attention`. query: (num_seqs, num_heads, head_dim)."""
    return _select("paged_decode_attention", query)(query, key_cache, value_cache, block_tables, context_lens, scale)


def paged_prefill_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                            block_tables: torch.Tensor, query_start_loc: torch.Tensor, context_lens: torch.Tensor,
                            scale: float) -> torch.Tensor:
    """See `kernels.reference.paged_prefill_attention`. query: (num_tokens, num_heads, head_dim) packed."""
    return _select("paged_prefill_attention", query)(query, key_cache, value_cache, block_tables, query_start_loc,
                                                     context_lens, scale)
