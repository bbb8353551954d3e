"""Predictor benchmark: train on the shared LLM data, evaluate on its test split, time predict().

    python bench/predictor.py                 # train a fresh bundle (about 2 minutes), evaluate it
    python bench/predictor.py --shipped       # evaluate the shipped bundle only
    python bench/predictor.py --rich          # also measure the richer path: SmolLM2 hidden states
    python bench/predictor.py --data DIR      # another directory in the same format

Writes bench/results/predictor.json: the metrics of `tamer predictor eval` (length_kendall_tau,
length_mae_log2, length_p10_p90_coverage, cpt50_*, apgr_*, predict_p50_ms, ...) with the baselines.
The richer path (--rich) runs SmolLM2-135M over each prompt (transformers, CPU) and fits a ridge on the
mean of a middle layer's hidden states and the last token's final hidden state; it reports its Kendall tau
alone and averaged with the fast path's length head, and its latency per prompt.
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


def rich_path(data, bundle, layer: int = 18) -> dict:
    """Tau of a ridge on SmolLM2 hidden states (alpaca-style prompts with lengths), and its latency."""
    import numpy as np
    import torch
    import transformers
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    from backends.engine.bundled import bundled_model_dir
    from predictor import metrics
    from predictor.dataset import is_test_prompt
    from predictor.training import additive_effects, log2_len

    torch.set_num_threads(2)
    model_dir = bundled_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = [r for r in data.lengths if data.prompts[r.prompt_id].dataset == "alpaca_eval"]
    ids = sorted({r.prompt_id for r in rows})
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
    X = np.stack(features)
    test = np.array([is_test_prompt(p) for p in ids])
    train_rows = [r for r in rows if not is_test_prompt(r.prompt_id)]
    effect, _ = additive_effects([r.prompt_id for r in train_rows], [r.model for r in train_rows],
                                 log2_len([r.output_tokens for r in train_rows]))
    target = np.array([effect.get(p, 0.0) for p in ids])
    scaler = StandardScaler().fit(X[~test])
    ridge = Ridge(alpha=3000.0).fit(scaler.transform(X[~test]), target[~test])
    rich = dict(zip(ids, ridge.predict(scaler.transform(X))))
    fast = dict(zip(ids, bundle.heads.score_many([data.prompts[p].text for p in ids])[:, 0]))
    z = lambda d: {k: (v - np.mean(list(d.values()))) / np.std(list(d.values())) for k, v in d.items()}
    rich_z, fast_z = z(rich), z(fast)
    test_rows = [r for r in rows if is_test_prompt(r.prompt_id)]
    models = [r.model for r in test_rows]
    true = np.array([r.output_tokens for r in test_rows], dtype=float)
    tau = lambda score: metrics.mean_kendall_tau_by_group(models, np.array([score[r.prompt_id] for r in test_rows]),
                                                          true)[0]
    return {"layer": layer, "prompts": len(ids), "rich_length_kendall_tau": tau(rich),
            "fast_head_length_kendall_tau": tau(fast),
            "rich_plus_fast_length_kendall_tau": tau({p: rich_z[p] + fast_z[p] for p in ids}),
            "rich_ms_per_prompt_p50": float(np.median(seconds) * 1e3)}


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
        print(json.dumps(result["rich_path"], indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
