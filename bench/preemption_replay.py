"""Would preempting running requests help? A replay of bench/scheduling.py's measured lengths.

bench/scheduling.py serves a burst in priority order, and a request keeps its slot until it finishes
(the engine preempts only when its KV blocks run out). Schedulers that also preempt by priority exist:
SRPT (shortest remaining first, the mean-latency optimum when lengths are known) and, without any length
prediction, least-attained-service / multi-level feedback queues (FastServe's skip-join MLFQ), which demote
a request as it writes and let newer ones overtake it. This script replays a scheduling result's true
output lengths (its JSON's `per_prompt`) through `--max-concurrency` slots that each write one token per
step, prefill and the cost of a preemption ignored (both favour the preemptive orders), and compares:

  non-preemptive (a request runs to its end once started):
    fcfs, tamer (the run's own predicted priorities), oracle shortest-first
  preemptive (each step runs the best `slots` unfinished requests):
    srpt_oracle     true remaining tokens
    las             fewest tokens written so far (no prediction at all)
    mlfq            FastServe-style queues demoting at 8, 24 and 56 tokens written (no prediction)
    srpt_tamer      tamer's predicted tokens minus those written; past its prediction a request ranks by
                    what it has written, so an underestimate does not jump the queue

for the burst the benchmark sends (every request at step 0) and for the same requests arriving one by one
(Poisson, `--load` of the slots' capacity; `--seeds` arrival draws, pooled).

    python bench/preemption_replay.py bench/results/scheduling.json bench/results/scheduling_mixed.json
Writes bench/results/preemption_replay.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (see bench/scheduling.py)

from bench.scheduling import percentile  # noqa: E402

# (request index, tokens written so far) -> rank; lower runs first, ties by index (arrival order)
RankFn = Callable[[int, int], float]


def replay_nonpreemptive(lengths: Sequence[int], arrivals: Sequence[float], priority: Sequence[float],
                         num_slots: int) -> list[float]:
    """Each request's latency (finish - arrival, in steps); a free slot takes the best waiting request."""
    pending = sorted(range(len(lengths)), key=lambda i: arrivals[i])
    free_at = [0.0] * num_slots
    latency = [0.0] * len(lengths)
    waiting: list[int] = []
    while pending or waiting:
        slot = min(range(num_slots), key=free_at.__getitem__)
        now = free_at[slot]
        if not waiting and pending and arrivals[pending[0]] > now:
            now = arrivals[pending[0]]  # the slot idles until the next arrival
        while pending and arrivals[pending[0]] <= now:
            waiting.append(pending.pop(0))
        best = min(waiting, key=lambda i: (priority[i], i))
        waiting.remove(best)
        free_at[slot] = now + lengths[best]
        latency[best] = free_at[slot] - arrivals[best]
    return latency


def replay_preemptive(lengths: Sequence[int], arrivals: Sequence[float], rank: RankFn,
                      num_slots: int) -> list[float]:
    """Each step runs the num_slots best-ranked unfinished requests that have arrived, one token each."""
    written = [0] * len(lengths)
    latency = [0.0] * len(lengths)
    unfinished = set(range(len(lengths)))
    step = 0
    while unfinished:
        present = [i for i in unfinished if arrivals[i] <= step]
        for i in sorted(present, key=lambda i: (rank(i, written[i]), i))[:num_slots]:
            written[i] += 1
            if written[i] >= lengths[i]:
                unfinished.discard(i)
                latency[i] = step + 1 - arrivals[i]
        step += 1
    return latency


def mlfq_level(written: int, thresholds: Sequence[int] = (8, 24, 56)) -> int:
    return sum(written >= t for t in thresholds)


def orders(lengths: Sequence[int], predicted: Sequence[float]) -> dict[str, tuple[str, object]]:
    """Each order's kind and its priorities (non-preemptive) or rank function (preemptive)."""
    return {
        "fcfs": ("non-preemptive", [0.0] * len(lengths)),
        "tamer": ("non-preemptive", list(predicted)),
        "oracle": ("non-preemptive", list(lengths)),
        "srpt_oracle": ("preemptive", lambda i, w: lengths[i] - w),
        "las": ("preemptive", lambda i, w: w),
        "mlfq": ("preemptive", lambda i, w: mlfq_level(w)),
        "srpt_tamer": ("preemptive", lambda i, w: predicted[i] - w if w < predicted[i] else w),
    }


def poisson_arrivals(lengths: Sequence[int], load: float, num_slots: int, rng: random.Random) -> list[float]:
    """Arrival steps at `load` of the slots' capacity, in the burst's order."""
    rate_per_step = load * num_slots / statistics.mean(lengths)
    t, out = 0.0, []
    for _ in lengths:
        out.append(float(int(t)))
        t += rng.expovariate(rate_per_step)
    return out


def replay_all(lengths: Sequence[int], predicted: Sequence[float], num_slots: int,
               arrival_draws: Sequence[Sequence[float]]) -> dict[str, dict[str, float]]:
    """Mean and p99 latency of every order, pooled over the arrival draws."""
    out = {}
    for name, (kind, how) in orders(lengths, predicted).items():
        pooled: list[float] = []
        for arrivals in arrival_draws:
            if kind == "non-preemptive":
                pooled += replay_nonpreemptive(lengths, arrivals, how, num_slots)
            else:
                pooled += replay_preemptive(lengths, arrivals, how, num_slots)
        out[name] = {"kind": kind, "mean_latency_steps": statistics.mean(pooled),
                     "p99_latency_steps": percentile(pooled, 99)}
    return out


def ratios(table: dict[str, dict], name: str) -> dict[str, float]:
    fcfs, this = table["fcfs"], table[name]
    return {"mean_latency_ratio_fcfs_over_this": fcfs["mean_latency_steps"] / this["mean_latency_steps"],
            "p99_latency_ratio_this_over_fcfs": this["p99_latency_steps"] / fcfs["p99_latency_steps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+", help="JSON written by bench/scheduling.py")
    parser.add_argument("--load", type=float, default=0.9, help="Poisson arrivals at this share of capacity")
    parser.add_argument("--seeds", type=int, default=20, help="Poisson arrival draws, pooled")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "preemption_replay.json")
    args = parser.parse_args()
    written = {"benchmark": "preemption_replay", "load": args.load, "num_poisson_draws": args.seeds, "runs": {}}
    for path in args.results:
        result = json.loads(path.read_text())
        rows = result["per_prompt"]
        lengths = [row["true_tokens"] for row in rows]
        predicted = [row["tamer_priority"] for row in rows]
        num_slots = result["max_concurrency"]
        burst = [[0.0] * len(lengths)]
        poisson = [poisson_arrivals(lengths, args.load, num_slots, random.Random(seed)) for seed in range(args.seeds)]
        print(f"\n{path}: {len(lengths)} requests, {num_slots} slots, max_tokens {result['max_tokens']}")
        print(f"{'order':<14}{'kind':<16}{'burst: FCFS/x':>14}{'p99 x/FCFS':>11}"
              f"{f'Poisson {args.load:.0%}: FCFS/x':>22}{'p99 x/FCFS':>11}")
        tables = [replay_all(lengths, predicted, num_slots, draws) for draws in (burst, poisson)]
        written["runs"][path.name] = {"num_requests": len(lengths), "num_slots": num_slots,
                                      "max_tokens": result["max_tokens"],
                                      **{arrivals: {name: {**stats, **ratios(table, name)}
                                                    for name, stats in table.items()}
                                         for arrivals, table in zip(("burst", "poisson"), tables)}}
        for name, stats in tables[0].items():
            cells = [value for table in tables for value in ratios(table, name).values()]
            print(f"{name:<14}{stats['kind']:<16}{cells[0]:14.2f}{cells[1]:11.2f}{cells[2]:22.2f}{cells[3]:11.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(written, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
