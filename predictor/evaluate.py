"""Evaluating a predictor bundle on a data directory's test split (`tamer predictor eval`).

Length metrics are computed per (test prompt, model) row; a model the bundle has no card for is
calibrated here on a fixed 10% of its prompts in the directory (its verbosity from their lengths, as
`tamer predictor calibrate` would, its strength from their judgments), and those prompts are left out of
its scores. Baselines beside the bundle: each model's mean (from its card),
a regression on prompt length, and the ceiling "other models' mean length for this prompt", which uses
the true answers of the other models and so is not a predictor one can serve.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from predictor import metrics
from predictor.bundle import PredictorBundle, difficulty_rows, length_rows
from predictor.dataset import ROUTELLM_WEAK, LLMData, is_test_prompt
from predictor.model_card import DEFAULT_STRENGTH, MIN_CALIBRATION_PROMPTS, ModelCard, card_from_lengths, \
    default_card
from predictor.training import calibration_ids, dense_of, log2_len

ROUTELLM_DATASETS = {"routellm_mmlu": "mmlu", "routellm_gsm8k": "gsm8k", "routellm_mt_bench": "mt_bench"}
SMALL_MODEL_PARAMS_B = 10.0


def _cards_for(bundle: PredictorBundle, data: LLMData, test_ids: set[str]):
    """(cards, prompts held out per model for calibration, names of models calibrated here)."""
    cards = dict(bundle.cards)
    held: dict[str, set[str]] = defaultdict(set)
    calibrated = []
    by_model: dict[str, dict[str, int]] = defaultdict(dict)
    for row in data.lengths:
        by_model[row.model][row.prompt_id] = row.output_tokens
    wins: dict[str, dict[str, float]] = defaultdict(dict)
    for row in data.judgments:
        wins[row.model][row.prompt_id] = row.win
    for model in sorted(set(by_model) | set(wins)):
        lengths, judged = by_model.get(model, {}), wins.get(model, {})
        if model in cards or max(len(lengths), len(judged)) < 8:
            continue
        ids = calibration_ids(set(lengths) | set(judged), [])
        strength_ids = [p for p in ids if p in judged]
        strength = float(np.mean([judged[p] for p in strength_ids])) if strength_ids else DEFAULT_STRENGTH
        length_ids = [p for p in ids if p in lengths]
        if len(length_ids) >= MIN_CALIBRATION_PROMPTS:
            cards[model] = card_from_lengths(model, [lengths[p] for p in length_ids], strength=strength,
                                             source="calibrated")
        else:
            base = default_card(model)
            cards[model] = ModelCard(model, base.output_log2_mean, base.output_log2_std, strength, 0, "calibrated")
        held[model] = set(ids)
        calibrated.append(model)
    return cards, held, calibrated


def evaluate_bundle(bundle: PredictorBundle, data: LLMData, latency_models: int = 8) -> dict:
    test_ids = {p for p in data.prompts if is_test_prompt(p)}
    cards, held, calibrated = _cards_for(bundle, data, test_ids)
    ids = sorted(test_ids)
    texts = [data.prompts[p].text for p in ids]
    dense = np.stack([dense_of(t) for t in texts]) if ids else np.zeros((0, 1))
    features = bundle.prompt_features(dense, texts) if ids else None
    row_of = {p: i for i, p in enumerate(ids)}
    result: dict = {"test_prompts": len(ids), "calibrated_here": calibrated}

    rows = [r for r in data.lengths if r.prompt_id in test_ids and r.prompt_id not in held.get(r.model, ())]
    if rows:
        X = length_rows(features[[row_of[r.prompt_id] for r in rows]], [cards[r.model] for r in rows])
        q = bundle.predict_lengths(X)
        true = np.array([r.output_tokens for r in rows], dtype=np.float64)
        models = [r.model for r in rows]
        tau, _ = metrics.mean_kendall_tau_by_group(models, q[:, 1], true)
        result.update(
            length_rows=len(rows),
            length_models=len(set(models)),
            length_kendall_tau=tau,
            length_mae_log2=metrics.mae_log2(q[:, 1], true),
            length_p10_p90_coverage=metrics.interval_coverage(q[:, 0], q[:, 2], true),
            length_interval_width_log2=float(np.mean(np.log2((1 + q[:, 2]) / (1 + q[:, 0])))),
            baselines=_length_baselines(rows, cards, data, true, models),
        )
    result.update(_difficulty(bundle, data, features, row_of, cards, held))
    result.update(_latency(bundle, data, ids, cards, latency_models))
    return result


def _length_baselines(rows, cards, data: LLMData, true: np.ndarray, models: list[str]) -> dict:
    per_model_mean = np.array([cards[r.model].median_output_tokens for r in rows])
    prompt_chars = np.array([len(data.prompts[r.prompt_id].text) for r in rows], dtype=np.float64)
    # prompt-length regression: log2 length ~ a + b * log2 prompt chars, per model (so tau is prompt length's)
    x = np.log2(1 + prompt_chars)
    slope = np.polyfit(x, log2_len(true) - log2_len(per_model_mean), 1)
    by_prompt = defaultdict(list)
    for row, t in zip(rows, true):
        by_prompt[row.prompt_id].append(np.log2(1 + t))
    sums = {p: (sum(v), len(v)) for p, v in by_prompt.items()}
    others = np.array([(sums[r.prompt_id][0] - np.log2(1 + t)) / max(1, sums[r.prompt_id][1] - 1)
                       for r, t in zip(rows, true)])
    return {
        "per_model_mean": {"length_kendall_tau": 0.0, "length_mae_log2": metrics.mae_log2(per_model_mean, true)},
        "prompt_length_regression": {
            "length_kendall_tau": metrics.mean_kendall_tau_by_group(models, x, true)[0],
            "length_mae_log2": metrics.mae_log2(np.exp2(log2_len(per_model_mean) + np.polyval(slope, x)) - 1, true)},
        "other_models_mean_ceiling": {"length_kendall_tau": metrics.mean_kendall_tau_by_group(models, others, true)[0]},
    }


def _difficulty(bundle, data: LLMData, features, row_of, cards, held) -> dict:
    out: dict = {}
    weak_card = cards.get(ROUTELLM_WEAK, default_card(ROUTELLM_WEAK))
    routellm: dict = {}
    for dataset, short in ROUTELLM_DATASETS.items():
        pairs = [c for c in data.correctness if c.dataset == dataset and c.prompt_id in row_of]
        if len(pairs) < 10:
            continue
        X = difficulty_rows(features[[row_of[c.prompt_id] for c in pairs]], [weak_card] * len(pairs))
        score = bundle.predict_quality(X)
        weak = np.array([c.weak_score for c in pairs])
        strong = np.array([c.strong_score for c in pairs])
        curve = metrics.pgr_curve(score, weak, strong)
        oracle = metrics.oracle_pgr_curve(weak, strong)
        out[f"cpt50_{short}"] = metrics.cpt(curve, 0.5)
        out[f"apgr_{short}"] = metrics.apgr(curve)
        routellm[short] = {"prompts": len(pairs), "cpt50": metrics.cpt(curve, 0.5), "apgr": metrics.apgr(curve),
                           "random_cpt50": 0.5, "random_apgr": 0.5,
                           "oracle_cpt50": metrics.cpt(oracle, 0.5), "oracle_apgr": metrics.apgr(oracle)}
    if routellm:
        out["routellm"] = routellm
    judged = [j for j in data.judgments if j.prompt_id in row_of and j.model_params_b is not None
              and j.model_params_b < SMALL_MODEL_PARAMS_B and j.model in cards
              and j.prompt_id not in held.get(j.model, ())]
    if judged:
        X = difficulty_rows(features[[row_of[j.prompt_id] for j in judged]], [cards[j.model] for j in judged])
        score = bundle.predict_quality(X)
        labels = np.array([j.win > 0.5 for j in judged])
        out["alpacaeval_small_model_win_auc"] = metrics.roc_auc(labels, score)
        out["alpacaeval_small_model_rows"] = len(judged)
    return out


def _latency(bundle, data: LLMData, ids: list[str], cards, n_models: int) -> dict:
    """p50/p99 of one predict() for n_models candidates through the serving path (LearnedPredictor)."""
    from predictor.base import PredictionInput
    from predictor.learned import LearnedPredictor

    if not ids:
        return {}
    predictor = LearnedPredictor(bundle=bundle)
    models = sorted(cards)[:n_models]
    for m in models:
        predictor.cards.setdefault(m, cards[m])
    texts = [data.prompts[p].text for p in ids[:300]]
    predictor.predict(PredictionInput(texts[0], 1, None), models)  # warm-up
    times = []
    for text in texts:
        start = time.perf_counter()
        predictor.predict(PredictionInput(text, 1, None), models)
        times.append(time.perf_counter() - start)
    return {"predict_p50_ms": float(np.median(times) * 1e3), "predict_p99_ms": float(np.percentile(times, 99) * 1e3),
            "predict_models": len(models)}
