"""Scheduling on the real engine: one burst of real prompts through the proxy to the local SmolLM2, four orders.

A tamer proxy (memory queue, embedded worker, the bundled SmolLM2 on this CPU) gets a burst of AlpacaEval
prompts from the predictor's held-out test split, all at once, greedy, max_tokens capped. The deployment
runs `--max-concurrency` requests at a time, so most of the burst waits in the queue and the order it is
served in decides the latencies. Four arms, one after another on the same warm server, same prompts in
the same arrival order; only the priority each job gets differs:
  fcfs    every job priority 0: first come, first served;
  tamer   the gateway's own learned predictor and routing policy: each job's priority is the decision's
          expected output tokens (from the predicted quantiles, each clipped at the request's max_tokens,
          so prompts predicted wholly past the cap tie), shortest-predicted-first;
  tamer_unclipped  the same with the request's max_tokens hidden from the predictor (no clip): whether
          ranking by the uncapped prediction does better or worse;
  oracle  each prompt's true output length: shortest-first with perfect knowledge.
True lengths are measured in the same run by the fcfs arm, which runs first: it generates each prompt once,
greedily, and records its completion tokens. Greedy decoding writes the same tokens in every arm, so those
are the lengths the other arms see; the JSON counts the prompts whose length differed between arms.
Each arm's priorities come from the request service's predictor, swapped between arms on the running
server: a fixed table for fcfs and oracle, a wrapper of the learned predictor for tamer_unclipped.
A warm-up pass (one token per prompt) puts every prompt in the engine's prefix cache, which is sized to
keep a whole run, so no arm prefills more than another.

Latency is end to end per request (send to full response), mean, p50 and p99 over the burst. Absolute
seconds depend on what else runs on this machine; the ratios between arms of one run are the result. The
machine's speed can still drift between arms (other jobs come and go), so each ratio is also given with
latencies counted in output tokens the engine wrote meanwhile (seconds x the arm's tok/s), which takes
that drift out; every arm writes the same tokens. And each arm's order is replayed on the measured lengths
by slots that write one token per step: the ordering effect alone, with no machine noise in it.

    python bench/scheduling.py            # 32 prompts, max_tokens 128, 4 at a time (~10 min on 2 cores)
    python bench/scheduling.py --quick    # 12 prompts, max_tokens 48, 4 at a time (~2 min)
Writes bench/results/scheduling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import heapq
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

from predictor.base import ModelPrediction, Prediction, PredictionInput  # noqa: E402

DEFAULT_DATA = Path("/work/shared/data/llm/prompts.jsonl.gz")
CALIBRATION_PROMPTS = ROOT / "predictor" / "artifacts" / "calibration_prompts.jsonl"
MODEL = "smollm2-135m-instruct"
KV_CACHE_GIB = 1.0  # ~23k tokens of SmolLM2: every prompt and answer of a run stays in the prefix cache
CHARS_PER_TOKEN = 4  # input-token estimate of the fixed predictor (routing cost only, not the order)


class FixedPredictor:
    """A predictor whose output length is looked up by prompt text (the oracle) or constant (FCFS)."""

    name = "fixed"

    def __init__(self, tokens_by_prompt: dict[str, float] | None = None, default_tokens: float = 0.0) -> None:
        self.tokens_by_prompt = dict(tokens_by_prompt or {})
        self.default_tokens = default_tokens

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        tokens = float(self.tokens_by_prompt.get(request.prompt_text, self.default_tokens))
        guess = ModelPrediction(tokens, tokens, tokens, p_as_good_as_strongest=1.0)
        return Prediction(input_tokens=len(request.prompt_text) // CHARS_PER_TOKEN,
                          by_model={m: guess for m in models})

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool) -> None:
        pass


class UnclippedPredictor:
    """Another predictor's prediction for the request as if it had no max_tokens (no clip at the cap)."""

    name = "unclipped"

    def __init__(self, inner) -> None:
        self.inner = inner

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        return self.inner.predict(dataclasses.replace(request, max_tokens=None), models)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool) -> None:
        self.inner.observe(model, predicted_tokens, output_tokens, truncated)


def load_prompts(path: Path, num_prompts: int, seed: int) -> list[dict]:
    """AlpacaEval prompts of the predictor's test split (never trained on, not calibration prompts), in a
    seeded random order, which is also the burst's arrival order."""
    from predictor.dataset import is_test_prompt

    calibration = {json.loads(line)["prompt_id"] for line in CALIBRATION_PROMPTS.read_text().splitlines() if line}
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    pool = [r for r in rows if r.get("dataset") == "alpaca_eval" and is_test_prompt(r["prompt_id"])
            and r["prompt_id"] not in calibration and r.get("text")]
    if len(pool) < num_prompts:
        raise SystemExit(f"{path}: only {len(pool)} held-out AlpacaEval prompts, {num_prompts} asked (--num-prompts)")
    pool.sort(key=lambda r: r["prompt_id"])
    return random.Random(seed).sample(pool, num_prompts)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def replay_latency_steps(lengths: Sequence[int], order: Sequence[int], num_slots: int) -> list[float]:
    """A burst served in `order` by num_slots slots that each write one token per step (prefill ignored):
    each request's finish step, indexed like `lengths`. The arm's order without the machine's noise."""
    slots = [0] * num_slots
    finish = [0.0] * len(lengths)
    for i in order:
        start = heapq.heappop(slots)
        finish[i] = start + lengths[i]
        heapq.heappush(slots, finish[i])
    return finish


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else 0.0


async def burst(url: str, prompts: list[dict], max_tokens: int) -> list[dict]:
    """Send every prompt at once (in list order); per prompt: latency and completion tokens."""
    import httpx

    async def one(client: httpx.AsyncClient, prompt: dict) -> dict:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt["text"]}],
                "max_tokens": max_tokens, "temperature": 0}
        started = time.perf_counter()
        response = await client.post("/v1/chat/completions", json=body)
        latency_s = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{prompt['prompt_id']}: the proxy answered {response.status_code}: "
                               f"{response.text[:300]}")
        return {"prompt_id": prompt["prompt_id"], "latency_s": latency_s,
                "completion_tokens": response.json()["usage"]["completion_tokens"]}

    limits = httpx.Limits(max_connections=len(prompts) + 4, max_keepalive_connections=len(prompts) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) as client:
        tasks = []
        for prompt in prompts:
            tasks.append(asyncio.create_task(one(client, prompt)))
            await asyncio.sleep(0)  # let it send, so arrival order is list order
        return await asyncio.gather(*tasks)


def summarize(rows: list[dict], seconds: float) -> dict:
    latencies = [r["latency_s"] for r in rows]
    output_tokens = sum(r["completion_tokens"] for r in rows)
    tok_s = output_tokens / seconds
    summary = {"mean_latency_s": sum(latencies) / len(latencies), "p50_latency_s": percentile(latencies, 50),
               "p99_latency_s": percentile(latencies, 99), "makespan_s": seconds, "output_tokens": output_tokens,
               "tok_s": tok_s}
    for stat in ("mean", "p50", "p99"):  # latency in tokens the engine writes meanwhile, at this arm's speed
        summary[f"{stat}_latency_tokens"] = summary[f"{stat}_latency_s"] * tok_s
    return summary


def chat_request(prompt: dict, max_tokens: int):
    from backends.job import GenerationRequest

    return GenerationRequest(kind="chat", messages=({"role": "user", "content": prompt["text"]},),
                             max_tokens=max_tokens, temperature=0.0)


async def priorities_of(service, predictor, prompts: list[dict], max_tokens: int) -> dict[str, float]:
    """The priority each prompt's job gets with `predictor` (the routing decision's expected output tokens)."""
    service.predictor = predictor
    return {p["prompt_id"]: (await service.route(chat_request(p, max_tokens), MODEL)).est_output_tokens
            for p in prompts}


def arm_ratios(arms: dict[str, dict], unit: str) -> dict[str, float]:
    """The headline ratios, of latencies in `unit` ("s", or "tokens": seconds x the arm's tok/s)."""
    def of(arm: str, stat: str) -> float:
        return arms[arm][f"{stat}_latency_{unit}"]

    return {
        "mean_latency_ratio_fcfs_over_tamer": of("fcfs", "mean") / of("tamer", "mean"),
        "tamer_over_oracle": of("tamer", "mean") / of("oracle", "mean"),
        "p99_latency_ratio_tamer_over_fcfs": of("tamer", "p99") / of("fcfs", "p99"),
        "p50_latency_ratio_fcfs_over_tamer": of("fcfs", "p50") / of("tamer", "p50"),
        "mean_latency_ratio_fcfs_over_tamer_unclipped": of("fcfs", "mean") / of("tamer_unclipped", "mean"),
        "tamer_unclipped_over_oracle": of("tamer_unclipped", "mean") / of("oracle", "mean"),
        "p99_latency_ratio_tamer_unclipped_over_fcfs": of("tamer_unclipped", "p99") / of("fcfs", "p99"),
        "mean_latency_ratio_fcfs_over_oracle": of("fcfs", "mean") / of("oracle", "mean"),
    }


def run_arm(server, name: str, predictor, prompts: list[dict], max_tokens: int) -> tuple[dict, list[dict]]:
    server.gateway.service.predictor = predictor
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = asyncio.run(burst(server.url, prompts, max_tokens))
    summary = summarize(rows, time.perf_counter() - started)
    summary["load_average_1min"] = [load_before, os.getloadavg()[0]]  # other jobs on this machine, before/after
    print(f"  {name:<16} mean {summary['mean_latency_s']:6.1f} s  p99 {summary['p99_latency_s']:6.1f} s  "
          f"({summary['output_tokens']} tokens in {summary['makespan_s']:.0f} s)", flush=True)
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 prompts, max_tokens 48, 4 at a time")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prompts.jsonl.gz of the LLM routing data")
    parser.add_argument("--num-prompts", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None, help="output cap of every request")
    parser.add_argument("--max-concurrency", type=int, default=None, help="requests the engine runs at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scheduling.json")
    args = parser.parse_args()
    num_prompts = args.num_prompts or (12 if args.quick else 32)
    max_tokens = args.max_tokens or (48 if args.quick else 128)
    max_concurrency = args.max_concurrency or 4

    import tempfile

    import torch

    from router.config import GatewayConfig, QueueSettings, RoutingSettings
    from tests.serving import RunningServer, local_deployment

    prompts = load_prompts(args.data, num_prompts, args.seed)
    print(f"{num_prompts} held-out AlpacaEval prompts, max_tokens {max_tokens}, {max_concurrency} at a time; "
          f"SmolLM2 on {torch.get_num_threads()} CPU threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        routing = RoutingSettings(predictor="learned", model_cards_path=str(Path(tmp) / "no_cards.json"))
        config = GatewayConfig(queue=QueueSettings(), routing=routing,
                               deployments=(local_deployment(max_concurrency=max_concurrency, device="cpu",
                                                             kv_cache_gib=KV_CACHE_GIB),))
        with RunningServer(config) as server:
            learned = server.gateway.service.predictor
            predicted = asyncio.run(priorities_of(server.gateway.service, learned, prompts, max_tokens))
            unclipped = asyncio.run(priorities_of(server.gateway.service, UnclippedPredictor(learned), prompts,
                                                  max_tokens))
            # warm-up, one token per prompt: first-call costs off the clock, and every prompt in the prefix
            # cache (large enough to keep them all) before the first arm, as it is before the later ones
            server.gateway.service.predictor = FixedPredictor()
            asyncio.run(burst(server.url, prompts, 1))
            fcfs, fcfs_rows = run_arm(server, "fcfs", FixedPredictor(), prompts, max_tokens)
            true_tokens = {r["prompt_id"]: r["completion_tokens"] for r in fcfs_rows}
            tamer, tamer_rows = run_arm(server, "tamer", learned, prompts, max_tokens)
            unclip, unclip_rows = run_arm(server, "tamer_unclipped", UnclippedPredictor(learned), prompts,
                                          max_tokens)
            oracle_table = {p["text"]: true_tokens[p["prompt_id"]] for p in prompts}
            oracle, oracle_rows = run_arm(server, "oracle", FixedPredictor(oracle_table), prompts, max_tokens)
    rows_by_arm = {"fcfs": fcfs_rows, "tamer": tamer_rows, "tamer_unclipped": unclip_rows, "oracle": oracle_rows}
    mismatches = sum(r["completion_tokens"] != true_tokens[r["prompt_id"]]
                     for rows in rows_by_arm.values() for r in rows)
    arms = {"fcfs": fcfs, "tamer": tamer, "tamer_unclipped": unclip, "oracle": oracle}
    ratios = arm_ratios(arms, "s")
    speed_adjusted = arm_ratios(arms, "tokens")
    ids = [p["prompt_id"] for p in prompts]
    lengths = sorted(true_tokens.values())
    priority_by_arm = {"fcfs": [0.0] * len(ids), "tamer": [predicted[i] for i in ids],
                       "tamer_unclipped": [unclipped[i] for i in ids], "oracle": [true_tokens[i] for i in ids]}
    replay = {}
    for arm, priorities in priority_by_arm.items():
        order = sorted(range(len(ids)), key=lambda k: (priorities[k], k))
        steps = replay_latency_steps([true_tokens[i] for i in ids], order, max_concurrency)
        replay[arm] = {"mean_latency_steps": sum(steps) / len(steps), "p50_latency_steps": percentile(steps, 50),
                       "p99_latency_steps": percentile(steps, 99)}
    replay_ratios = arm_ratios(replay, "steps")
    result = {
        "benchmark": "scheduling",
        "model": MODEL, "device": "cpu",
        "num_prompts": num_prompts, "max_tokens": max_tokens, "max_concurrency": max_concurrency,
        "prompts": f"{args.data.name}: AlpacaEval, the predictor's test split, seed {args.seed}",
        "true_output_tokens": {"mean": sum(lengths) / len(lengths), "p50": percentile(lengths, 50),
                               "max": lengths[-1], "num_at_cap": sum(n >= max_tokens for n in lengths)},
        "tamer_prediction_spearman": spearman([predicted[i] for i in ids], [true_tokens[i] for i in ids]),
        "tamer_unclipped_prediction_spearman": spearman([unclipped[i] for i in ids], [true_tokens[i] for i in ids]),
        "num_prompts_tamer_priority_at_cap": sum(predicted[i] >= max_tokens for i in ids),
        "num_length_mismatches_across_arms": mismatches,
        "arms": arms,
        **ratios,
        "speed_adjusted": {"what": "the same ratios of latencies counted in output tokens the engine wrote "
                                   "meanwhile (seconds x the arm's tok/s), which takes out a change in machine "
                                   "speed between arms", **speed_adjusted},
        "replay": {"what": "each arm's order (priority, then arrival) replayed on the measured lengths by "
                           "max_concurrency slots writing one token per step, prefill ignored: the ordering "
                           "effect alone, free of the machine's noise", **replay_ratios, "arms": replay},
        "anchor": "LTR (learning to rank for LLM scheduling) reports 2.8x lower mean latency than FCFS",
        "targets": {"mean_latency_ratio_fcfs_over_tamer": ">= 2", "tamer_over_oracle": "<= 1.3",
                    "p99_latency_ratio_tamer_over_fcfs": "<= 1.5"},
        "per_prompt": [{"prompt_id": i, "true_tokens": true_tokens[i], "tamer_priority": predicted[i],
                        "tamer_unclipped_priority": unclipped[i],
                        **{f"{arm}_latency_s": rows[k]["latency_s"] for arm, rows in rows_by_arm.items()}}
                       for k, i in enumerate(ids)],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform()},
        "note": "arms run one after another on one warm server; the load generator, proxy and engine share this "
                "machine's CPUs with other jobs, so compare ratios within one run, not absolute seconds",
    }
    print()
    print(f"{'arm':<16}{'mean s':>9}{'p50 s':>9}{'p99 s':>9}{'tok/s':>8}")
    for name, s in arms.items():
        print(f"{name:<16}{s['mean_latency_s']:>9.1f}{s['p50_latency_s']:>9.1f}{s['p99_latency_s']:>9.1f}"
              f"{s['tok_s']:>8.1f}")
    print(f"\n{'ratio':<46}{'seconds':>8}{'tokens':>8}{'replay':>8}")
    for key, value in ratios.items():
        print(f"{key:<46}{value:8.2f}{speed_adjusted[key]:8.2f}{replay_ratios[key]:8.2f}")
    print("(seconds: wall clock; tokens: latency x the arm's tok/s, speed drift out; replay: the arm's order "
          "on the measured lengths, one token per slot per step)")
    for key in ("tamer_prediction_spearman", "tamer_unclipped_prediction_spearman"):
        print(f"{key:<46}{result[key]:6.2f}")
    print(f"{'num_prompts_tamer_priority_at_cap':<46}{result['num_prompts_tamer_priority_at_cap']:6d}")
    print(f"{'num_length_mismatches_across_arms':<46}{mismatches:6d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
