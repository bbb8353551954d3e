"""Training the predictor bundle from a data directory (`tamer predictor train --data DIR`).

1. Split by prompt (predictor/dataset.py); everything below sees training prompts only.
2. Model cards: each model's verbosity is measured on its calibration prompts (the shipped calibration
   set where the data has it, else a fixed 10% of its training prompts); its strength is its mean judged
   win against the strong reference.
3. Per-prompt targets: the prompt's length effect (an additive model of log2 length = model + prompt,
   fitted by alternating means), its judged-win effect, and RouteLLM's "weak as good as strong" label.
4. Linear text heads regress those targets (predictor/text_heads.py); the LightGBM models see their
   out-of-fold scores, so they learn how far to trust them on unseen prompts.
5. LightGBM quantile models (p10/p50/p90 of log2 length) on [prompt features, head scores, card], early
   stopped on a validation share of the training prompts, whose residuals then widen the interval
   (split-conformal) so that [p10, p90] covers 80%.
6. A LightGBM cross-entropy model of P(as good as the strong reference) on judged wins (soft labels) and
   RouteLLM labels, with the card's strength as the model term.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Callable

import numpy as np

from predictor.base import PredictionInput
from predictor.bundle import QUANTILES, PredictorBundle, difficulty_rows, length_feature_names, length_rows, \
    difficulty_feature_names
from predictor.calibration import card_prompts
from predictor.dataset import ROUTELLM_WEAK, LLMData, _hash_share, calibration_rank, is_test_prompt
from predictor.features import dense_features
from predictor.model_card import DEFAULT_STRENGTH, ModelCard, card_from_lengths, default_card
from predictor.text_heads import fit_text_heads

VALIDATION_SALT = "tamer-validation-v1:"
VALIDATION_SHARE = 0.15
OOF_FOLDS = 5
CALIBRATION_SHARE = 0.1
MIN_SHIPPED_CALIBRATION = 16
Progress = Callable[[str], None]
# progress() calls of one training run: the data, each fold, all prompts, each quantile, the difficulty model
TRAINING_STEPS = 1 + OOF_FOLDS + 1 + len(QUANTILES) + 1


def log2_len(tokens) -> np.ndarray:
    return np.log2(1.0 + np.asarray(tokens, dtype=np.float64))


def calibration_ids(model_prompt_ids: set[str], shipped_ids: list[str]) -> list[str]:
    """The prompts a model's card is measured on: the shipped set if the data has enough of it, else a
    fixed 10% (at least 4) of the model's prompts in calibration-hash order."""
    shipped = [p for p in shipped_ids if p in model_prompt_ids]
    if len(shipped) >= MIN_SHIPPED_CALIBRATION:
        return shipped
    ordered = sorted(model_prompt_ids, key=calibration_rank)
    return ordered[:max(4, math.ceil(CALIBRATION_SHARE * len(ordered)))]


def measure_cards(data: LLMData, prompt_ids: set[str]) -> dict[str, ModelCard]:
    """Cards of every model with lengths or judgments on `prompt_ids`."""
    shipped = [p.prompt_id for p in card_prompts()]
    lengths_by_model: dict[str, dict[str, int]] = defaultdict(dict)
    for row in data.lengths:
        if row.prompt_id in prompt_ids:
            lengths_by_model[row.model][row.prompt_id] = row.output_tokens
    wins: dict[str, list[float]] = defaultdict(list)
    for row in data.judgments:
        if row.prompt_id in prompt_ids:
            wins[row.model].append(row.win)
    cards = {}
    for model in sorted(set(lengths_by_model) | set(wins)):
        strength = float(np.mean(wins[model])) if wins.get(model) else DEFAULT_STRENGTH
        by_prompt = lengths_by_model.get(model)
        if by_prompt and len(by_prompt) >= 4:
            ids = calibration_ids(set(by_prompt), shipped)
            cards[model] = card_from_lengths(model, [by_prompt[p] for p in ids], strength=strength, source="shipped")
        else:
            base = default_card(model)
            cards[model] = ModelCard(model, base.output_log2_mean, base.output_log2_std, strength, 0, "shipped")
    return cards


def additive_effects(prompt_ids: list[str], models: list[str], values: np.ndarray, iterations: int = 20
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """values[i] ~ model_effect[models[i]] + prompt_effect[prompt_ids[i]], by alternating means."""
    p_index = {p: i for i, p in enumerate(sorted(set(prompt_ids)))}
    m_index = {m: i for i, m in enumerate(sorted(set(models)))}
    pi = np.array([p_index[p] for p in prompt_ids])
    mi = np.array([m_index[m] for m in models])
    model_eff = np.zeros(len(m_index))
    prompt_eff = np.zeros(len(p_index))
    for _ in range(iterations):
        prompt_eff = np.bincount(pi, values - model_eff[mi], len(p_index)) / np.bincount(pi, minlength=len(p_index))
        model_eff = np.bincount(mi, values - prompt_eff[pi], len(m_index)) / np.bincount(mi, minlength=len(m_index))
    shift = prompt_eff.mean()
    return ({p: float(prompt_eff[i] - shift) for p, i in p_index.items()},
            {m: float(model_eff[i] + shift) for m, i in m_index.items()})


def prompt_targets(data: LLMData, train_ids: set[str]) -> dict[str, dict[str, float]]:
    """Per-prompt regression targets of the text heads, over training prompts."""
    targets: dict[str, dict[str, float]] = {}
    rows = [r for r in data.lengths if r.prompt_id in train_ids]
    if rows:
        targets["length"], _ = additive_effects([r.prompt_id for r in rows], [r.model for r in rows],
                                                log2_len([r.output_tokens for r in rows]))
    rows_j = [r for r in data.judgments if r.prompt_id in train_ids]
    if rows_j:
        targets["judge_win"], _ = additive_effects([r.prompt_id for r in rows_j], [r.model for r in rows_j],
                                                   np.array([r.win for r in rows_j]))
    pairs = [c for c in data.correctness if c.prompt_id in train_ids]
    if pairs:
        targets["weak_ok"] = {c.prompt_id: float(c.weak_score >= c.strong_score) for c in pairs}
    return {name: t for name, t in targets.items() if len(t) >= 20}


def dense_of(text: str) -> np.ndarray:
    return dense_features(PredictionInput(prompt_text=text, num_messages=1, max_tokens=None))


def fit_heads_with_oof(texts: dict[str, str], targets: dict[str, dict[str, float]], tokenizer, embeddings,
                       progress: Progress):
    """(heads fitted on all training prompts, out-of-fold head scores per training prompt)."""
    ids = sorted(texts)
    fold = np.array([int(_hash_share("tamer-fold-v1:", p) * OOF_FOLDS) for p in ids])

    def fit(subset: np.ndarray):
        sub_ids = [ids[i] for i in subset]
        position = {p: i for i, p in enumerate(sub_ids)}
        spec = {}
        for name, target in targets.items():
            rows = [(position[p], v) for p, v in target.items() if p in position]
            spec[name] = (np.array([r for r, _ in rows]), np.array([v for _, v in rows]))
        return fit_text_heads([texts[p] for p in sub_ids], spec, tokenizer, embeddings)

    oof = np.zeros((len(ids), len(targets)), dtype=np.float32)
    for f in range(OOF_FOLDS):
        progress(f"text heads: fold {f + 1}/{OOF_FOLDS}")
        heads = fit(np.nonzero(fold != f)[0])
        held = np.nonzero(fold == f)[0]
        oof[held] = heads.score_many([texts[ids[i]] for i in held])
    progress("text heads: all training prompts")
    heads = fit(np.arange(len(ids)))
    return heads, {p: oof[i] for i, p in enumerate(ids)}


# Each training prompt has a row per model (~200 on AlpacaEval): a leaf must span many prompts, or the
# trees learn single training prompts by their features instead of what generalises across prompts.
MIN_ROWS_PER_LEAF = 500
CORRECTNESS_WEIGHT = 1.0  # weight of a RouteLLM label against a judged win in the difficulty model
DIFFICULTY_ROUNDS = 200


def _lgb_params(objective: str, rows: int, **extra) -> dict:
    min_leaf = min(MIN_ROWS_PER_LEAF, max(10, rows // 50))  # small data sets still get trees
    return dict(objective=objective, learning_rate=0.05, num_leaves=31, min_data_in_leaf=min_leaf,
                feature_fraction=0.8, bagging_fraction=0.8, bagging_freq=1, lambda_l2=1.0, verbose=-1,
                num_threads=2, seed=7, deterministic=True, force_row_wise=True, **extra)


def train_bundle(data: LLMData, tokenizer, embeddings: np.ndarray, progress: Progress = lambda _: None,
                 max_rounds: int = 400) -> PredictorBundle:
    import lightgbm as lgb

    started = time.monotonic()
    train_ids = {p for p in data.prompts if not is_test_prompt(p)}
    if not data.lengths:
        raise ValueError("the data has no output lengths (responses.jsonl.gz): nothing to train the length model on")
    progress(f"data: {data.describe()}; {len(train_ids):,} training prompts")
    cards = measure_cards(data, train_ids)
    targets = prompt_targets(data, train_ids)
    texts = {p: data.prompts[p].text for p in train_ids}
    heads, oof = fit_heads_with_oof(texts, targets, tokenizer, embeddings, progress)
    dense = {p: dense_of(texts[p]) for p in train_ids}
    features = {p: np.concatenate([dense[p], oof[p]]) for p in train_ids}
    is_val = {p: _hash_share(VALIDATION_SALT, p) < VALIDATION_SHARE for p in train_ids}

    rows = [r for r in data.lengths if r.prompt_id in train_ids]
    X = length_rows(np.stack([features[r.prompt_id] for r in rows]), [cards[r.model] for r in rows])
    y = log2_len([r.output_tokens for r in rows])
    val = np.array([is_val[r.prompt_id] for r in rows])
    names = length_feature_names(heads.names)
    length_models, val_pred = {}, {}
    for q, alpha in QUANTILES.items():
        progress(f"length model {q}: {(~val).sum():,} rows")
        fit_set = lgb.Dataset(X[~val], y[~val], feature_name=names, free_raw_data=False)
        val_set = lgb.Dataset(X[val], y[val], reference=fit_set)
        params = _lgb_params("quantile", int((~val).sum()), alpha=alpha)
        booster = lgb.train(params, fit_set, num_boost_round=max_rounds, valid_sets=[val_set],
                            callbacks=[lgb.early_stopping(30, verbose=False)])
        length_models[q] = booster
        val_pred[q] = booster.predict(X[val], num_threads=2)
    # split-conformal: widen each tail so that 10% of validation lengths fall below p10 and 10% above p90
    widen_low = float(max(0.0, np.quantile(val_pred["p10"] - y[val], 0.9)))
    widen_high = float(max(0.0, np.quantile(y[val] - val_pred["p90"], 0.9)))

    progress("difficulty model")
    d_feats, d_cards, d_labels, d_weights = [], [], [], []
    for row in data.judgments:
        if row.prompt_id in train_ids:
            d_feats.append(features[row.prompt_id]); d_cards.append(cards[row.model]); d_labels.append(row.win)
            d_weights.append(1.0)
    weak_card = cards.get(ROUTELLM_WEAK, default_card(ROUTELLM_WEAK))
    for pair in data.correctness:
        if pair.prompt_id in train_ids:
            d_feats.append(features[pair.prompt_id]); d_cards.append(weak_card)
            d_labels.append(float(pair.weak_score >= pair.strong_score)); d_weights.append(CORRECTNESS_WEIGHT)
    if not d_labels:
        raise ValueError("the data has no judgments or correctness labels: nothing to train the difficulty model on")
    Xd = difficulty_rows(np.stack(d_feats), d_cards)
    difficulty = lgb.train(_lgb_params("cross_entropy", len(d_labels)), lgb.Dataset(Xd, np.array(d_labels),
                           weight=np.array(d_weights), feature_name=difficulty_feature_names(heads.names)),
                           num_boost_round=DIFFICULTY_ROUNDS)

    manifest = {
        "trained_on": data.describe(),
        "training_prompts": len(train_ids),
        "split": "sha256('tamer-split-v1:' + prompt_id): 20% of prompts held out for test",
        "length_rounds": {q: b.best_iteration or b.current_iteration() for q, b in length_models.items()},
        "train_s": round(time.monotonic() - started, 1),
    }
    return PredictorBundle(heads=heads, length_models=length_models, difficulty_model=difficulty, cards=cards,
                           interval_widen_log2=(widen_low, widen_high), manifest=manifest)
