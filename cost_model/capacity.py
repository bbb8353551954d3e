"""How many requests per second of one size bucket one replica serves within the SLO (the planner's coefficients).

A replica decoding B sequences of mean context I + O/2 takes step(B) per decode step. A new request's prompt
is prefilled in k chunks, each riding in a mixed step that also decodes a token for the B running sequences
(chunked prefill, as the simulator and vLLM / Sarathi-Serve do), so a prompt slows decoding by
extra(B) = sum over its chunks of (mixed step - step(B)), not by its whole prefill time. In the time the B
running sequences take to produce O tokens, B new prompts arrive; at a steady arrival rate X per replica:

    cycle(B) = max(O, B * k) * step(B) + B * extra(B)    (O token steps, or more if the chunks outnumber them)
    X = B / cycle(B)                                      (Little's law)
    TPOT = cycle(B) / O                                   (mean time per output token, prefill chunks included)

Prefills run in chunks sized so that one mixed step stays within the TPOT target (prefill_chunk_tokens). The
largest B with TPOT <= tpot_budget_frac * SLO (and B * (I + O) tokens of KV cache fitting) gives the capacity,
times max_utilization to leave room for bursts; and no more than prompts can queue for prefill with the p99
prompt still inside the TTFT target (prefill_queue_req_per_s: a replica whose p99 prefill nearly fills the
target has no room to queue). A bucket whose p99 prompt takes longer than ttft_budget_frac * SLO to prefill,
or whose p99 request does not fit the KV cache or the context window, gets capacity 0 on that replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cost_model.perf import PerfModel
from cost_model.workload import Bucket

P99_OVER_MEAN_WAIT = math.log(100)  # an exponential tail: the p99 queueing delay is ln(100) times the mean


@dataclass(frozen=True)
class Slo:
    """Latency targets at the 99th percentile: time to first token and time per output token."""

    ttft_p99_s: float
    tpot_p99_s: float
    attainment: float = 0.99  # share of requests that must meet both

    def __post_init__(self) -> None:
        if self.ttft_p99_s <= 0 or self.tpot_p99_s <= 0:
            raise ValueError(f"SLO targets must be > 0 s, got ttft_p99_s={self.ttft_p99_s}, "
                             f"tpot_p99_s={self.tpot_p99_s}")
        if not 0 < self.attainment <= 1:
            raise ValueError(f"attainment must be in (0, 1], got {self.attainment}")


@dataclass(frozen=True)
class Knobs:
    """Safety margins between the mean-value capacity model and p99 targets."""

    ttft_budget_frac: float = 0.5
    tpot_budget_frac: float = 0.7
    max_utilization: float = 0.8
    max_batch: int = 512

    def __post_init__(self) -> None:
        for name in ("ttft_budget_frac", "tpot_budget_frac", "max_utilization"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")


def prefill_chunk_tokens(perf: PerfModel, slo: Slo, knobs: Knobs = Knobs()) -> int:
    """Prompt tokens per step (chunked prefill) such that a mixed step stays within the TPOT target, so no step
    holds a decoding request's token past the SLO (Sarathi-Serve's budget); between 128 and 8192. The mean TPOT,
    which the capacity formula charges with every prefill chunk, is what must keep within the budget (knobs), so
    one step may take the whole target: a smaller bound left an L40S, whose weight read alone nearly fills a
    35 ms budget, prefilling 4k-token prompts 128 tokens at a time (1 s) where 512 cost one step 10% more."""
    budget_s = slo.tpot_p99_s
    chunk = 8192
    while chunk > 128 and perf.step_s(chunk, chunk * chunk, 16, 16 * 2000) > budget_s:
        chunk //= 2
    return chunk


def chunked_prefill_s(perf: PerfModel, input_tokens: float, chunk_tokens: int) -> float:
    """Time to prefill one prompt in chunks of chunk_tokens (each chunk attends to the ones before it)."""
    total, done = 0.0, 0.0
    while done < input_tokens:
        c = min(chunk_tokens, input_tokens - done)
        total += perf.step_s(c, c * (2 * done + c))
        done += c
    return total


def prefill_extra_s(perf: PerfModel, input_tokens: float, chunk_tokens: int, batch: int, ctx_tokens: float) -> float:
    """Time one prompt, prefilled in chunks of chunk_tokens, adds to the steps of `batch` sequences decoding at
    mean context ctx_tokens: each chunk's mixed step less the decode step it stands in for."""
    decode_s = perf.decode_step_s(batch, ctx_tokens) if batch else 0.0
    total, done = 0.0, 0.0
    while done < input_tokens:
        c = min(chunk_tokens, input_tokens - done)
        total += perf.step_s(c, c * (2 * done + c), batch, batch * ctx_tokens) - decode_s
        done += c
    return max(total, 0.0)


def why_unservable(perf: PerfModel, bucket: Bucket, slo: Slo, knobs: Knobs) -> str | None:
    """The reason this replica cannot serve the bucket at all, or None."""
    need = bucket.input_tokens_p99 + bucket.output_tokens_p99
    if need > perf.model.max_context_tokens:
        return f"{need:.0f} tokens exceed {perf.model.name}'s context window of {perf.model.max_context_tokens}"
    if need > perf.kv_capacity_tokens:
        return f"{need:.0f} tokens exceed the KV cache ({perf.kv_capacity_tokens} tokens)"
    prefill_s = chunked_prefill_s(perf, bucket.input_tokens_p99, prefill_chunk_tokens(perf, slo, knobs))
    if prefill_s > slo.ttft_p99_s * knobs.ttft_budget_frac:
        return f"prefill of {bucket.input_tokens_p99:.0f} tokens takes {prefill_s * 1e3:.0f} ms"
    if perf.decode_step_s(1, bucket.input_tokens_mean) > slo.tpot_p99_s * knobs.tpot_budget_frac:
        return f"one decode step takes {perf.decode_step_s(1, bucket.input_tokens_mean) * 1e3:.1f} ms"
    return None


def replica_capacity_req_per_s(perf: PerfModel, bucket: Bucket, slo: Slo, knobs: Knobs = Knobs()) -> float:
    """Requests/s of `bucket` one replica serves within the SLO (0 where it cannot serve them)."""
    if not perf.fits or why_unservable(perf, bucket, slo, knobs) is not None:
        return 0.0
    inp, out = bucket.input_tokens_mean, max(1.0, bucket.output_tokens_mean)
    chunk = prefill_chunk_tokens(perf, slo, knobs)
    prefill_s = chunked_prefill_s(perf, inp, chunk)
    num_chunks = math.ceil(inp / chunk)
    ctx = inp + out / 2
    target_s = slo.tpot_p99_s * knobs.tpot_budget_frac

    def cycle_s(batch: int) -> float:
        return (max(out, batch * num_chunks) * perf.decode_step_s(batch, ctx)
                + batch * prefill_extra_s(perf, inp, chunk, batch, ctx))

    def tpot_s(batch: int) -> float:
        return cycle_s(batch) / out

    lo, hi = 0, int(min(knobs.max_batch, perf.kv_capacity_tokens // (inp + out)))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tpot_s(mid) <= target_s:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return 0.0
    tpot_bound = knobs.max_utilization * lo / cycle_s(lo)
    prefill_p99_s = chunked_prefill_s(perf, bucket.input_tokens_p99, prefill_chunk_tokens(perf, slo, knobs))
    return min(tpot_bound, prefill_queue_req_per_s(prefill_s, prefill_p99_s, slo.ttft_p99_s))


def prefill_queue_req_per_s(prefill_mean_s: float, prefill_p99_s: float, ttft_p99_s: float) -> float:
    """Largest arrival rate at which prompts queued one behind another (M/D/1, service prefill_mean_s) still
    leave the p99 prompt its prefill time within the TTFT target:
        p99 wait ~ ln(100) * rho * S / (2 * (1 - rho)) <= ttft_p99_s - prefill_p99_s,   rate = rho / S."""
    slack_s = ttft_p99_s - prefill_p99_s
    if slack_s <= 0 or prefill_mean_s <= 0:
        return 0.0 if slack_s <= 0 else float("inf")
    k = 2 * slack_s / (P99_OVER_MEAN_WAIT * prefill_mean_s)
    return k / (1 + k) / prefill_mean_s


def roofline_output_tokens_per_s(perf: PerfModel, input_tokens: float, output_tokens: float) -> float:
    """Output tokens/s at 100% of peak with the largest batch the KV cache holds, no SLO (the physical ceiling)."""
    batch = max(1, int(min(4096, perf.kv_capacity_tokens // (input_tokens + output_tokens))))
    step = perf.roofline_step_s(0, 0, batch, batch * (input_tokens + output_tokens / 2))
    prefill = perf.roofline_step_s(input_tokens, input_tokens * input_tokens)
    return batch * output_tokens / (output_tokens * step + batch * prefill)
