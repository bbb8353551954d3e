"""Fit the performance model's efficiencies to measured profiles and report its error (MAPE).

    python bench/perf_model_fit.py [--data ../shared/data/cloud] [--no-write]

1. Vidur per-layer op times (A100, H100, A40; 9 models; TP 1-8; 1..4096+ tokens): per GPU, fit
   compute_frac, bandwidth_frac (both <= 1) and overhead_s_per_layer (>= 0) by least squares on log time.
2. TensorRT-LLM published max-load output throughput (Llama-3.1-8B / 3.3-70B / 405B, FP8, H100/H200):
   predicted from the fitted model with a continuous-batching steady state; one whole-step factor
   step_scale >= 1 (the serving engine's overhead over its kernels) is fitted as the median ratio.
Writes cost_model/data/perf_efficiency.json (unless --no-write) and bench/results/perf_model.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from cost_model.catalog import DATA_DIR, ModelSpec, get_gpu, get_model
from cost_model.perf import ROOFLINE, Efficiency, PerfModel, layer_flops_and_bytes

ROOT = Path(__file__).resolve().parents[1]
VIDUR_GPU = {"a100": "A100-80GB", "h100": "H100", "a40": "A40"}
OPS = ["input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
       "mlp_up_proj", "mlp_act", "mlp_down_proj", "add"]
BORROW = {"H200": "H100", "B200": "H100", "A100": "A100-80GB", "L40S": "A40", "L4": "A40", "A10G": "A40",
          "T4": "A40", "T4g": "A40", "V100": "A40", "V100-32GB": "A40"}


def vidur_rows(data: Path) -> list[dict]:
    rows = []
    with open(data / "profiles" / "vidur" / "vidur_mlp_ops_median_ms.csv") as f:
        for r in csv.DictReader(f):
            h, nh, nkv = int(r["n_embd"]), int(r["n_head"]), int(r["n_kv_head"])
            inter = int(r["n_expanded_embd"])
            if r["use_gated_mlp"] != "True":
                inter = inter * 2 // 3  # two matrices instead of three
            spec = ModelSpec(r["model"], r["model"], 1.0, 1.0, 1, h, nh, nkv, h // nh, inter, int(r["vocab_size"]))
            rows.append({"gpu": VIDUR_GPU[r["gpu"]], "model": spec, "tp": int(r["num_tensor_parallel_workers"]),
                         "num_tokens": int(r["num_tokens"]), "ms": sum(float(r[f"{op}_ms"] or 0) for op in OPS)})
    return rows


def layer_s(row: dict, eff: Efficiency) -> float:
    gpu = get_gpu(row["gpu"])
    flops, nbytes = layer_flops_and_bytes(row["model"], row["num_tokens"], row["tp"])
    return max(flops / (gpu.bf16_dense_tflops * 1e12 * eff.compute_frac),
               nbytes / (gpu.mem_bandwidth_gb_per_s * 1e9 * eff.bandwidth_frac)) + eff.overhead_s_per_layer


def fit_gpu(rows: list[dict]) -> Efficiency:
    measured = np.array([r["ms"] / 1e3 for r in rows])
    gpu = get_gpu(rows[0]["gpu"])
    work = np.array([layer_flops_and_bytes(r["model"], r["num_tokens"], r["tp"]) for r in rows])
    compute_s = work[:, 0] / (gpu.bf16_dense_tflops * 1e12)
    memory_s = work[:, 1] / (gpu.mem_bandwidth_gb_per_s * 1e9)

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = np.maximum(compute_s / x[0], memory_s / x[1]) + x[2] * 1e-6
        return np.log(pred) - np.log(measured)

    sol = least_squares(residuals, x0=[0.6, 0.7, 20.0], bounds=([0.01, 0.01, 0.0], [1.0, 1.0, 500.0]))
    return Efficiency(float(sol.x[0]), float(sol.x[1]), float(sol.x[2]) * 1e-6)


def mape(pred: list[float], true: list[float]) -> float:
    return float(np.mean(np.abs(np.array(pred) - np.array(true)) / np.array(true)) * 100)


LLAMA_405B = ModelSpec("llama-3.1-405b", "meta-llama/Llama-3.1-405B-Instruct", 405.9, 405.9, 126, 16384, 128, 8, 128,
                       53248, 128256)
TRT_MODEL = {"Llama-3.1-8B-Instruct": "llama-3.1-8b", "Llama-3.3-70B-Instruct": "llama-3.1-70b"}
MAX_NUM_TOKENS = 8192  # tokens per step (chunked prefill budget)
MAX_BATCH = 2048


def serving_throughput(perf: PerfModel, isl: int, osl: int, roofline: bool = False) -> float:
    """Output tokens/s of one replica at saturation: B sequences in flight, prefill in chunks between decode steps."""
    eff = ROOFLINE if roofline else perf.efficiency
    batch = max(1, min(MAX_BATCH, perf.kv_capacity_tokens // (isl + osl)))
    prompt_tokens = batch * isl
    chunks = max(1, math.ceil(prompt_tokens / MAX_NUM_TOKENS))
    chunk = prompt_tokens / chunks
    prefill = chunks * perf.step_s(chunk, chunk * isl, efficiency=eff)
    decode = osl * perf.step_s(0, 0, batch, batch * (isl + osl / 2), efficiency=eff)
    return batch * osl / (prefill + decode)


def trtllm_rows(data: Path, fitted: dict[str, Efficiency]) -> list[dict]:
    out = []
    with open(data / "profiles" / "trtllm" / "trtllm_perf_overview_throughput.csv") as f:
        for r in csv.DictReader(f):
            if r["gpu"] not in ("H100", "H200") or r["precision"] != "FP8":
                continue
            base = LLAMA_405B if "405B" in r["model"] else get_model(TRT_MODEL[r["model"]])
            model = dataclasses.replace(base, dtype="fp8")
            gpu = get_gpu(r["gpu"])
            perf = PerfModel(model, gpu, int(r["tp"]), fitted[BORROW.get(gpu.name, gpu.name)])
            if not perf.fits:
                continue
            isl, osl = int(r["isl"]), int(r["osl"])
            out.append({"model": r["model"], "gpu": r["gpu"], "tp": int(r["tp"]), "isl": isl, "osl": osl,
                        "measured_tok_s": float(r["total_output_tokens_per_s"]),
                        "predicted_tok_s": serving_throughput(perf, isl, osl),
                        "roofline_tok_s": serving_throughput(perf, isl, osl, roofline=True)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cloud")
    parser.add_argument("--no-write", action="store_true", help="do not overwrite cost_model/data/perf_efficiency.json")
    args = parser.parse_args()
    rows = vidur_rows(args.data)
    fitted, report = {}, {"vidur": {}, "trtllm": {}}
    print(f"{'gpu':<10} {'rows':>6} {'compute':>8} {'bandwidth':>9} {'ovh us':>7} {'MAPE %':>7} {'above roofline':>14}")
    all_pred, all_true = [], []
    for gpu in sorted({r["gpu"] for r in rows}):
        sub = [r for r in rows if r["gpu"] == gpu]
        eff = fit_gpu(sub)
        fitted[gpu] = eff
        pred = [layer_s(r, eff) * 1e3 for r in sub]
        true = [r["ms"] for r in sub]
        above = sum(layer_s(r, ROOFLINE) * 1e3 > p + 1e-12 for r, p in zip(sub, pred))
        all_pred += pred
        all_true += true
        report["vidur"][gpu] = {"rows": len(sub), "mape_pct": mape(pred, true), **dataclasses.asdict(eff)}
        print(f"{gpu:<10} {len(sub):>6} {eff.compute_frac:>8.3f} {eff.bandwidth_frac:>9.3f} "
              f"{eff.overhead_s_per_layer * 1e6:>7.1f} {mape(pred, true):>7.1f} {above:>14}")
    report["vidur"]["all"] = {"rows": len(all_true), "mape_pct": mape(all_pred, all_true)}
    trt = trtllm_rows(args.data, fitted)
    raw_mape = mape([r["predicted_tok_s"] for r in trt], [r["measured_tok_s"] for r in trt])
    step_scale = max(1.0, float(np.median([r["predicted_tok_s"] / r["measured_tok_s"] for r in trt])))
    print(f"\nTensorRT-LLM with kernel efficiencies only: MAPE {raw_mape:.1f}%; fitted step_scale {step_scale:.3f}")
    fitted = {g: dataclasses.replace(e, step_scale=step_scale) for g, e in fitted.items()}
    trt = trtllm_rows(args.data, fitted)
    trt_mape = mape([r["predicted_tok_s"] for r in trt], [r["measured_tok_s"] for r in trt])
    print(f"\nTensorRT-LLM max-load output throughput ({len(trt)} rows, FP8 H100/H200): MAPE {trt_mape:.1f}%")
    for r in trt:
        print(f"  {r['model']:<24} {r['gpu']} tp{r['tp']} {r['isl']:>5}/{r['osl']:<5} measured {r['measured_tok_s']:>7.0f}"
              f"  predicted {r['predicted_tok_s']:>7.0f}  roofline {r['roofline_tok_s']:>7.0f}")
    report["trtllm"] = {"rows": trt, "mape_pct": trt_mape, "mape_pct_before_step_scale": raw_mape,
                        "step_scale": step_scale}
    report["profile_mape"] = {"vidur_layer_ops_pct": report["vidur"]["all"]["mape_pct"], "trtllm_throughput_pct": trt_mape}
    print(f"\nprofile_mape: Vidur layer ops {report['vidur']['all']['mape_pct']:.1f}%, TensorRT-LLM {trt_mape:.1f}%")
    if not args.no_write:
        table = {"source": "bench/perf_model_fit.py on Vidur profiles (microsoft/vidur @ 7d47513, MIT)",
                 "default": "A40", "step_scale": step_scale,
                 "fitted": {g: {k: v for k, v in dataclasses.asdict(e).items() if k != "step_scale"}
                            for g, e in fitted.items()}, "borrow": BORROW}
        (DATA_DIR / "perf_efficiency.json").write_text(json.dumps(table, indent=1) + "\n")
    out = ROOT / "bench" / "results" / "perf_model.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
