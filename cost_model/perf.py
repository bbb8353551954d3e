"""Performance model: step time of one replica (model x GPU type x GPUs) from a roofline times fitted efficiencies.

For a forward step over T new tokens (prefill tokens plus one per decoding sequence), per layer and
per GPU of a tensor-parallel group of n GPUs:

    flops = 2 * T * linear_params_per_layer / n  +  attention flops / n
    bytes = weight_bytes_per_layer_read / n + activation bytes + KV bytes read and written / n
    roofline_s = max(flops / peak_flops, bytes / mem_bandwidth)
    step_s     = max(flops / (peak_flops * compute_frac), bytes / (mem_bandwidth * bandwidth_frac))
                              + overhead_s_per_layer + all-reduce time (n > 1),
    the layers, the LM head and overhead_s_per_seq per sequence that samples a token (host-side sampling and
    detokenizing, which a CPU engine pays), the whole step times step_scale >= 1 and, for a measured device,
    times its measured residual for steps of that many tokens (token_factors: a CPU's matmul library has
    fast and slow shapes that no roofline shows)

with compute_frac, bandwidth_frac in (0, 1] and overheads >= 0, so for a catalog GPU (no token_factors) a
prediction is never faster than the roofline. A measured device's residuals may be below 1: its peak is one
matmul shape's rate, and a CPU runs larger steps faster than that. The efficiencies per GPU are fitted to
Vidur's measured per-layer op times and step_scale to TensorRT-LLM's published serving throughput
(bench/perf_model_fit.py); they are shipped in data/perf_efficiency.json; a GPU without a profile borrows the
efficiencies of its nearest profiled kin.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass

import numpy as np

from cost_model.catalog import DATA_DIR, GpuSpec, ModelSpec

MEMORY_UTILIZATION = 0.90  # share of GPU memory the engine may use for weights + KV cache
ACTIVATION_RESERVE_GIB_PER_GPU = 1.0
FAST_LINK_GPUS = {"H100", "H200", "B200", "A100", "A100-80GB"}  # NVLink inside the instance
FAST_LINK_GB_PER_S, SLOW_LINK_GB_PER_S = 150.0, 12.0
ALLREDUCE_LATENCY_S = 15e-6


@dataclass(frozen=True)
class Efficiency:
    """Fitted fractions of peak compute and bandwidth, and a fixed per-layer overhead."""

    compute_frac: float = 0.6
    bandwidth_frac: float = 0.8
    overhead_s_per_layer: float = 20e-6
    step_scale: float = 1.0  # >= 1: whole-step slowdown of a serving engine (scheduling, sampling) over its kernels
    overhead_s_per_seq: float = 0.0  # per sequence sampled in a step (host-side work; fitted for measured devices)
    token_factors: tuple = ()  # ((tokens in step, factor), ...) measured residuals of a device; () = none

    def __post_init__(self) -> None:
        factors = tuple((int(t), float(f)) for t, f in self.token_factors)
        object.__setattr__(self, "token_factors", factors)
        if any(f <= 0 for _, f in factors) or [t for t, _ in factors] != sorted({t for t, _ in factors}):
            raise ValueError(f"token_factors must be (tokens, factor > 0) pairs sorted by distinct tokens, got {factors}")
        if not (0 < self.compute_frac <= 1 and 0 < self.bandwidth_frac <= 1):
            raise ValueError(f"efficiency fractions must be in (0, 1], got {self.compute_frac}, {self.bandwidth_frac}")
        if self.overhead_s_per_layer < 0 or self.overhead_s_per_seq < 0:
            raise ValueError(f"overheads must be >= 0, got {self.overhead_s_per_layer}, {self.overhead_s_per_seq}")
        if self.step_scale < 1:
            raise ValueError(f"step_scale must be >= 1, got {self.step_scale}")

    def token_factor(self, tokens: float) -> float:
        """The measured correction for a step of `tokens` tokens: piecewise linear in log(tokens), flat outside."""
        if not self.token_factors:
            return 1.0
        xs = np.log([t for t, _ in self.token_factors])
        return float(np.interp(math.log(max(tokens, 1.0)), xs, [f for _, f in self.token_factors]))


ROOFLINE = Efficiency(1.0, 1.0, 0.0, 1.0, 0.0)


def load_efficiency(gpu: str) -> Efficiency:
    """The shipped fitted efficiency of a GPU type (or of its nearest profiled kin), or of a measured device."""
    from cost_model.catalog import load_gpus

    if gpu not in load_gpus():
        from cost_model.device_profile import find_device_profile

        profile = find_device_profile(gpu)
        if profile is not None:
            return profile.efficiency
    return _shipped_efficiency(gpu)


@functools.cache
def _shipped_efficiency(gpu: str) -> Efficiency:
    with open(DATA_DIR / "perf_efficiency.json") as f:
        table = json.load(f)
    key = table["borrow"].get(gpu, gpu)
    fit = table["fitted"].get(key, table["fitted"][table["default"]])
    return Efficiency(fit["compute_frac"], fit["bandwidth_frac"], fit["overhead_s_per_layer"],
                      table.get("step_scale", 1.0))


def layer_flops_and_bytes(model: ModelSpec, num_tokens: float, num_gpus: int) -> tuple[float, float]:
    """Linear and elementwise work of one layer for num_tokens tokens, per GPU (no attention score math)."""
    h, q, kv, inter = model.hidden_size, model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim, \
        model.intermediate_size
    b = model.bytes_per_param
    attn_params = h * (q + 2 * kv) + q * h
    expert_params = 3 * h * inter
    active_experts = model.num_experts_per_token
    if model.num_experts > 1:  # expected number of distinct experts the tokens touch
        e, k = model.num_experts, model.num_experts_per_token
        touched = e * (1 - (1 - k / e) ** num_tokens)
    else:
        touched = 1
    flops = 2 * num_tokens * (attn_params + active_experts * expert_params) / num_gpus
    weight_bytes = (attn_params + touched * expert_params) * b / num_gpus
    act_bytes = num_tokens * b * (6 * h + (q + 2 * kv + 4 * inter * active_experts) / num_gpus)
    return flops, weight_bytes + act_bytes


@dataclass(frozen=True)
class PerfModel:
    """Step times and KV capacity of one replica: `model` on `num_gpus` GPUs of type `gpu` (tensor parallel)."""

    model: ModelSpec
    gpu: GpuSpec
    num_gpus: int = 1
    efficiency: Efficiency = Efficiency()

    def __post_init__(self) -> None:
        if self.num_gpus < 1:
            raise ValueError(f"num_gpus must be >= 1, got {self.num_gpus}")
        if self.gpu.dtype is not None and self.gpu.dtype != self.model.dtype:  # a device that runs one dtype (CPU)
            object.__setattr__(self, "model", dataclasses.replace(self.model, dtype=self.gpu.dtype))

    @property
    def peak_flops(self) -> float:
        tflops = self.gpu.fp8_dense_tflops if self.model.dtype == "fp8" and self.gpu.fp8_dense_tflops else \
            self.gpu.bf16_dense_tflops
        return tflops * 1e12

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens of KV cache that fit beside the weights (0: the model does not fit)."""
        usable = self.num_gpus * (self.gpu.memory_gib * MEMORY_UTILIZATION - ACTIVATION_RESERVE_GIB_PER_GPU) * 2**30
        free = usable - self.model.weight_bytes
        return max(0, int(free / self.model.kv_bytes_per_token))

    @property
    def fits(self) -> bool:
        return self.kv_capacity_tokens >= 1024

    def step_s(self, prefill_tokens: float = 0, prefill_sq_tokens: float = 0, decode_seqs: float = 0,
               decode_ctx_tokens: float = 0, efficiency: Efficiency | None = None) -> float:
        """One forward step: prefill_tokens new prompt tokens (sum of squares of their lengths in
        prefill_sq_tokens, for causal attention) and decode_seqs sequences decoding one token each over
        decode_ctx_tokens of context in total."""
        eff = efficiency or self.efficiency
        m, n = self.model, self.num_gpus
        tokens = prefill_tokens + decode_seqs
        if tokens <= 0:
            return 0.0
        flops, nbytes = layer_flops_and_bytes(m, tokens, n)
        q = m.num_heads * m.head_dim
        flops += (2 * q * prefill_sq_tokens + 4 * q * decode_ctx_tokens) / n
        kv_per_layer = m.kv_bytes_per_token / m.num_layers
        nbytes += kv_per_layer * (decode_ctx_tokens + tokens) / n
        per_layer = max(flops / (self.peak_flops * eff.compute_frac),
                        nbytes / (self.gpu.mem_bandwidth_gb_per_s * 1e9 * eff.bandwidth_frac))
        per_layer += eff.overhead_s_per_layer + self._allreduce_s(tokens)
        sampled = max(1.0, decode_seqs + (1 if prefill_tokens else 0))
        head_flops = 2 * m.hidden_size * m.vocab_size * sampled / n
        head_bytes = m.hidden_size * m.vocab_size * m.bytes_per_param / n
        head = max(head_flops / (self.peak_flops * eff.compute_frac),
                   head_bytes / (self.gpu.mem_bandwidth_gb_per_s * 1e9 * eff.bandwidth_frac))
        step = m.num_layers * per_layer + head + eff.overhead_s_per_seq * sampled
        return step * eff.step_scale * eff.token_factor(tokens)

    def roofline_step_s(self, prefill_tokens: float = 0, prefill_sq_tokens: float = 0, decode_seqs: float = 0,
                        decode_ctx_tokens: float = 0) -> float:
        """The same step at 100% of peak compute and bandwidth with no overheads (a lower bound)."""
        return self.step_s(prefill_tokens, prefill_sq_tokens, decode_seqs, decode_ctx_tokens, ROOFLINE)

    def _allreduce_s(self, tokens: float) -> float:
        n = self.num_gpus
        if n == 1:
            return 0.0
        link = FAST_LINK_GB_PER_S if self.gpu.name in FAST_LINK_GPUS else SLOW_LINK_GB_PER_S
        msg = tokens * self.model.hidden_size * self.model.bytes_per_param
        return 2 * (ALLREDUCE_LATENCY_S + 2 * (n - 1) / n * msg / (link * 1e9))

    def prefill_s(self, input_tokens: float) -> float:
        """Time to prefill one prompt of input_tokens tokens alone."""
        return self.step_s(input_tokens, input_tokens * input_tokens)

    def decode_step_s(self, batch_size: float, mean_context_tokens: float) -> float:
        """Time of one decode step for batch_size sequences of mean_context_tokens context each."""
        return self.step_s(0, 0, batch_size, batch_size * mean_context_tokens)

    def max_batch_for_tpot(self, tpot_s: float, mean_context_tokens: float, limit: int = 1024) -> int:
        """Largest decode batch whose step time stays within tpot_s (0: not even one sequence)."""
        lo, hi = 0, limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.decode_step_s(mid, mean_context_tokens) <= tpot_s:
                lo = mid
            else:
                hi = mid - 1
        return lo
