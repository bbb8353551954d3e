"""Engine throughput: tamer's engine against Hugging Face `generate` (and llama.cpp when installed), one run.

Workload: real prompts (AlpacaEval instructions from the shared LLM data), each with a max_tokens drawn
from the real response lengths of the same prompt (capped), greedy, SmolLM2-135M-Instruct. Every system
writes exactly each request's max_tokens tokens (EOS is ignored), so useful output is identical and
output tokens/s compares like with like:
  1. tamer: all requests submitted at once (continuous batching, paged KV cache);
  2. HF generate in static batches of the same size (left padding; a batch runs until its longest
     request is done, the extra tokens are not counted);
  3. HF generate one request at a time (on a subset; a rate is a rate);
  4. llama.cpp (llama-cpp-python on the same GGUF file), one request at a time, when installed.
Also times the model's weight matmuls alone at tamer's mean decode batch size: the compute ceiling of
this machine for this model (cpu_ceiling_tok_s: decode only; workload_ceiling_tok_s: the prompt tokens'
matmuls counted too, since the engine must prefill them), and tamer's fraction of each.

    python bench/engine.py [--data ../shared/data/llm] [--num-prompts 64] [--device cpu] [--dtype auto]
    python bench/engine.py --dtype bfloat16 --out bench/results/engine_bf16.json
    python bench/engine.py --kv-cache-dtype bfloat16 --out bench/results/engine_fp32_bf16kv.json
    python bench/engine.py --quick      # a smoke run, under a minute on CPU
tamer and HF run in the same dtype (--dtype; auto is float32 on CPU, bfloat16 on CUDA).
Writes bench/results/engine.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load_workload(data_dir: Path, num_prompts: int, max_tokens_cap: int, seed: int) -> list[tuple[str, int]]:
    """(instruction, max_tokens): AlpacaEval prompts, max_tokens = a random real response's length, capped."""
    prompts = {}
    with gzip.open(data_dir / "prompts.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["dataset"] == "alpaca_eval":
                prompts[row["prompt_id"]] = row["text"]
    lengths: dict[str, list[int]] = {}
    with gzip.open(data_dir / "responses.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["prompt_id"] in prompts and not row["output_empty"]:
                lengths.setdefault(row["prompt_id"], []).append(int(row["output_tokens"]))
    rng = random.Random(seed)
    ids = sorted(p for p in prompts if p in lengths)
    chosen = rng.sample(ids, num_prompts)
    return [(prompts[p], max(1, min(max_tokens_cap, rng.choice(lengths[p])))) for p in chosen]


def run_tamer(engine, prompt_ids: list[list[int]], max_tokens: list[int]) -> dict:
    from backends.engine.sampling_params import SamplingParams

    started = time.perf_counter()
    for i, (ids, n) in enumerate(zip(prompt_ids, max_tokens)):
        engine.add_request(f"r{i}", ids, SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True))
    first_token_s: dict[str, float] = {}
    last_token_s: dict[str, float] = {}
    itl_ms: list[float] = []
    num_tokens = 0
    batch_sizes = []
    while engine.has_unfinished():
        outputs = engine.step()
        now = time.perf_counter()
        if outputs:
            batch_sizes.append(len(outputs))
        for out in outputs:
            num_tokens += len(out.new_token_ids)
            if out.request_id in last_token_s:
                itl_ms.append((now - last_token_s[out.request_id]) * 1000)
            else:
                first_token_s[out.request_id] = now - started
            last_token_s[out.request_id] = now
    seconds = time.perf_counter() - started
    ttft_ms = [s * 1000 for s in first_token_s.values()]
    return {
        "tok_s": num_tokens / seconds, "seconds": seconds, "output_tokens": num_tokens,
        "ttft_ms_p50": percentile(ttft_ms, 50), "ttft_ms_p99": percentile(ttft_ms, 99),
        "itl_ms_p50": percentile(itl_ms, 50), "itl_ms_p99": percentile(itl_ms, 99),
        "mean_decode_batch": statistics.fmean(batch_sizes) if batch_sizes else 0.0,
        "num_preemptions": engine.stats()["num_preemptions"],
    }


def run_hf(hf_model, tokenizer, prompt_ids: list[list[int]], max_tokens: list[int], batch_size: int) -> dict:
    """HF generate in static batches of batch_size (left padding); counts each request's own max_tokens."""
    import torch

    pad_id = tokenizer.eos_token_ids[0]
    useful = 0
    started = time.perf_counter()
    for start in range(0, len(prompt_ids), batch_size):
        batch = prompt_ids[start:start + batch_size]
        caps = max_tokens[start:start + batch_size]
        width = max(len(p) for p in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        with torch.inference_mode():
            hf_model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max(caps),
                              min_new_tokens=max(caps), do_sample=False, pad_token_id=pad_id)
        useful += sum(caps)
    seconds = time.perf_counter() - started
    return {"tok_s": useful / seconds, "seconds": seconds, "output_tokens": useful, "num_requests": len(prompt_ids)}


def run_llamacpp(gguf_path: Path, prompt_texts: list[str], max_tokens: list[int], eos_id: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(gguf_path), n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
    useful = 0
    started = time.perf_counter()
    for text, n in zip(prompt_texts, max_tokens):
        out = llm.create_completion(text, max_tokens=n, temperature=0.0, logit_bias={eos_id: -1e9})
        useful += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    return {"tok_s": useful / seconds, "seconds": seconds, "output_tokens": useful, "num_requests": len(prompt_texts)}


def run_llamacpp_isolated(gguf_path: Path, prompt_texts: list[str], max_tokens: list[int], eos_id: int) -> dict | None:
    """run_llamacpp in a child process, so that a crash in llama.cpp's native code (seen on one Intel Xeon VM: a
    general protection fault inside libggml-cpu) is reported in the results instead of killing the benchmark
    before it writes them. None when llama-cpp-python is not installed; {"error": ...} when its process died."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(run_llamacpp, gguf_path, prompt_texts, max_tokens, eos_id).result()
    except BrokenProcessPool as exc:
        return {"error": f"llama.cpp's process died ({exc}): its native code crashed on this machine"}


def matmul_ceiling(model, batch_size: int, repeats: int = 5) -> dict:
    """Weight-matmul time of one step at batch_size rows: the decoder body's and the LM head's, separately.

    Each weight is timed both through torch's plain linear (MKL on CPU) and, on CPU, through oneDNN with the
    weight prepacked (kernels/cpu/packed_linear.py, the engine's CPU path); the ceiling is the faster of the two,
    so it is the best this machine does with either library, not the engine's own path by construction."""
    import torch

    from kernels.cpu.packed_linear import can_pack, pack_weight, packed_linear

    device = model.lm_head.weight.device
    body = [m.weight for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != "lm_head"]
    head = model.lm_head.weight

    def timed(weights: list, run) -> float:
        inputs = {w.shape[1]: torch.randn(batch_size, w.shape[1], device=device, dtype=w.dtype) for w in weights}
        with torch.inference_mode():
            for w in weights:
                run(inputs[w.shape[1]], w)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                for w in weights:
                    run(inputs[w.shape[1]], w)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
        return statistics.median(times)

    def plain(x, w):
        return torch.nn.functional.linear(x, w)

    runs = {"plain": plain}
    if can_pack(head):
        packed = {id(w): pack_weight(w, batch_size) for w in body + [head]}
        runs["packed"] = lambda x, w: packed_linear(x, packed[id(w)], None)
    by_kind = {kind: (timed(body, run), timed([head], run)) for kind, run in runs.items()}
    kind = min(by_kind, key=lambda k: sum(by_kind[k]))
    body_s, head_s = by_kind[kind]
    flops = 2 * batch_size * (sum(w.numel() for w in body) + head.numel())
    return {"batch_size": batch_size, "matmul": kind, "body_step_ms": body_s * 1000, "head_step_ms": head_s * 1000,
            "tok_s": batch_size / (body_s + head_s), "gflop_s": flops / (body_s + head_s) / 1e9,
            "tok_s_by_matmul": {k: batch_size / sum(v) for k, v in by_kind.items()}}


def workload_ceiling_tok_s(ceiling: dict, prompt_tokens: int, output_tokens: int) -> float:
    """Output tokens/s if the whole workload cost only weight matmuls at the ceiling's batch size: every
    prompt and output token through the body, every output token through the LM head."""
    b = ceiling["batch_size"]
    seconds = (prompt_tokens + output_tokens) / b * ceiling["body_step_ms"] / 1000 + \
        output_tokens / b * ceiling["head_step_ms"] / 1000
    return output_tokens / seconds


def bandwidth_roofline_tok_s(model, batch_size: int, mean_context: float, bytes_per_s: float) -> float:
    """Decode tokens/s if each step only had to read the weights once and every sequence's KV cache."""
    cfg = model.config
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_bytes_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * \
        model.lm_head.weight.element_size()
    step_bytes = weight_bytes + batch_size * mean_context * kv_bytes_per_token
    return batch_size * bytes_per_s / step_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "llm")
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--max-tokens-cap", type=int, default=256)
    parser.add_argument("--sequential-subset", type=int, default=8, help="requests for the one-at-a-time runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="weights and activations of tamer and of HF alike: auto "
                        "(float32 on CPU, bfloat16 on CUDA), float32, bfloat16")
    parser.add_argument("--kv-cache-dtype", default=None, help="tamer's KV cache dtype (default: the model's); "
                        "bfloat16 under float32 halves what decode attention reads")
    parser.add_argument("--kv-cache-gib", type=float, default=None, help="KV-cache memory (default: a fraction "
                        "of free memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--quick", action="store_true", help="16 prompts, max_tokens capped at 32")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    args = parser.parse_args()
    if args.quick:
        args.num_prompts, args.max_tokens_cap, args.sequential_subset = 16, 32, 2
    if not (args.data / "prompts.jsonl.gz").is_file():
        sys.exit(f"no prompts.jsonl.gz in {args.data}; point --data at a folder in the shared LLM data format")

    import torch

    from backends.engine.bundled import bundled_gguf_path
    from backends.engine.engine import LLMEngine

    workload = load_workload(args.data, args.num_prompts, args.max_tokens_cap, args.seed)
    engine = LLMEngine.from_pretrained(None, device=args.device, dtype=args.dtype, max_num_seqs=args.num_prompts,
                                       kv_cache_gib=args.kv_cache_gib, kv_cache_dtype=args.kv_cache_dtype)
    tok = engine.tokenizer
    texts = [tok.apply_chat_template([{"role": "user", "content": text}]) for text, _ in workload]
    prompt_ids = [tok.encode(t, add_special_tokens=False) for t in texts]
    max_tokens = [n for _, n in workload]
    print(f"{len(workload)} prompts, {sum(map(len, prompt_ids))} prompt tokens (mean {statistics.fmean(map(len, prompt_ids)):.0f}), "
          f"{sum(max_tokens)} output tokens (mean {statistics.fmean(max_tokens):.0f}), device {engine.device}")

    results: dict = {"benchmark": "engine", "num_prompts": len(workload), "output_tokens": sum(max_tokens),
                     "device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch."),
                     "kv_cache_dtype": str(engine.kv_cache_dtype).removeprefix("torch.")}
    run_tamer(engine, prompt_ids[:4], [2] * 4)  # warm up
    tamer = run_tamer(engine, prompt_ids, max_tokens)
    tamer["peak_rss_gib"] = peak_rss_gib()
    results["tamer"] = tamer
    print(f"tamer: {tamer['tok_s']:.1f} tok/s, TTFT p50 {tamer['ttft_ms_p50']:.0f} ms p99 {tamer['ttft_ms_p99']:.0f} ms, "
          f"ITL p50 {tamer['itl_ms_p50']:.0f} ms p99 {tamer['itl_ms_p99']:.0f} ms, mean batch "
          f"{tamer['mean_decode_batch']:.1f}")
    ceiling = matmul_ceiling(engine.model, max(1, round(tamer["mean_decode_batch"])))
    results["cpu_ceiling"] = ceiling
    results["cpu_ceiling_tok_s"] = ceiling["tok_s"]
    results["workload_ceiling_tok_s"] = workload_ceiling_tok_s(ceiling, sum(map(len, prompt_ids)), sum(max_tokens))
    results["tamer_fraction_of_ceiling"] = tamer["tok_s"] / ceiling["tok_s"]
    results["tamer_fraction_of_workload_ceiling"] = tamer["tok_s"] / results["workload_ceiling_tok_s"]
    by_matmul = ", ".join(f"{k} {v:.1f}" for k, v in ceiling["tok_s_by_matmul"].items())
    print(f"weight matmuls alone at batch {ceiling['batch_size']}: {ceiling['tok_s']:.1f} tok/s of decode "
          f"({ceiling['gflop_s']:.1f} GFLOP/s, best of {by_matmul}), {results['workload_ceiling_tok_s']:.1f} tok/s "
          f"counting the prompt tokens too; tamer reaches {results['tamer_fraction_of_ceiling']:.2f} and "
          f"{results['tamer_fraction_of_workload_ceiling']:.2f} of them")
    if engine.device.type == "cuda":
        props = torch.cuda.get_device_properties(engine.device)
        nbytes = 2**30
        src = torch.empty(nbytes, dtype=torch.uint8, device=engine.device)
        dst = torch.empty_like(src)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(20):
            dst.copy_(src)
        torch.cuda.synchronize()
        copy_bytes_per_s = 2 * nbytes * 20 / (time.perf_counter() - started)
        mean_context = statistics.fmean(len(p) + n / 2 for p, n in zip(prompt_ids, max_tokens))
        roof = bandwidth_roofline_tok_s(engine.model, len(workload), mean_context, copy_bytes_per_s)
        results["gpu"] = {"name": props.name, "copy_gb_s": copy_bytes_per_s / 1e9, "roofline_tok_s": roof,
                          "fraction_of_roofline": tamer["tok_s"] / roof}
        print(f"{props.name}: bandwidth roofline {roof:.0f} tok/s at batch {len(workload)}; tamer at "
              f"{tamer['tok_s'] / roof:.2f} of it")
    engine_dtype = engine.dtype
    del engine

    results["hf_batched_tok_s"] = results["hf_sequential_tok_s"] = None
    if not args.skip_hf:
        from transformers import AutoModelForCausalLM

        from backends.engine.bundled import bundled_model_dir

        hf_model = AutoModelForCausalLM.from_pretrained(bundled_model_dir(), dtype=engine_dtype,
                                                        attn_implementation="sdpa").to(args.device).eval()
        hf_batched = run_hf(hf_model, tok, prompt_ids, max_tokens, batch_size=len(workload))
        results["hf_batched"] = hf_batched
        results["hf_batched_tok_s"] = hf_batched["tok_s"]
        k = args.sequential_subset
        hf_seq = run_hf(hf_model, tok, prompt_ids[:k], max_tokens[:k], batch_size=1)
        results["hf_sequential"] = hf_seq
        results["hf_sequential_tok_s"] = hf_seq["tok_s"]
        print(f"HF batched ({len(workload)}): {hf_batched['tok_s']:.1f} tok/s; HF one at a time ({k} requests): "
              f"{hf_seq['tok_s']:.1f} tok/s")
        del hf_model

    k = args.sequential_subset * 2
    llamacpp = run_llamacpp_isolated(bundled_gguf_path()[0], texts[:k], max_tokens[:k], tok.eos_token_ids[0])
    results["llamacpp"] = llamacpp
    results["llamacpp_tok_s"] = llamacpp.get("tok_s") if llamacpp else None
    if llamacpp is None:
        print("llama.cpp: not installed (pip install llama-cpp-python; it compiles for several minutes)")
    elif "error" in llamacpp:
        print(f"llama.cpp: failed, {llamacpp['error']}")
    else:
        print(f"llama.cpp: {llamacpp['tok_s']:.1f} tok/s one at a time ({k} requests)")

    results["tamer_tok_s"] = tamer["tok_s"]
    ratios = {}
    for name in ("hf_batched", "hf_sequential", "llamacpp"):
        if results.get(f"{name}_tok_s"):
            ratios[f"tamer_over_{name}"] = tamer["tok_s"] / results[f"{name}_tok_s"]
    results["ratios"] = ratios
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "torch": torch.__version__, "platform": platform.platform()}
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
