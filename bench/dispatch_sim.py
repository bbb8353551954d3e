"""Dispatch at GPU scale in the simulator: the Azure LLM 2023 conv trace on a heterogeneous fleet, p99 TTFT
of least-predicted-work against round-robin and least-requests.

The fleet is the planner's for the conv trace compressed to `--rate` req/s (llama-3.1-8b, on demand, L40S
g6e.xlarge and H100 p5.4xlarge allowed: it buys both kinds), with every replica open to every request size,
so the dispatch rule alone decides where a request goes. The same fleet then serves the trace at
`--loads` times that rate (compressed, repeated to `--duration-s`), once per rule (cost_model/dispatch.py),
no spot preemptions, all in this one run:
  round-robin, least-requests (fewest outstanding), weighted-least-requests (fewest outstanding per unit of
  capacity: the simulator's default), least-predicted-work (least predicted remaining tokens per unit of
  capacity), and least-predicted-work given the true lengths (what a perfect predictor would give).
Predicted lengths: each request's true output length times 2^e, e ~ Normal(0, s) in log2 units, seeded,
with s chosen so that the mean |log2 error| is the learned predictor's (0.77 by default, --log2-mae;
s = mae / sqrt(2 / pi)). The JSON gives the error actually drawn.

    python bench/dispatch_sim.py            # one hour of trace at 1.0x, 1.3x and 1.6x the planned rate
    python bench/dispatch_sim.py --quick    # ten minutes at 1.0x and 1.3x
Writes bench/results/dispatch_sim.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

import numpy as np  # noqa: E402

from cost_model.capacity import Slo  # noqa: E402
from cost_model.planner import PlanRequest, make_plan  # noqa: E402
from cost_model.simulate import SimOptions, simulate  # noqa: E402
from cost_model.workload import Workload, bucketize, read_trace  # noqa: E402

DEFAULT_TRACE = Path("/work/shared/data/cloud/traces/azure_llm_2023_conv.csv")
MODEL = "llama-3.1-8b"
INSTANCE_TYPES = ("g6e.xlarge", "p5.4xlarge")
SLO = Slo(2.0, 0.100)
RULES = ("round-robin", "least-requests", "weighted-least-requests", "least-predicted-work")
ORACLE = "least-predicted-work (true lengths)"


def open_fleet(trace: Workload, slo: Slo) -> dict:
    """The planner's fleet for the trace, every replica allowed every size bucket."""
    req = PlanRequest(models=(MODEL,), slo=slo, markets=("ondemand",), instance_types=INSTANCE_TYPES)
    plan = make_plan(bucketize(trace, trace.peak_factor(slo.ttft_p99_s * req.knobs.ttft_budget_frac)), req)
    every_bucket = {str(b["index"]): 1.0 for b in plan["buckets"]}
    for entry in plan["replicas"]:
        entry["bucket_share"] = dict(every_bucket)
    return plan


def noisy_lengths(true_tokens: np.ndarray, log2_mae: float, seed: int) -> np.ndarray:
    """True lengths times 2^e, e ~ Normal(0, s): mean |e| = s * sqrt(2 / pi) = log2_mae."""
    sigma = log2_mae / math.sqrt(2 / math.pi)
    return true_tokens * 2.0 ** np.random.default_rng(seed).normal(0.0, sigma, len(true_tokens))


def span(workload: Workload, duration_s: float) -> Workload:
    """The arrivals of the first duration_s, the trace repeated back to back if it is shorter."""
    tiled = workload.tiled(duration_s)
    return tiled.head(max(1, int(np.searchsorted(tiled.arrival_s, duration_s, side="right"))))


def run_load(plan: dict, workload: Workload, predicted: np.ndarray) -> dict:
    rows = {}
    for name in (*RULES, ORACLE):
        rule = "least-predicted-work" if name == ORACLE else name
        started = time.perf_counter()
        out = simulate(plan, workload, SimOptions(spot_source="none", dispatch=rule),
                       predicted_output_tokens=None if name == ORACLE else predicted)
        rows[name] = {key: out[key] for key in ("ttft_p50_s", "ttft_p99_s", "tpot_p99_s", "slo_attainment",
                                                "completed", "lost_requests")}
        rows[name]["sim_s"] = time.perf_counter() - started
    return rows


def ratios(rows: dict) -> dict:
    lpw = rows["least-predicted-work"]["ttft_p99_s"]
    return {
        "p99_ttft_ratio_round_robin_over_least_predicted_work": rows["round-robin"]["ttft_p99_s"] / lpw,
        "p99_ttft_ratio_least_requests_over_least_predicted_work": rows["least-requests"]["ttft_p99_s"] / lpw,
        "p99_ttft_ratio_weighted_least_requests_over_least_predicted_work":
            rows["weighted-least-requests"]["ttft_p99_s"] / lpw,
        "p99_ttft_ratio_least_predicted_work_over_true_lengths": lpw / rows[ORACLE]["ttft_p99_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="ten minutes of trace at 1.0x and 1.3x")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--rate", type=float, default=11.0, help="req/s the fleet is planned for")
    parser.add_argument("--loads", default=None, help="comma-separated multiples of --rate to serve")
    parser.add_argument("--duration-s", type=float, default=None)
    parser.add_argument("--log2-mae", type=float, default=0.77, help="mean |log2 error| of the predicted lengths")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dispatch_sim.json")
    args = parser.parse_args()
    loads = [float(x) for x in (args.loads or ("1.0,1.3" if args.quick else "1.0,1.3,1.6")).split(",")]
    duration_s = args.duration_s or (600.0 if args.quick else 3600.0)

    trace = read_trace(args.trace)
    planned = trace.rescaled(rate_req_per_s=args.rate).tiled(trace.duration_s)
    plan = open_fleet(planned, SLO)
    fleet = [f"{r['count']}x {r['instance_type']} ({r['gpu']})" for r in plan["replicas"]]
    print(f"{args.trace.name}: fleet {', '.join(fleet)} planned for {args.rate:g} req/s, SLO TTFT p99 "
          f"{SLO.ttft_p99_s:g} s; predicted lengths with mean |log2 error| {args.log2_mae:g}", flush=True)
    results = []
    for load in loads:
        workload = span(trace.rescaled(rate_req_per_s=args.rate * load), duration_s)
        predicted = noisy_lengths(workload.output_tokens.astype(float), args.log2_mae, args.seed)
        drawn_mae = float(np.mean(np.abs(np.log2(predicted / np.maximum(workload.output_tokens, 1e-9)))))
        rows = run_load(plan, workload, predicted)
        results.append({"load": load, "rate_req_per_s": workload.rate_req_per_s, "num_requests": len(workload),
                        "drawn_log2_mae": drawn_mae, "rules": rows, **ratios(rows)})
        print(f"\nload {load:g}x ({workload.rate_req_per_s:.1f} req/s, {len(workload)} requests)")
        print(f"  {'rule':<38}{'TTFT p50 s':>11}{'TTFT p99 s':>11}{'SLO met':>9}")
        for name, row in rows.items():
            print(f"  {name:<38}{row['ttft_p50_s']:>11.3f}{row['ttft_p99_s']:>11.3f}{row['slo_attainment']:>9.3f}")
        for key, value in ratios(rows).items():
            print(f"  {key:<66}{value:8.2f}")
    headline = results[0]
    result = {
        "benchmark": "dispatch_sim",
        "trace": args.trace.name, "model": MODEL, "fleet": fleet, "planned_rate_req_per_s": args.rate,
        "slo": {"ttft_p99_s": SLO.ttft_p99_s, "tpot_p99_s": SLO.tpot_p99_s}, "duration_s": duration_s,
        "predicted_work": "prompt tokens still to prefill + predicted output tokens still to generate, per unit "
                          "of the replica's capacity for the request's size bucket",
        "predicted_lengths": f"true length x 2^N(0, s), s = {args.log2_mae:g} / sqrt(2/pi) (mean |log2 error| "
                             f"{args.log2_mae:g}, the learned predictor's), seed {args.seed}",
        "headline_load": headline["load"],
        **{key: value for key, value in headline.items() if key.startswith("p99_ttft_ratio")},
        "loads": results,
        "note": "every replica may take every request; no spot preemptions; simulated time, so the numbers "
                "do not depend on this machine",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
