"""Predictor benchmark: train on the shared LLM data, evaluate on its test split, time predict().

    python bench/predictor.py                 # train a fresh bundle (about 2 minutes), evaluate it
    python bench/predictor.py --shipped       # evaluate the shipped bundle only
    python bench/predictor.py --rich          # also measure the richer path: SmolLM2 hidden states
    python bench/predictor.py --shipped --rich-difficulty --json bench/results/predictor_rich_difficulty.json
    python bench/predictor.py --data DIR      # another directory in the same format

Writes bench/results/predictor.json: the metrics of `tamer predictor eval` (length_kendall_tau,
length_mae_log2, length_p10_p90_coverage, cpt50_*, apgr_*, predict_p50_ms, ...) with the baselines.
The richer path (--rich) runs SmolLM2-135M over each prompt (transformers, CPU) and fits a ridge on the
mean of a middle layer's hidden states and the last token's final hidden state; it reports its Kendall tau
alone and averaged with the fast path's length head, and its latency per prompt. It also measures the
cheapest contextual encoders: the model's first 1-6 layers over the prompt's first 16-64 tokens, mean-pooled
(the latency for 4 layers and 16 tokens). For difficulty (--rich-difficulty, also part of --rich) it fits a
logistic regression on SmolLM2's hidden states and its own A-D answer distribution to RouteLLM's labels.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "llm"
RESULTS = ROOT / "bench" / "results" / "predictor.json"


def _alpaca_length_task(data):
    """The AlpacaEval prompts with lengths, their training targets (the additive prompt effect on log2 length,
    fitted on training prompts only), and a scorer: mean Kendall tau per model on the test prompts."""
    import numpy as np

    from predictor import metrics
    from predictor.dataset import is_test_prompt
    from predictor.training import additive_effects, log2_len

    rows = [r for r in data.lengths if data.prompts[r.prompt_id].dataset == "alpaca_eval"]
    ids = sorted({r.prompt_id for r in rows})
    test = np.array([is_test_prompt(p) for p in ids])
    train_rows = [r for r in rows if not is_test_prompt(r.prompt_id)]
    effect, _ = additive_effects([r.prompt_id for r in train_rows], [r.model for r in train_rows],
                                 log2_len([r.output_tokens for r in train_rows]))
    target = np.array([effect.get(p, 0.0) for p in ids])
    test_rows = [r for r in rows if is_test_prompt(r.prompt_id)]
    position = {p: i for i, p in enumerate(ids)}
    models = [r.model for r in test_rows]
    true = np.array([r.output_tokens for r in test_rows], dtype=float)

    def tau(score: np.ndarray) -> float:
        """score: one number per prompt of `ids`."""
        return metrics.mean_kendall_tau_by_group(models, np.array([score[position[r.prompt_id]] for r in test_rows]),
                                                 true)[0]

    return ids, test, target, tau


def _ridge_scores(features, test, target, alpha: float):
    """Ridge on standardised features, fitted on the training prompts, scored on all."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[~test])
    return Ridge(alpha=alpha).fit(scaler.transform(features[~test]), target[~test]).predict(scaler.transform(features))


def _with_fast_head(data, bundle, ids, tau, scores) -> dict:
    import numpy as np

    fast = bundle.heads.score_many([data.prompts[p].text for p in ids])[:, 0]
    z = lambda a: (a - a.mean()) / a.std()
    return {"fast_head_length_kendall_tau": tau(fast), "plus_fast_head_length_kendall_tau": tau(z(scores) + z(fast))}


def rich_path(data, bundle, layer: int = 18) -> dict:
    """Tau of a ridge on SmolLM2 hidden states (alpaca-style prompts with lengths), and its latency."""
    import numpy as np
    import torch
    import transformers

    from backends.engine.bundled import bundled_model_dir

    torch.set_num_threads(2)
    model_dir = bundled_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids, test, target, tau = _alpaca_length_task(data)
    features, seconds = [], []
    with torch.no_grad():
        for pid in ids:
            start = time.perf_counter()
            chat = tokenizer.apply_chat_template([{"role": "user", "content": data.prompts[pid].text}],
                                                 add_generation_prompt=True, return_tensors="pt")
            input_ids = chat if torch.is_tensor(chat) else chat["input_ids"]
            hidden = model(input_ids, output_hidden_states=True).hidden_states
            features.append(np.concatenate([hidden[layer][0].mean(0).numpy(), hidden[-1][0, -1].numpy()]))
            seconds.append(time.perf_counter() - start)
    rich = _ridge_scores(np.stack(features), test, target, alpha=3000.0)
    mixed = _with_fast_head(data, bundle, ids, tau, rich)
    return {"layer": layer, "prompts": len(ids), "rich_length_kendall_tau": tau(rich),
            "fast_head_length_kendall_tau": mixed["fast_head_length_kendall_tau"],
            "rich_plus_fast_length_kendall_tau": mixed["plus_fast_head_length_kendall_tau"],
            "rich_ms_per_prompt_p50": float(np.median(seconds) * 1e3)}


def truncated_path(data, bundle, layers=(1, 2, 3, 4, 6), tokens=(16, 32, 64), headline=(4, 16)) -> dict:
    """The cheapest contextual encoders: SmolLM2's first L layers over the prompt's first K tokens (no chat
    template), mean-pooled, under a ridge; tau for each (L, K), the headline one also with the fast head, and
    the headline one's latency. One forward pass per prompt serves every (L, K): attention is causal, so the
    first K positions do not depend on the tokens after them."""
    import numpy as np
    import torch
    import transformers

    from backends.engine.bundled import bundled_model_dir

    torch.set_num_threads(2)
    model_dir = bundled_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    transformers.logging.set_verbosity_error()  # the layers left out are reported as unused weights

    def encoder(num_layers: int):
        return transformers.AutoModel.from_pretrained(model_dir, dtype=torch.float32,
                                                      num_hidden_layers=num_layers).eval()

    def token_ids(pid: str, num_tokens: int):
        encoded = tokenizer(data.prompts[pid].text, add_special_tokens=False, return_tensors="pt")
        return encoded["input_ids"][:, :num_tokens]

    ids, test, target, tau = _alpaca_length_task(data)
    sweep = encoder(max(layers))
    features: dict[tuple[int, int], list] = {(n, k): [] for n in layers for k in tokens}
    with torch.no_grad():
        for pid in ids:
            hidden = sweep(token_ids(pid, max(tokens)), output_hidden_states=True).hidden_states  # before final norm
            for n, k in features:
                features[n, k].append(hidden[n][0, :k].mean(0).numpy())
        fast_encoder, seconds = encoder(headline[0]), []
        for pid in ids:
            start = time.perf_counter()
            fast_encoder(token_ids(pid, headline[1]), output_hidden_states=True).hidden_states[headline[0]][0].mean(0)
            seconds.append(time.perf_counter() - start)
    scores = {key: _ridge_scores(np.stack(rows), test, target, alpha=1000.0) for key, rows in features.items()}
    return {"layers": headline[0], "tokens": headline[1], "prompts": len(ids),
            "truncated_length_kendall_tau": tau(scores[headline]),
            **_with_fast_head(data, bundle, ids, tau, scores[headline]),
            "truncated_ms_per_prompt_p50": float(np.median(seconds) * 1e3),
            "sweep_length_kendall_tau": {f"{n} layers, {k} tokens": tau(score) for (n, k), score in scores.items()}}


def _option_letter_ids(tokenizer) -> list[list[int]]:
    """For each of A-D, the single-token spellings of that letter ("A", " A") in the tokenizer."""
    out = []
    for letter in "ABCD":
        ids = {tokenizer.encode(form, add_special_tokens=False)[0] for form in (letter, " " + letter)
               if len(tokenizer.encode(form, add_special_tokens=False)) == 1}
        out.append(sorted(ids))
    return out


def rich_difficulty(data, bundle, layer: int = 18, train_per_dataset: int = 1200, test_per_dataset: int = 1000,
                    seed: int = 0) -> dict:
    """Does SmolLM2's reading of a prompt say whether Mixtral answers it as well as GPT-4 (RouteLLM labels)?

    Per prompt, one forward pass over the chat-templated prompt gives: the mean of layer `layer`'s hidden
    states, the last token's final hidden state, and (MMLU) the model's own answer distribution over A-D
    at the first answer token (its entropy and top probability). A logistic regression on them is fitted on
    up to `train_per_dataset` training prompts of each RouteLLM dataset and scored on up to `test_per_dataset`
    of its test prompts (fixed samples; a forward pass costs a fifth of a second here): APGR and CPT(50%)
    alone, beside the shipped fast path on the same prompts and the rank average of the two.
    """
    import numpy as np
    import torch
    import transformers
    from scipy.stats import rankdata
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    from backends.engine.bundled import bundled_model_dir
    from predictor import metrics
    from predictor.bundle import difficulty_rows
    from predictor.dataset import ROUTELLM_WEAK, is_test_prompt
    from predictor.model_card import default_card
    from predictor.training import dense_of

    torch.set_num_threads(2)
    model_dir = bundled_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    letters = _option_letter_ids(tokenizer)
    weak_card = bundle.cards.get(ROUTELLM_WEAK, default_card(ROUTELLM_WEAK))
    rng = np.random.default_rng(seed)

    def read(pid: str) -> np.ndarray:
        chat = tokenizer.apply_chat_template([{"role": "user", "content": data.prompts[pid].text}],
                                             add_generation_prompt=True, return_tensors="pt")
        input_ids = chat if torch.is_tensor(chat) else chat["input_ids"]
        out = model(input_ids, output_hidden_states=True)
        probs = torch.softmax(out.logits[0, -1].double(), dim=-1)
        option = np.array([float(probs[ids].sum()) for ids in letters])
        share = option / max(option.sum(), 1e-12)
        entropy = float(-(share * np.log(np.maximum(share, 1e-12))).sum())
        return np.concatenate([out.hidden_states[layer][0].mean(0).numpy(), out.hidden_states[-1][0, -1].numpy(),
                               [entropy, float(share.max()), float(option.sum())]])

    result: dict = {"layer": layer}
    seconds = []
    for dataset, short in (("routellm_mmlu", "mmlu"), ("routellm_gsm8k", "gsm8k")):
        pairs = [c for c in data.correctness if c.dataset == dataset]
        train = [c for c in pairs if not is_test_prompt(c.prompt_id)]
        test = [c for c in pairs if is_test_prompt(c.prompt_id)]
        if len(train) < 50 or len(test) < 10:
            continue
        train = [train[i] for i in sorted(rng.choice(len(train), min(train_per_dataset, len(train)), replace=False))]
        test = [test[i] for i in sorted(rng.choice(len(test), min(test_per_dataset, len(test)), replace=False))]
        with torch.no_grad():
            features = {}
            for c in train + test:
                start = time.perf_counter()
                features[c.prompt_id] = read(c.prompt_id)
                seconds.append(time.perf_counter() - start)
        X_train = np.stack([features[c.prompt_id] for c in train])
        y_train = np.array([float(c.weak_score >= c.strong_score) for c in train])
        scaler = StandardScaler().fit(X_train)
        classifier = LogisticRegressionCV(Cs=[1e-3, 1e-2, 1e-1], cv=5, scoring="roc_auc", max_iter=2000)
        with warnings.catch_warnings():  # scikit-learn 1.8 announces changes to defaults this does not depend on
            warnings.simplefilter("ignore", FutureWarning)
            classifier.fit(scaler.transform(X_train), y_train)  # its strength chosen on the training prompts
        rich = classifier.predict_proba(scaler.transform(np.stack([features[c.prompt_id] for c in test])))[:, 1]
        texts = [data.prompts[c.prompt_id].text for c in test]
        prompt_rows = bundle.prompt_features(np.stack([dense_of(t) for t in texts]), texts)
        fast = bundle.predict_quality(difficulty_rows(prompt_rows, [weak_card] * len(test)))
        weak = np.array([c.weak_score for c in test])
        strong = np.array([c.strong_score for c in test])
        entropy_only = -np.array([features[c.prompt_id][-3] for c in test])  # confident small model: easy
        for name, score in (("rich", rich), ("fast", fast), ("rich_plus_fast", rankdata(rich) + rankdata(fast)),
                            ("small_model_confidence", entropy_only)):
            curve = metrics.pgr_curve(score, weak, strong)
            result[f"{name}_apgr_{short}"] = metrics.apgr(curve)
            result[f"{name}_cpt50_{short}"] = metrics.cpt(curve, 0.5)
        result[f"train_prompts_{short}"], result[f"test_prompts_{short}"] = len(train), len(test)
    result["rich_ms_per_prompt_p50"] = float(np.median(seconds) * 1e3) if seconds else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data directory (default: %(default)s)")
    parser.add_argument("--shipped", action="store_true", help="evaluate the shipped bundle, do not train")
    parser.add_argument("--rich", action="store_true", help="also measure the SmolLM2 hidden-state paths")
    parser.add_argument("--rich-difficulty", action="store_true",
                        help="also measure SmolLM2's reading of RouteLLM prompts for difficulty (part of --rich)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    from predictor.bundle import PredictorBundle
    from predictor.dataset import load_llm_data
    from predictor.evaluate import evaluate_bundle
    from predictor.learned import DEFAULT_BUNDLE_DIR
    from predictor.training import train_bundle
    from tamer.predictor_commands import print_report, token_embeddings

    data = load_llm_data(args.data)
    print(f"data: {data.describe()}")
    if args.shipped:
        bundle, train_s = PredictorBundle.load(DEFAULT_BUNDLE_DIR), None
    else:
        tokenizer, embeddings = token_embeddings()
        start = time.monotonic()
        bundle = train_bundle(data, tokenizer, embeddings, progress=lambda m: print(f"  {m}", flush=True))
        train_s = time.monotonic() - start
        with tempfile.TemporaryDirectory() as tmp:  # evaluate what a user would load: a saved bundle
            bundle.save(Path(tmp))
            bundle = PredictorBundle.load(Path(tmp))
    result = evaluate_bundle(bundle, data)
    print_report(result)
    result.update(benchmark="predictor", train_s=train_s, shipped_bundle=args.shipped,
                  machine={"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                  command="python bench/predictor.py" + (" --shipped" if args.shipped else "")
                  + (" --rich" if args.rich else "") + (" --rich-difficulty" if args.rich_difficulty else ""))
    if args.rich:
        result["rich_path"] = rich_path(data, bundle)
        result["truncated_path"] = truncated_path(data, bundle)
    if args.rich or args.rich_difficulty:
        result["rich_difficulty"] = rich_difficulty(data, bundle)
    rich_keys = [k for k in ("rich_path", "truncated_path", "rich_difficulty") if k in result]
    if rich_keys:
        print(json.dumps({k: result[k] for k in rich_keys}, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
