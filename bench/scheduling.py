"""Scheduling on the real engine: one burst of real prompts through the proxy to the local SmolLM2, five orders.

A tamer proxy (memory queue, embedded worker, the bundled SmolLM2 on this CPU) gets a burst of prompts from
the predictor's held-out test split, all at once, greedy, max_tokens capped: AlpacaEval instructions
(`--prompts alpaca`, the default), or a uniform sample of the whole test split (`--prompts all`: mostly
MMLU multiple choice, with GSM8K, MT-Bench and AlpacaEval), traffic of mixed kinds. The deployment
runs `--max-concurrency` requests at a time, so most of the burst waits in the queue and the order it is
served in decides the latencies. Five arms, one after another on the same warm server, same prompts in
the same arrival order; only the priority each job gets differs:
  fcfs    every job priority 0: first come, first served;
  tamer   the gateway's own learned predictor and routing policy: each job's priority is the decision's
          expected output tokens (from the predicted quantiles, each clipped at the request's max_tokens,
          so prompts predicted wholly past the cap tie), shortest-predicted-first;
  tamer_model_offset  the same learned predictor with its online correction per model only, not per kind
          of prompt (seeded with the calibration's offset over all its prompts, then learnt from the same
          history, below): what the per-kind correction adds;
  tamer_unclipped  the same as tamer with the request's max_tokens hidden from the predictor (no clip): whether
          ranking by the uncapped prediction does better or worse;
  oracle  each prompt's true output length: shortest-first with perfect knowledge.
One more order is ranked and replayed (below) but not served: tamer_uncalibrated, the learned predictor with
the bundled card's calibration lengths ignored, its correction starting from zero and learning per kind
from the same history: what the calibration's seeds add (with `--history 0`: the gateway's first requests).
True lengths are measured in the same run by the fcfs arm, which runs first: it generates each prompt once,
greedily, and records its completion tokens. Greedy decoding writes the same tokens in every arm, so those
are the lengths the other arms see; the JSON counts the prompts whose length differed between arms.
Each arm's priorities come from the request service's predictor, swapped between arms on the running
server: a fixed table for fcfs and oracle, the learned predictors (frozen, below) for the tamer arms.
Before the arms the gateway serves `--history` other prompts of the same pool (32 by default; never the
burst's), with the learned predictor, so that its online length correction has seen this deployment answer
traffic like the burst's, as a running gateway's has. During the arms the learned predictor learns nothing
more: no arm is corrected by the burst it is measured on, or by an earlier arm.
A warm-up pass (one token per prompt) puts every prompt in the engine's prefix cache, which is sized to
keep a whole run, so no arm prefills more than another.

Each arm serves the burst `--repeats` times (2 by default), the arms' order reversed every other time
(fcfs, tamer, ..., oracle, then oracle, ..., fcfs), so that a drift in the machine's speed falls on every arm
alike; an arm's latencies are pooled over its bursts.
Latency is end to end per request (send to full response), mean, p50 and p99 over the burst. Absolute
seconds depend on what else runs on this machine; the ratios between arms of one run are the result. The
machine's speed can still drift between arms (other jobs come and go), so each ratio is also given with
latencies counted in output tokens the engine wrote meanwhile (seconds x the arm's tok/s), which takes
that drift out; every arm writes the same tokens. And each arm's order is replayed on the measured lengths
by slots that write one token per step: the ordering effect alone, with no machine noise in it.

    python bench/scheduling.py                 # 32 AlpacaEval prompts, max_tokens 128, 4 at a time (~20 min)
    python bench/scheduling.py --prompts all --out bench/results/scheduling_mixed.json   # mixed kinds
    python bench/scheduling.py --quick         # 12 prompts, max_tokens 48, history 8, one burst per arm (~3 min)
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
from collections import Counter
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

from predictor.base import ModelPrediction, Prediction, PredictionInput  # noqa: E402
from predictor.correction import LengthCorrection  # noqa: E402
from predictor.features import PROMPT_KINDS, prompt_kind  # noqa: E402
from predictor.learned import LearnedPredictor  # noqa: E402

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

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        pass


class FrozenPredictor:
    """Another predictor that no longer learns: predictions as it gives them now, feedback ignored."""

    name = "frozen"

    def __init__(self, inner) -> None:
        self.inner = inner

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        return self.inner.predict(request, models)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        pass


class Tee:
    """For the history: `main` predicts and learns as the gateway's predictor does; each of `others` learns
    from the same finished requests from its own prediction, per kind of prompt or (kind_blind) per model only."""

    name = "tee"

    def __init__(self, main, others: Sequence[tuple[LearnedPredictor, bool]]) -> None:
        self.main, self.others = main, others

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        return self.main.predict(request, models)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        self.main.observe(model, predicted_tokens, output_tokens, truncated, request, correction_log2)
        for other, kind_blind in self.others if request is not None else ():
            own = other.predict(request, [model]).by_model[model]
            other.observe(model, own.output_tokens_p50, output_tokens, truncated, None if kind_blind else request,
                          own.correction_log2)


class UnclippedPredictor:
    """Another predictor's prediction for the request as if it had no max_tokens (no clip at the cap)."""

    name = "unclipped"

    def __init__(self, inner) -> None:
        self.inner = inner

    def predict(self, request: PredictionInput, models: Sequence[str]) -> Prediction:
        return self.inner.predict(dataclasses.replace(request, max_tokens=None), models)

    def observe(self, model: str, predicted_tokens: float, output_tokens: int, truncated: bool,
                request: PredictionInput | None = None, correction_log2: float | None = None) -> None:
        self.inner.observe(model, predicted_tokens, output_tokens, truncated, request, correction_log2)


def load_prompts(path: Path, which: str, num_prompts: int, num_history: int,
                 seed: int) -> tuple[list[dict], list[dict]]:
    """(burst, history): disjoint seeded samples of the predictor's test split (never trained on, not
    calibration prompts), AlpacaEval only or every dataset alike; the burst's order is its arrival order."""
    from predictor.dataset import is_test_prompt

    calibration = {json.loads(line)["prompt_id"] for line in CALIBRATION_PROMPTS.read_text().splitlines() if line}
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    pool = [r for r in rows if (which == "all" or r.get("dataset") == "alpaca_eval") and r.get("text")
            and is_test_prompt(r["prompt_id"]) and r["prompt_id"] not in calibration]
    if len(pool) < num_prompts + num_history:
        raise SystemExit(f"{path}: only {len(pool)} held-out prompts ({which}), {num_prompts} + {num_history} "
                         "asked (--num-prompts, --history)")
    pool.sort(key=lambda r: r["prompt_id"])
    sample = random.Random(seed).sample(pool, num_prompts + num_history)
    return sample[:num_prompts], sample[num_prompts:]


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


LEARNED_ARMS = ("tamer", "tamer_model_offset", "tamer_unclipped")
UNSERVED_ARM = "tamer_uncalibrated"  # ranked and replayed, not served: what the calibration seeds add


def offsets_of(correction: LengthCorrection) -> dict[str, float]:
    """The model's correction offsets (log2): over all its requests, and per kind of prompt it has."""
    return {"model": correction.offset_log2(MODEL), **{kind: correction.offset_log2(MODEL, kind)
                                                       for kind, _ in PROMPT_KINDS if correction.observations(MODEL, kind)}}


def arm_ratios(arms: dict[str, dict], unit: str) -> dict[str, float]:
    """The headline ratios, of latencies in `unit` ("s", or "tokens": seconds x the arm's tok/s)."""
    def of(arm: str, stat: str) -> float:
        return arms[arm][f"{stat}_latency_{unit}"]

    ratios = {}
    for arm in LEARNED_ARMS:
        ratios[f"mean_latency_ratio_fcfs_over_{arm}"] = of("fcfs", "mean") / of(arm, "mean")
        ratios[f"{arm}_over_oracle"] = of(arm, "mean") / of("oracle", "mean")
        ratios[f"p99_latency_ratio_{arm}_over_fcfs"] = of(arm, "p99") / of("fcfs", "p99")
    ratios["p50_latency_ratio_fcfs_over_tamer"] = of("fcfs", "p50") / of("tamer", "p50")
    ratios["mean_latency_ratio_fcfs_over_oracle"] = of("fcfs", "mean") / of("oracle", "mean")
    return ratios


@dataclasses.dataclass
class ArmRuns:
    """Every burst one arm served: its rows (per prompt, per repeat), seconds and the machine's load."""

    rows: list[dict] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    load_average_1min: list[list[float]] = dataclasses.field(default_factory=list)  # before/after each burst

    def summary(self) -> dict:
        return {**summarize(self.rows, self.seconds), "load_average_1min": self.load_average_1min}

    def mean_latency_s(self, prompt_id: str) -> float:
        latencies = [r["latency_s"] for r in self.rows if r["prompt_id"] == prompt_id]
        return sum(latencies) / len(latencies)


def run_arm(server, name: str, predictor, prompts: list[dict], max_tokens: int, runs: ArmRuns) -> list[dict]:
    """One burst with `predictor` giving the priorities; its rows are added to `runs` and returned."""
    server.gateway.service.predictor = predictor
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = asyncio.run(burst(server.url, prompts, max_tokens))
    seconds = time.perf_counter() - started
    runs.rows += rows
    runs.seconds += seconds
    runs.load_average_1min.append([load_before, os.getloadavg()[0]])  # other jobs on this machine
    summary = summarize(rows, seconds)
    print(f"  {name:<18} mean {summary['mean_latency_s']:6.1f} s  p99 {summary['p99_latency_s']:6.1f} s  "
          f"({summary['output_tokens']} tokens in {seconds:.0f} s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="12 prompts, max_tokens 48, 4 at a time, history 8")
    parser.add_argument("--prompts", choices=("alpaca", "all"), default="alpaca",
                        help="AlpacaEval only, or a uniform sample of the whole test split (mixed kinds)")
    parser.add_argument("--history", type=int, default=None,
                        help="prompts the gateway serves before the arms, to learn from (default 32)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prompts.jsonl.gz of the LLM routing data")
    parser.add_argument("--num-prompts", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None, help="output cap of every request")
    parser.add_argument("--max-concurrency", type=int, default=None, help="requests the engine runs at once")
    parser.add_argument("--repeats", type=int, default=None,
                        help="bursts per arm, the arms' order reversed every other time, latencies pooled "
                             "(default 2; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scheduling.json")
    args = parser.parse_args()
    num_prompts = args.num_prompts or (12 if args.quick else 32)
    max_tokens = args.max_tokens or (48 if args.quick else 128)
    max_concurrency = args.max_concurrency or 4
    num_history = args.history if args.history is not None else (8 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 2)

    import tempfile

    import torch

    from router.config import GatewayConfig, QueueSettings, RoutingSettings
    from tests.serving import RunningServer, local_deployment

    prompts, history = load_prompts(args.data, args.prompts, num_prompts, num_history, args.seed)
    source = "AlpacaEval" if args.prompts == "alpaca" else "mixed"
    print(f"{num_prompts} held-out {source} prompts after {num_history} of history, max_tokens {max_tokens}, "
          f"{max_concurrency} at a time; SmolLM2 on {torch.get_num_threads()} CPU threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        routing = RoutingSettings(predictor="learned", model_cards_path=str(Path(tmp) / "no_cards.json"))
        config = GatewayConfig(queue=QueueSettings(), routing=routing,
                               deployments=(local_deployment(max_concurrency=max_concurrency, device="cpu",
                                                             kv_cache_gib=KV_CACHE_GIB),))
        with RunningServer(config) as server:
            service = server.gateway.service
            learning = service.predictor
            correction = learning.correction  # seeded per kind by the bundled card's calibration lengths
            model_only = LengthCorrection()  # the calibration's offset over all its prompts, none per kind
            model_only.seed(MODEL, correction.offset_log2(MODEL), correction.observations(MODEL))
            blind = LearnedPredictor(bundle=learning.bundle, cards_path=learning.cards_path, correction=model_only)
            uncalibrated = LearnedPredictor(bundle=learning.bundle, cards_path=learning.cards_path)
            uncalibrated.correction = LengthCorrection()  # the card's measured lengths ignored: offsets from 0
            calibration_log2 = offsets_of(correction)
            if history:  # the gateway has served traffic like this before: its corrections learn from it
                service.predictor = Tee(learning, [(blind, True), (uncalibrated, False)])
                asyncio.run(burst(server.url, history, max_tokens))
            learned = FrozenPredictor(learning)
            predictors = {"tamer": learned, "tamer_model_offset": FrozenPredictor(blind),
                          "tamer_unclipped": UnclippedPredictor(learned)}
            predicted = {arm: asyncio.run(priorities_of(service, predictor, prompts, max_tokens))
                         for arm, predictor in predictors.items()}
            predicted[UNSERVED_ARM] = asyncio.run(priorities_of(service, FrozenPredictor(uncalibrated), prompts,
                                                                max_tokens))
            # warm-up, one token per prompt: first-call costs off the clock, and every prompt in the prefix
            # cache (large enough to keep them all) before the first arm, as it is before the later ones
            server.gateway.service.predictor = FixedPredictor()
            asyncio.run(burst(server.url, prompts, 1))
            runs = {arm: ArmRuns() for arm in ("fcfs", *LEARNED_ARMS, "oracle")}
            predictors["fcfs"] = FixedPredictor()
            fcfs_rows = run_arm(server, "fcfs", predictors["fcfs"], prompts, max_tokens, runs["fcfs"])
            true_tokens = {r["prompt_id"]: r["completion_tokens"] for r in fcfs_rows}
            predictors["oracle"] = FixedPredictor({p["text"]: true_tokens[p["prompt_id"]] for p in prompts})
            order = list(runs)  # fcfs first: its first burst, above, measured the true lengths
            for repeat in range(repeats):  # forward, then backward, ...: a drift in speed hits all arms alike
                sequence = order if repeat % 2 == 0 else order[::-1]
                for arm in sequence[1:] if repeat == 0 else sequence:
                    run_arm(server, arm, predictors[arm], prompts, max_tokens, runs[arm])
    arms = {arm: r.summary() for arm, r in runs.items()}
    mismatches = sum(r["completion_tokens"] != true_tokens[r["prompt_id"]] for arm in runs.values() for r in arm.rows)
    ratios = arm_ratios(arms, "s")
    speed_adjusted = arm_ratios(arms, "tokens")
    ids = [p["prompt_id"] for p in prompts]
    lengths = sorted(true_tokens.values())
    priority_by_arm = {"fcfs": [0.0] * len(ids), **{arm: [predicted[arm][i] for i in ids]
                                                    for arm in (*LEARNED_ARMS, UNSERVED_ARM)},
                       "oracle": [true_tokens[i] for i in ids]}
    replay = {}
    for arm, priorities in priority_by_arm.items():
        order = sorted(range(len(ids)), key=lambda k: (priorities[k], k))
        steps = replay_latency_steps([true_tokens[i] for i in ids], order, max_concurrency)
        replay[arm] = {"mean_latency_steps": sum(steps) / len(steps), "p50_latency_steps": percentile(steps, 50),
                       "p99_latency_steps": percentile(steps, 99)}
    replay_ratios = arm_ratios(replay, "steps")
    replay_ratios[f"mean_latency_ratio_fcfs_over_{UNSERVED_ARM}"] = (replay["fcfs"]["mean_latency_steps"]
                                                                    / replay[UNSERVED_ARM]["mean_latency_steps"])
    result = {
        "benchmark": "scheduling",
        "model": MODEL, "device": "cpu",
        "num_prompts": num_prompts, "max_tokens": max_tokens, "max_concurrency": max_concurrency,
        "repeats": repeats,
        "prompts": f"{args.data.name}: {source}, the predictor's test split, seed {args.seed}",
        "prompt_datasets": dict(sorted(Counter(p["dataset"] for p in prompts).items())),
        "history_prompts": num_history,
        "correction_log2_from_calibration": calibration_log2,
        "correction_log2_after_history": offsets_of(correction),
        f"{UNSERVED_ARM}_correction_log2_after_history": offsets_of(uncalibrated.correction),
        "true_output_tokens": {"mean": sum(lengths) / len(lengths), "p50": percentile(lengths, 50),
                               "max": lengths[-1], "num_at_cap": sum(n >= max_tokens for n in lengths)},
        **{f"{arm}_prediction_spearman": spearman(priority_by_arm[arm], [true_tokens[i] for i in ids])
           for arm in (*LEARNED_ARMS, UNSERVED_ARM)},
        "num_prompts_tamer_priority_at_cap": sum(predicted["tamer"][i] >= max_tokens for i in ids),
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
        "per_prompt": [{"prompt_id": i, "dataset": p["dataset"], "true_tokens": true_tokens[i],
                        "kind": prompt_kind(PredictionInput(p["text"], 1, max_tokens)),
                        **{f"{arm}_priority": predicted[arm][i] for arm in (*LEARNED_ARMS, UNSERVED_ARM)},
                        **{f"{arm}_latency_s": r.mean_latency_s(i) for arm, r in runs.items()}}
                       for i, p in zip(ids, prompts)],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "platform": platform.platform()},
        "note": "arms run one after another on one warm server; the load generator, proxy and engine share this "
                "machine's CPUs with other jobs, so compare ratios within one run, not absolute seconds",
    }
    print()
    print(f"{'arm':<18}{'mean s':>9}{'p50 s':>9}{'p99 s':>9}{'tok/s':>8}")
    for name, s in arms.items():
        print(f"{name:<18}{s['mean_latency_s']:>9.1f}{s['p50_latency_s']:>9.1f}{s['p99_latency_s']:>9.1f}"
              f"{s['tok_s']:>8.1f}")
    print(f"\n{'ratio':<50}{'seconds':>8}{'tokens':>8}{'replay':>8}")
    for key, value in ratios.items():
        print(f"{key:<50}{value:8.2f}{speed_adjusted[key]:8.2f}{replay_ratios[key]:8.2f}")
    print("(seconds: wall clock; tokens: latency x the arm's tok/s, speed drift out; replay: the arm's order "
          "on the measured lengths, one token per slot per step)")
    for key in (f"{arm}_prediction_spearman" for arm in LEARNED_ARMS):
        print(f"{key:<50}{result[key]:6.2f}")
    print(f"{'num_prompts_tamer_priority_at_cap':<50}{result['num_prompts_tamer_priority_at_cap']:6d}")
    print(f"{'num_length_mismatches_across_arms':<50}{mismatches:6d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
