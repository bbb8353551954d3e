"""Quality against cost, offline replay on the test split of the LLM data (as RouteLLM evaluates: no LLM calls).

A four-model menu of one family in four sizes, each judged per prompt by GPT-4-turbo against the same
reference (AlpacaEval 2.0, `weighted_alpaca_eval_gpt4_turbo`). For every test prompt a router picks one
model; the realised quality is that model's judged win probability on that prompt, the realised cost is
its true input and output tokens times its price. Routers, each swept over its knob:

  always-strongest / always-cheapest    the two ends
  random mix                            cheapest, strongest at random with share s of strongest calls
  difficulty-only threshold             RouteLLM's approach: the cheapest model whose predicted P(good)
                                        reaches the threshold, cost per model a constant (its mean answer)
  tamer quality-floor                   the same quality rule, cost from the predicted length of *this*
                                        answer (p50) times the price (router/policies/selection.py)
  difficulty / tamer trade-off          per prompt, the model maximising P(good) - lambda * cost, swept
                                        over lambda; cost a per-model constant, or this answer's prediction

The quality-floor rule only uses cost to order the models that pass the floor; when prices differ more
than answer lengths do, that order is the same with or without length prediction. The trade-off rule is
where the predicted length of each answer changes the decision (a long answer on a big model costs more).

Prices (USD per 1M tokens, input and output alike) are illustrative serverless prices roughly
proportional to model size; change MENU to try others. Reports, for each router, the cost at 95% of the
strongest model's quality as a fraction of always-strongest's (`cost_ratio_at_95pct_quality`) and the
area under the quality-cost frontier (cost normalised by always-strongest's, quality by its quality).

    python bench/routing.py [--data DIR] [--json bench/results/routing.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "llm"
RESULTS = ROOT / "bench" / "results" / "routing.json"
MENU = {  # model -> USD per 1M tokens (illustrative, by size)
    "FuseChat-Llama-3.2-1B-Instruct": 0.04,
    "FuseChat-Llama-3.2-3B-Instruct": 0.06,
    "FuseChat-Llama-3.1-8B-Instruct": 0.18,
    "FuseChat-Gemma-2-9B-Instruct": 0.30,
}
QUALITY_SHARE = 0.95
GRID = np.linspace(0.0, 1.0, 201)
LAMBDAS = np.concatenate([[0.0], np.geomspace(1e-4, 10.0, 200)])  # $ weight of the trade-off routers


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper-left Pareto frontier of (cost, quality) points, by increasing cost."""
    best, out = -np.inf, []
    for cost, quality in sorted(points):
        if quality > best:
            out.append((cost, quality))
            best = quality
    return out


def cost_at_quality(points, quality_floor: float) -> float | None:
    feasible = [c for c, q in points if q >= quality_floor - 1e-12]
    return min(feasible) if feasible else None


def area(points, cost_ref: float, quality_ref: float) -> float:
    """Area under the frontier's step curve over normalised cost [0, 1] (quality normalised too)."""
    steps = frontier(points)
    total = 0.0
    for i, (cost, quality) in enumerate(steps):
        start = min(cost / cost_ref, 1.0)
        end = min(steps[i + 1][0] / cost_ref, 1.0) if i + 1 < len(steps) else 1.0
        total += max(0.0, end - start) * quality / quality_ref
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from predictor.base import PredictionInput
    from predictor.dataset import is_test_prompt, load_llm_data
    from predictor.learned import LearnedPredictor
    from router.policies.selection import Option, cheapest_good_enough

    data = load_llm_data(args.data)
    models = list(MENU)
    win: dict[tuple[str, str], float] = {(j.prompt_id, j.model): j.win for j in data.judgments if j.model in MENU}
    out_tokens = {(r.prompt_id, r.model): r.output_tokens for r in data.lengths if r.model in MENU}
    prompts = sorted(p for p in data.prompts if is_test_prompt(p)
                     and all((p, m) in win and (p, m) in out_tokens for m in models))
    if not prompts:
        raise SystemExit(f"no test prompts with judgments and lengths for all of {models} in {args.data}")
    predictor = LearnedPredictor()
    n, k = len(prompts), len(models)
    quality = np.array([[win[p, m] for m in models] for p in prompts])
    price = np.array([MENU[m] / 1e6 for m in models])
    input_tokens = np.array([predictor.predict(PredictionInput(data.prompts[p].text, 1, None), []).input_tokens
                             for p in prompts])
    true_cost = (input_tokens[:, None] + np.array([[out_tokens[p, m] for m in models] for p in prompts])) * price
    p_good = np.zeros((n, k))
    predicted_out = np.zeros((n, k))
    for i, p in enumerate(prompts):
        prediction = predictor.predict(PredictionInput(data.prompts[p].text, 1, None), models)
        for j, m in enumerate(models):
            p_good[i, j] = prediction.by_model[m].p_as_good_as_strongest
            predicted_out[i, j] = prediction.by_model[m].output_tokens_p50
    mean_answer = np.array([predictor.card(m).median_output_tokens for m in models])
    cost_tamer = (input_tokens[:, None] + predicted_out) * price
    cost_constant = np.broadcast_to((input_tokens.mean() + mean_answer) * price, (n, k))
    strongest = int(np.argmax(quality.mean(axis=0)))
    cheapest = int(np.argmin(price))
    rows = np.arange(n)

    def realised(choice: np.ndarray) -> tuple[float, float]:
        return float(true_cost[rows, choice].sum()), float(quality[rows, choice].mean())

    def quality_rule(estimated_cost: np.ndarray, target: float) -> np.ndarray:
        return np.array([models.index(cheapest_good_enough(
            [Option(m, p_good[i, j], estimated_cost[i, j]) for j, m in enumerate(models)], target).option.key)
            for i in range(n)])

    targets = np.unique(np.quantile(p_good, np.linspace(0, 1, 121)))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(n)
    curves = {
        "always_strongest": [realised(np.full(n, strongest))],
        "always_cheapest": [realised(np.full(n, cheapest))],
        "random_mix": [realised(np.where(np.isin(rows, order[:round(s * n)]), strongest, cheapest)) for s in GRID],
        "difficulty_threshold": [realised(quality_rule(cost_constant, t)) for t in targets],
        "tamer_quality_floor": [realised(quality_rule(cost_tamer, t)) for t in targets],
        "difficulty_tradeoff": [realised(np.argmax(p_good - lam * cost_constant / cost_constant.mean(), axis=1))
                                for lam in LAMBDAS],
        "tamer_tradeoff": [realised(np.argmax(p_good - lam * cost_tamer / cost_constant.mean(), axis=1))
                           for lam in LAMBDAS],
        "oracle": [],
    }
    # oracle: the cheapest model whose true quality reaches a floor on this prompt (an upper bound)
    for floor in np.linspace(0, 1, 101):
        ok = quality >= floor
        choice = np.where(ok.any(axis=1), np.argmin(np.where(ok, true_cost, np.inf), axis=1), np.argmax(quality, axis=1))
        curves["oracle"].append(realised(choice))
    cost_ref, quality_ref = curves["always_strongest"][0]
    floor = QUALITY_SHARE * quality_ref
    result = {"benchmark": "routing", "test_prompts": n, "menu_usd_per_1m_tokens": MENU,
              "strongest": models[strongest], "quality_floor": floor, "routers": {}}
    print(f"{n} test prompts; strongest {models[strongest]}: quality {quality_ref:.3f}, cost ${cost_ref:.4f}")
    print(f"{'router':24s} {'cost@95%q / strongest':>22s} {'frontier area':>14s}")
    for name, points in curves.items():
        cost = cost_at_quality(points, floor)
        ratio = cost / cost_ref if cost is not None else None
        result["routers"][name] = {"cost_ratio_at_95pct_quality": ratio, "frontier_area": area(points, cost_ref,
                                   quality_ref), "curve": [{"cost_usd": c, "quality": q} for c, q in frontier(points)]}
        print(f"{name:24s} {('%.3f' % ratio) if ratio is not None else 'never':>22s} "
              f"{result['routers'][name]['frontier_area']:>14.3f}")
    tamer = result["routers"]["tamer_quality_floor"]["cost_ratio_at_95pct_quality"]
    threshold = result["routers"]["difficulty_threshold"]["cost_ratio_at_95pct_quality"]
    result["cost_ratio_at_95pct_quality"] = tamer
    result["tamer_over_difficulty_threshold"] = (tamer / threshold) if tamer and threshold else None
    result["command"] = "python bench/routing.py"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
