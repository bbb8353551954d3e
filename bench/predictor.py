"""Predictor benchmark: train on the shared LLM data, evaluate on its test split, time predict().

    python bench/predictor.py                 # train a fresh bundle (about 2 minutes), evaluate it
    python bench/predictor.py --shipped       # evaluate the shipped bundle only
    python bench/predictor.py --rich          # also measure the richer path: SmolLM2 hidden states
    python bench/predictor.py --data DIR      # another directory in the same format

Writes bench/results/predictor.json: the metrics of `tamer predictor eval` (length_kendall_tau,
length_mae_log2, length_p10_p90_coverage, cpt50_*, apgr_*, predict_p50_ms, ...) with the baselines.
The richer path (--rich) runs SmolLM2-135M over each prompt (transformers, CPU) and fits a ridge on the
mean of a middle layer's hidden states and the last token's final hidden state; it reports its Kendall tau
alone and averaged with the fast path's length head, and its latency per prompt. It also measures the
cheapest contextual encoders: the model's first 1-6 layers over the prompt's first 16-64 tokens, mean-pooled
(the latency for 4 layers and 16 tokens).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data directory (default: %(default)s)")
    parser.add_argument("--shipped", action="store_true", help="evaluate the shipped bundle, do not train")
    parser.add_argument("--rich", action="store_true", help="also measure the SmolLM2 hidden-state path")
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
                  + (" --rich" if args.rich else ""))
    if args.rich:
        result["rich_path"] = rich_path(data, bundle)
        result["truncated_path"] = truncated_path(data, bundle)
        print(json.dumps({k: result[k] for k in ("rich_path", "truncated_path")}, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
