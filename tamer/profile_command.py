"""`tamer profile`: measure the local engine on this machine and write a device profile the cost model reads.

Measures, with the bundled model on the engine's device: the peak memory bandwidth (a large tensor copy) and
matmul throughput (square matmuls in the engine's dtype); the time of real engine steps over a grid of
prefill lengths, decode batch sizes and context lengths; the KV-cache size. cost_model.device_profile fits
the performance model's efficiencies to the step times, and the profile (data/cpu_profile.json by default)
makes the device usable as `gpu: cpu` in plans and the simulator.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Callable, Optional

import typer

CATALOG_MODEL = "smollm2-135m"  # the bundled engine model's row in cost_model/data/models.csv
PREFILL_LENGTHS = (16, 64, 128, 256, 512)
DECODE_POINTS = tuple((b, 128) for b in (1, 2, 3, 4, 6, 8, 12)) + \
    ((16, 256), (24, 256), (32, 256), (1, 1024), (4, 512))  # (batch size, mean context tokens)
QUICK_PREFILL_LENGTHS = (32, 256)
QUICK_DECODE_POINTS = ((1, 64), (2, 64), (3, 64), (4, 64), (16, 64))


def step_composition(before: list[tuple[int, int]], after: list[int]) -> tuple[int, int, int, int] | None:
    """(prefill tokens, their sum of causal squares, decoding sequences, their total context) of one step, from each
    live sequence's (computed tokens, total tokens) before it and computed tokens after it; None after a
    preemption (a sequence lost its cache)."""
    prefill = sq = decodes = ctx = 0
    for (done, total), now in zip(before, after):
        new = now - done
        if new < 0:
            return None
        if new == 1 and total - done == 1:
            decodes += 1
            ctx += done + 1
        elif new > 0:
            prefill += new
            sq += new * (2 * done + new)
    return prefill, sq, decodes, ctx


def timed_step(engine) -> tuple[list, tuple[int, int, int, int] | None, float]:
    """Run one engine step: (its outputs, its composition, its wall time in s)."""
    live = engine.scheduler.live()
    before = [(s.num_computed_tokens, s.num_tokens) for s in live]
    started = time.perf_counter()
    outputs = engine.step()
    step_s = time.perf_counter() - started
    return outputs, step_composition(before, [s.num_computed_tokens for s in live]), step_s


def random_prompt(rng: random.Random, num_tokens: int, vocab_size: int) -> list[int]:
    """Token ids with no shared prefix between prompts (so no prefix-cache hits)."""
    return [rng.randrange(100, vocab_size) for _ in range(num_tokens)]


def measure_steps(engine, prefill_lengths, decode_points, decode_steps: int, seed: int = 0, passes: int = 1,
                  report: Callable[[str], None] = lambda line: None) -> tuple[list, list[dict]]:
    """Step samples and a summary per point: each prompt length alone (prefill, twice), then each (batch, mean
    context) point prefilled together and decoded for decode_steps steps, the whole grid `passes` times; every
    step of the runs is a sample (after one unrecorded warm-up request)."""
    from backends.engine.sampling_params import SamplingParams
    from cost_model.device_profile import StepSample

    rng = random.Random(seed)
    vocab = engine.config.vocab_size
    engine.add_request("profile-warmup", random_prompt(rng, 64, vocab),
                       SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True))
    while engine.has_unfinished():
        engine.step()
    samples: list[StepSample] = []
    summary: list[dict] = []
    runs = [(1, length, 1) for length in prefill_lengths for _ in range(2)] + \
        [(b, c, decode_steps) for b, c in decode_points]
    runs = [run for _ in range(passes) for run in runs]  # each point again later: the machine's speed drifts
    budget = engine.engine_config.max_num_batched_tokens
    for k, (batch, context, decode) in enumerate(runs):
        # the first prompts start decoding while the last are prefilled: generate long enough that all `batch`
        # sequences then decode together for `decode` steps
        max_tokens = 1 if decode == 1 else decode + math.ceil(batch * context * 1.5 / budget) + 1
        for i in range(batch):  # a batch's contexts spread over [c/2, 3c/2], as real traffic's do
            length = context if batch == 1 else round(context * (0.5 + i / (batch - 1)))
            engine.add_request(f"profile-{k}-{i}", random_prompt(rng, length, vocab),
                               SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True))
        times = []
        while engine.has_unfinished():
            _, comp, step_s = timed_step(engine)
            if comp is not None and comp[0] + comp[2] > 0:
                samples.append(StepSample(*comp, step_s))
                times.append((comp, step_s))
        if decode == 1:
            summary.append({"kind": "prefill", "tokens": context, "step_ms": times[0][1] * 1e3})
            report(f"prefill {context} tokens: {times[0][1] * 1e3:.0f} ms")
        else:
            full = [s for c, s in times if c[0] == 0 and c[2] == batch] or [s for c, s in times if c[0] == 0]
            summary.append({"kind": "decode", "batch": batch, "context": context,
                            "step_ms": statistics.median(full) * 1e3})
            report(f"decode batch {batch} context {context}: {statistics.median(full) * 1e3:.0f} ms/step")
    return samples, summary


def measure_bandwidth_gb_per_s(device, num_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Peak memory bandwidth: read + write of a large copy, best of repeats."""
    import torch

    src = torch.ones(num_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        started = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * num_bytes / best / 1e9


def measure_matmul_tflops(device, dtype, size: int = 1024, repeats: int = 5) -> float:
    """Peak matmul throughput in the engine's dtype: a size^3 matmul, best of repeats."""
    import torch

    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats + 1):
            _sync(device)
            started = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e12


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_avg_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def profile_engine(engine, name: str = "cpu", quick: bool = False,
                   report: Callable[[str], None] = lambda line: None):
    """Measure `engine` (peaks, step grid, KV capacity) and fit a DeviceProfile named `name`."""
    import torch

    from cost_model.device_profile import fit_device_profile

    dtype = str(engine.dtype).removeprefix("torch.")
    dtype = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)
    load_before = load_avg_1m()
    started = time.perf_counter()
    bandwidth = measure_bandwidth_gb_per_s(engine.device)
    tflops = measure_matmul_tflops(engine.device, engine.dtype)
    report(f"peak: {bandwidth:.1f} GB/s copy, {tflops * 1e3:.1f} GFLOP/s {dtype} matmul")
    prefill_lengths, decode_points = (QUICK_PREFILL_LENGTHS, QUICK_DECODE_POINTS) if quick else \
        (PREFILL_LENGTHS, DECODE_POINTS)
    samples, points = measure_steps(engine, prefill_lengths, decode_points, 6 if quick else 10,
                                    passes=1 if quick else 2, report=report)
    kv_tokens = engine.cache.num_blocks * engine.cache.block_size
    extra = {
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "engine": {"dtype": dtype, "device": str(engine.device), "max_num_seqs": engine.engine_config.max_num_seqs,
                   "max_num_batched_tokens": engine.engine_config.max_num_batched_tokens,
                   "block_size": engine.cache.block_size},
        "peak": {"mem_bandwidth_gb_per_s": bandwidth, "matmul_tflops": tflops},
        "points": points,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_before": load_before, "load_avg_1m_after": load_avg_1m()},
        "measure_s": time.perf_counter() - started,
        "quick": quick,
    }
    return fit_device_profile(name, CATALOG_MODEL, dtype, bandwidth, tflops, kv_tokens, samples, extra)


def profile(
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the profile (default: the shipped "
                                       "cost_model/data/<name>_profile.json, which plans and the simulator read)."),
    name: str = typer.Option("cpu", "--name", help="Device name to use in plans (gpu: <name>)."),
    quick: bool = typer.Option(False, "--quick", help="A small grid, once (under a minute on 2 CPU cores; the full "
                               "grid, twice, takes about 3 minutes)."),
    device: str = typer.Option("cpu", "--device", help="Torch device of the engine."),
    kv_cache_gib: float = typer.Option(1.0, "--kv-cache-gib", min=0.01, help="KV-cache memory of the engine."),
    max_num_seqs: int = typer.Option(64, "--max-num-seqs", min=1),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch CPU threads (default: torch's "
                                          "choice; 1 measures steadily on a machine other work shares)."),
) -> None:
    """Measure the local engine on this machine (prefill, decode steps, KV capacity) and fit a device profile."""
    import json

    from backends.engine.engine import LLMEngine
    from cost_model.device_profile import profile_path
    from cost_model.errors import CostModelError

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        engine = LLMEngine.from_pretrained(None, device=device, max_num_seqs=max_num_seqs, kv_cache_gib=kv_cache_gib,
                                           enable_prefix_caching=False)
        typer.echo(f"profiling {engine.model_name} on {engine.device} ({os.cpu_count()} CPUs, load "
                   f"{load_avg_1m()})")
        result = profile_engine(engine, name, quick, report=lambda line: typer.echo(f"  {line}"))
    except (CostModelError, ValueError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    eff = result.efficiency
    typer.echo(f"fitted: compute {eff.compute_frac:.3f} of peak, bandwidth {eff.bandwidth_frac:.3f} of peak, "
               f"{eff.overhead_s_per_layer * 1e3:.2f} ms overhead per layer; step-time error "
               f"{result.extra['fit']['step_mape_pct']:.1f}% over {len(result.samples)} steps; KV cache "
               f"{result.kv_capacity_tokens} tokens")
    path = out or profile_path(name)
    path.write_text(result.to_text())
    typer.echo(f"wrote {path}")
