"""Benchmark: the simulator against the real engine on this CPU, on the same scaled trace, in one process run.

    python bench/sim_vs_engine.py [--data ../shared/data/cloud] [--rate 0.8] [--duration-s 150] [--threads 1]
    python bench/sim_vs_engine.py --quick      # a smoke run: quick profile, 30 s of trace, a burst of 8

1. Profile: `tamer profile`'s measurement of the local engine (bundled SmolLM2-135M, fp32) on this machine:
   peak bandwidth and matmul rate, a grid of real engine steps, efficiencies fitted to them. Written to
   cost_model/data/cpu_profile.json, the "cpu" device of plans and the simulator.
2. Trace: the Azure LLM 2023 conv trace, compressed to --rate req/s (its burstiness kept), the first
   --duration-s of it from --start-s; prompt and output lengths scaled by --input-scale / --output-scale and capped, so
   that this CPU serves it; prompts are random token ids of those lengths (no prefix-cache hits).
3. Engine: the same engine, right after the profile, replays the trace in real time: each request is added
   at its arrival time, the engine steps whenever it has work, EOS is ignored and max_tokens is the
   trace's output length.
4. Simulator: the same trace through cost_model.simulate on one "cpu" replica with the engine's limits
   (max_num_seqs, tokens per step), no spot.
5. Burst: the next --burst-requests requests of the trace all arriving at once, on the engine and through the
   simulator: at the trace's rate the output throughput only follows the arrivals, here it is the capacity.
Prints measured against simulated output throughput (output tokens / time from the first arrival to the
last completion), TTFT p50 / p99, TPOT p50 and mean end-to-end latency, and the relative errors;

    sim_vs_engine_error = mean of |simulated / measured - 1| over the trace replay's TTFT p50 and mean latency
                          and the burst's output throughput.

Also: the profile's error on every step the engine ran (engine_step_mape_pct) and the machine's load.
Writes bench/results/sim_vs_engine.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

import numpy as np  # noqa: E402

from cost_model.workload import Workload, bucketize, read_trace  # noqa: E402

ERROR_METRICS = (("replay", "ttft_p50_s"), ("replay", "latency_mean_s"), ("burst", "output_tokens_per_s"))


def scaled_trace(trace: Workload, rate_req_per_s: float, start_s: float, duration_s: float, input_scale: float,
                 output_scale: float, max_input_tokens: int, max_output_tokens: int) -> Workload:
    """The trace compressed to rate_req_per_s, duration_s of it from start_s, lengths scaled and capped."""
    fast = trace.rescaled(rate_req_per_s=rate_req_per_s)
    keep = (fast.arrival_s >= start_s) & (fast.arrival_s < start_s + duration_s)
    return _scaled(fast, keep, input_scale, output_scale, max_input_tokens, max_output_tokens)


def burst_after(trace: Workload, rate_req_per_s: float, start_s: float, num_requests: int, input_scale: float,
                output_scale: float, max_input_tokens: int, max_output_tokens: int) -> Workload:
    """The num_requests requests that follow the window from start_s (same scaling), all arriving at 0."""
    fast = trace.rescaled(rate_req_per_s=rate_req_per_s)
    first = int(np.searchsorted(fast.arrival_s, start_s))
    keep = np.zeros(len(fast), dtype=bool)
    keep[first:first + num_requests] = True
    w = _scaled(fast, keep, input_scale, output_scale, max_input_tokens, max_output_tokens)
    return Workload(np.zeros(len(w)), w.input_tokens, w.output_tokens, None, f"{len(w)} requests at once")


def _scaled(fast: Workload, keep: np.ndarray, input_scale: float, output_scale: float, max_input_tokens: int,
            max_output_tokens: int) -> Workload:
    if not keep.any():
        raise SystemExit(f"no requests of {fast.name} in that window; choose another --start-s / --duration-s")
    inp = np.clip(np.round(fast.input_tokens[keep] * input_scale), 1, max_input_tokens).astype(np.int64)
    out = np.clip(np.round(fast.output_tokens[keep] * output_scale), 1, max_output_tokens).astype(np.int64)
    return Workload(fast.arrival_s[keep] - fast.arrival_s[keep][0], inp, out, None,
                    f"{fast.name}, lengths x{input_scale:g} / x{output_scale:g}")


def latency_stats(arrival_s, first_token_s, finish_s, output_tokens) -> dict:
    """Throughput and latency figures of one run (times in s from the first arrival)."""
    arrival_s, first_token_s, finish_s = map(np.asarray, (arrival_s, first_token_s, finish_s))
    output_tokens = np.asarray(output_tokens)
    ttft = first_token_s - arrival_s
    many = output_tokens > 1
    tpot = (finish_s[many] - first_token_s[many]) / (output_tokens[many] - 1)
    span_s = max(float(finish_s.max()), float(arrival_s.max())) - float(arrival_s.min())
    return {"output_tokens_per_s": float(output_tokens.sum()) / span_s, "duration_s": span_s,
            "ttft_p50_s": float(np.quantile(ttft, 0.5)), "ttft_p99_s": float(np.quantile(ttft, 0.99)),
            "tpot_p50_s": float(np.quantile(tpot, 0.5)) if len(tpot) else float("nan"),
            "latency_mean_s": float(np.mean(finish_s - arrival_s))}


def replay_engine(engine, workload: Workload, seed: int = 0) -> tuple[dict, list]:
    """Replay the workload in real time on the engine; (latency_stats, the steps it ran as StepSamples)."""
    from backends.engine.sampling_params import SamplingParams
    from cost_model.device_profile import StepSample
    from tamer.profile_command import random_prompt, timed_step

    rng = random.Random(seed)
    n = len(workload)
    prompts = [random_prompt(rng, int(k), engine.config.vocab_size) for k in workload.input_tokens]
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    steps = []
    started = time.perf_counter()
    i = 0
    while i < n or engine.has_unfinished():
        now = time.perf_counter() - started
        while i < n and workload.arrival_s[i] <= now:
            engine.add_request(f"replay-{i}", prompts[i], SamplingParams(
                max_tokens=int(workload.output_tokens[i]), temperature=0.0, ignore_eos=True))
            i += 1
        if not engine.has_unfinished():
            time.sleep(max(0.0, float(workload.arrival_s[i]) - (time.perf_counter() - started)))
            continue
        outputs, comp, step_s = timed_step(engine)
        t = time.perf_counter() - started
        if comp is not None and comp[0] + comp[2] > 0:
            steps.append(StepSample(*comp, step_s))
        for out in outputs:
            k = int(out.request_id.removeprefix("replay-"))
            if np.isnan(first[k]):
                first[k] = t
            if out.finished:
                finish[k] = t
    return latency_stats(workload.arrival_s, first, finish, workload.output_tokens), steps


def simulate_cpu(workload: Workload, max_num_seqs: int, max_batched_tokens: int) -> dict:
    """The workload through cost_model.simulate on one replica of the profiled "cpu" device."""
    from cost_model.simulate import SimOptions, simulate

    buckets = [{"index": b.index, "tier": b.tier, "input_range": list(b.input_range),
                "output_range": list(b.output_range), "rate_req_per_s": b.rate_req_per_s,
                "input_tokens_mean": b.input_tokens_mean, "output_tokens_mean": b.output_tokens_mean}
               for b in bucketize(workload)]
    plan = {"slo": {"ttft_p99_s": 1e3, "tpot_p99_s": 1e3, "attainment": 0.99}, "buckets": buckets,
            "replicas": [{"model": "smollm2-135m", "instance_type": "local", "gpu": "cpu", "num_gpus": 1,
                          "tensor_parallel": 1, "replicas_per_instance": 1, "region": "local", "market": "ondemand",
                          "count": 1, "usd_per_hour_each": 0.0, "usd_per_hour": 0.0, "bucket_share": {}}]}
    options = SimOptions(spot_source="none", max_num_seqs=max_num_seqs, max_batched_tokens=max_batched_tokens)
    return simulate(plan, workload, options)


def busy_by_kind(perf, steps: list) -> dict:
    """Measured and predicted busy seconds of the steps, split into decode-only, prefill-only and mixed steps."""
    from cost_model.device_profile import predict_step_s

    out = {}
    for kind, keep in (("decode", lambda s: s.prefill_tokens == 0), ("prefill", lambda s: s.decode_seqs == 0),
                       ("mixed", lambda s: s.prefill_tokens > 0 and s.decode_seqs > 0)):
        chosen = [s for s in steps if keep(s)]
        out[kind] = {"steps": len(chosen), "measured_s": sum(s.step_s for s in chosen),
                     "predicted_s": float(predict_step_s(perf, chosen).sum()) if chosen else 0.0}
    return out


def relative_errors(measured: dict, simulated: dict) -> dict:
    return {k: simulated[k] / measured[k] - 1 for k in measured if k in simulated and measured[k]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cloud")
    parser.add_argument("--rate", type=float, default=0.8, help="req/s of the compressed trace")
    parser.add_argument("--start-s", type=float, default=600.0, help="where the replayed window starts (s, at --rate)")
    parser.add_argument("--duration-s", type=float, default=150.0, help="seconds of trace to replay")
    parser.add_argument("--input-scale", type=float, default=1 / 16)
    parser.add_argument("--output-scale", type=float, default=1 / 8)
    parser.add_argument("--max-input-tokens", type=int, default=384)
    parser.add_argument("--max-output-tokens", type=int, default=96)
    parser.add_argument("--burst-requests", type=int, default=48, help="requests of the burst (all at once)")
    parser.add_argument("--max-num-seqs", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="quick profile and 30 s of trace")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sim_vs_engine.json")
    args = parser.parse_args()
    if args.quick:
        args.duration_s, args.burst_requests = 30.0, 8

    import torch

    from backends.engine.engine import LLMEngine
    from cost_model.device_profile import predict_step_s, profile_path, step_mape_pct
    from tamer.profile_command import load_avg_1m, profile_engine

    torch.set_num_threads(args.threads)
    trace = read_trace(args.data / "traces" / "azure_llm_2023_conv.csv")
    workload = scaled_trace(trace, args.rate, args.start_s, args.duration_s, args.input_scale, args.output_scale,
                            args.max_input_tokens, args.max_output_tokens)
    print(f"trace: {workload.name}: {len(workload)} requests over {workload.duration_s:.0f} s, prompt tokens mean "
          f"{workload.input_tokens.mean():.0f}, output tokens mean {workload.output_tokens.mean():.0f}")
    engine = LLMEngine.from_pretrained(None, device="cpu", max_num_seqs=args.max_num_seqs, kv_cache_gib=1.0,
                                       enable_prefix_caching=False)
    load_start = load_avg_1m()
    print(f"profiling the engine ({torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load {load_start:.2f})")
    profile = profile_engine(engine, "cpu", quick=args.quick, report=lambda line: print(f"  {line}", flush=True))
    eff = profile.efficiency
    print(f"fitted: compute {eff.compute_frac:.3f}, bandwidth {eff.bandwidth_frac:.3f} of peak, overhead "
          f"{eff.overhead_s_per_layer * 1e3:.2f} ms/layer; step error {profile.extra['fit']['step_mape_pct']:.1f}%")
    path = profile_path("cpu")
    path.write_text(profile.to_text())
    print(f"wrote {path}; replaying {len(workload)} requests on the engine in real time", flush=True)
    load_replay = load_avg_1m()
    measured, steps = replay_engine(engine, workload)
    burst = burst_after(trace, args.rate, args.start_s + args.duration_s, args.burst_requests, args.input_scale,
                        args.output_scale, args.max_input_tokens, args.max_output_tokens)
    print(f"replaying a burst of {len(burst)} requests arriving at once", flush=True)
    burst_measured, burst_steps = replay_engine(engine, burst, seed=1)
    load_end = load_avg_1m()
    batched = engine.engine_config.max_num_batched_tokens
    runs = {"replay": (measured, simulate_cpu(workload, args.max_num_seqs, batched)),
            "burst": (burst_measured, simulate_cpu(burst, args.max_num_seqs, batched))}
    errors = {name: relative_errors(m, sim) for name, (m, sim) in runs.items()}
    error = statistics.fmean(abs(errors[run][key]) for run, key in ERROR_METRICS)
    perf = profile.perf()
    steps += burst_steps
    replay_mape = step_mape_pct(perf, steps)
    busy_measured = sum(s.step_s for s in steps)
    busy_predicted = float(predict_step_s(perf, steps).sum())

    for name, (m, sim) in runs.items():
        print(f"\n{name:<22} {'engine':>9} {'simulator':>9} {'error':>7}")
        for key, label, scale in (("output_tokens_per_s", "output tok/s", 1), ("ttft_p50_s", "TTFT p50 ms", 1e3),
                                  ("ttft_p99_s", "TTFT p99 ms", 1e3), ("tpot_p50_s", "TPOT p50 ms", 1e3),
                                  ("latency_mean_s", "mean latency ms", 1e3)):
            print(f"{label:<22} {m[key] * scale:>9.1f} {sim[key] * scale:>9.1f} {errors[name][key] * 100:>6.1f}%")
    print(f"\nbusy time of the {len(steps)} engine steps: measured {busy_measured:.1f} s, profile predicts "
          f"{busy_predicted:.1f} s; per-step error {replay_mape:.1f}%")
    by_kind = busy_by_kind(perf, steps)
    print("  " + "; ".join(f"{kind}: {v['steps']} steps, measured {v['measured_s']:.1f} s, predicted "
                           f"{v['predicted_s']:.1f} s" for kind, v in by_kind.items()))
    print(f"sim_vs_engine_error (mean |error| of replay TTFT p50, replay mean latency, burst throughput): "
          f"{error * 100:.1f}%")
    print(f"load average (1 min): {load_start:.2f} at the start, {load_replay:.2f} before the replay, "
          f"{load_end:.2f} at the end")
    keys = ("output_tokens_per_s", "duration_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "latency_mean_s", "completed")
    result = {
        "benchmark": "sim_vs_engine",
        "sim_vs_engine_error": error,
        "error_definition": "mean of |simulated / measured - 1| over " + ", ".join(f"{r} {k}" for r, k in ERROR_METRICS),
        "relative_errors": errors,
        "measured": {name: m for name, (m, _) in runs.items()},
        "simulated": {name: {k: sim[k] for k in keys if k in sim} for name, (_, sim) in runs.items()},
        "trace": {"name": workload.name, "num_requests": len(workload), "start_s": args.start_s,
                  "duration_s": args.duration_s, "rate_req_per_s": args.rate,
                  "input_tokens_mean": float(workload.input_tokens.mean()),
                  "output_tokens_mean": float(workload.output_tokens.mean()),
                  "max_input_tokens": args.max_input_tokens, "max_output_tokens": args.max_output_tokens,
                  "burst_requests": len(burst), "burst_input_tokens_mean": float(burst.input_tokens.mean()),
                  "burst_output_tokens_mean": float(burst.output_tokens.mean())},
        "engine": {"max_num_seqs": args.max_num_seqs, "max_num_batched_tokens": batched,
                   "threads": torch.get_num_threads(), "prefix_caching": False},
        "profile": {"efficiency": profile.to_json()["efficiency"], "spec": profile.to_json()["spec"],
                    "fit": profile.extra["fit"], "points": profile.extra["points"]},
        "engine_steps": len(steps), "engine_busy_s": {"measured": busy_measured, "predicted": busy_predicted},
        "engine_step_mape_pct": replay_mape, "engine_busy_by_kind": by_kind,
        "load_avg_1m": {"start": load_start, "before_replay": load_replay, "end": load_end},
        "cpus": os.cpu_count(), "quick": args.quick,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
