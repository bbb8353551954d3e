"""The engine against Hugging Face transformers on the same weights: greedy tokens and logits must agree,
with the paged KV cache, continuous batching, chunked prefill, prefix reuse and preemption all at work.

HF greedy decoding picks, at every step, the argmax of its logits given the prompt and the tokens so far. So running
HF once over prompt + our output and checking that its argmax at each position is our next token is the same check
as comparing with HF's generate(), in one forward pass instead of one per token.
"""

from __future__ import annotations

import pytest
import torch

from backends.engine.engine import LLMEngine
from backends.engine.sampling_params import SamplingParams
from backends.engine.scheduler import ScheduledSeq
from backends.engine.sequence import Sequence
from kernels import ops

NUM_NEW_TOKENS = 24

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}],
    [{"role": "user", "content": "Summarize this: " + " ".join(
        ["The committee met on Tuesday to review the budget, the hiring plan and the new office lease."] * 12)}],
]


# Engine settings that make every mechanism work on short prompts: a small token budget (chunked
# prefill), small blocks, and a cache too small for all sequences at once (preemption).
STRESS = dict(max_num_batched_tokens=24, block_size=4, max_num_seqs=8)


def run_greedy(engine: LLMEngine, prompts: list[list[int]], num_tokens: int, *, waves: int = 1) -> list[list[int]]:
    """Greedy outputs for all prompts, added in `waves` (each wave after one step of the previous) so the
    scheduler interleaves them and later waves find earlier prompts' blocks in the prefix cache."""
    sampling = SamplingParams(max_tokens=num_tokens, temperature=0.0, ignore_eos=True)
    outputs: dict[str, list[int]] = {f"oracle-{i}": [] for i in range(len(prompts))}
    per_wave = -(-len(prompts) // waves)
    for start in range(0, len(prompts), per_wave):
        for i in range(start, min(start + per_wave, len(prompts))):
            engine.add_request(f"oracle-{i}", prompts[i], sampling)
        for _ in range(3 if start + per_wave < len(prompts) else 0):
            for out in engine.step():
                outputs[out.request_id] += out.new_token_ids
    while engine.has_unfinished():
        for out in engine.step():
            outputs[out.request_id] += out.new_token_ids
    engine.block_manager.check_invariants([])
    return [outputs[f"oracle-{i}"] for i in range(len(prompts))]


@torch.inference_mode()
def hf_logits(hf_model, token_ids: list[int]) -> torch.Tensor:
    return hf_model(torch.tensor([token_ids])).logits[0].float()  # (num_tokens, vocab_size)


def hf_greedy_choices(hf_model, prompt: list[int], output: list[int]) -> list[int]:
    """HF's greedy next token after prompt + output[:i], for every i."""
    logits = hf_logits(hf_model, prompt + output)  # (num_prompt + num_output, vocab_size)
    return logits[len(prompt) - 1: -1].argmax(dim=-1).tolist()


@pytest.mark.parametrize("kernel_backend", ["auto", "reference"])
def test_bundled_greedy_matches_transformers(bundled_dir, load_hf, kernel_backend):
    """auto on CPU is the fast path (C++ decode attention, oneDNN-packed weights; asserted to be in use),
    reference the plain-torch one."""
    with ops.kernel_backend(kernel_backend):
        engine = LLMEngine.from_pretrained(None, device="cpu", num_kv_blocks=44, max_num_batched_tokens=64,
                                           block_size=8, max_num_seqs=8)
        assert (engine.model.lm_head.packed is not None) == (kernel_backend == "auto")
        if kernel_backend == "auto":
            assert ops.cpu_kernels_available()
        _check_bundled_greedy(engine, bundled_dir, load_hf)


def _check_bundled_greedy(engine: LLMEngine, bundled_dir, load_hf) -> None:
    tokenizer = engine.tokenizer
    system = {"role": "system", "content": "You are a helpful assistant. Answer briefly and precisely."}
    chats = [[system, *chat] if i % 2 else chat for i, chat in enumerate(CHATS * 2)]
    prompts = [tokenizer.encode(tokenizer.apply_chat_template(chat)) for chat in chats]
    assert len({len(p) for p in prompts}) > 3 and max(len(p) for p in prompts) > 64  # > one step's budget
    outputs = run_greedy(engine, prompts, NUM_NEW_TOKENS, waves=2)
    stats = engine.stats()
    assert stats["num_preemptions"] > 0 and stats["num_prefix_hit_tokens"] > 0, str(stats)
    hf_model = load_hf(bundled_dir)
    for prompt, output in zip(prompts, outputs):
        assert len(output) == NUM_NEW_TOKENS
        assert hf_greedy_choices(hf_model, prompt, output) == output, tokenizer.decode(output)
    assert "Paris" in tokenizer.decode(outputs[0])  # the converted weights are the real model


def paged_logits(engine: LLMEngine, tokens: list[int], chunk: int) -> torch.Tensor:
    """Logits at every position of `tokens`, prefilled through the paged path in chunks of `chunk` tokens."""
    seq = Sequence(request_id="logits", prompt_token_ids=tokens, sampling=SamplingParams(), max_output_tokens=1)
    rows = []
    with torch.inference_mode():
        while seq.num_computed_tokens < len(tokens):
            n = min(chunk, len(tokens) - seq.num_computed_tokens)
            engine.block_manager.grow(seq, seq.num_computed_tokens + n)
            batch = engine.runner.prepare([ScheduledSeq(seq, n)])
            hidden = engine.model(batch.input_ids, batch.positions, batch.meta, engine.cache)  # (n, hidden)
            rows.append(engine.model.compute_logits(hidden))
            seq.num_computed_tokens += n
    engine.block_manager.free(seq)
    return torch.cat(rows)  # (len(tokens), vocab_size)


TINY_MODELS = {
    "llama": ("llama", {}),
    "llama-tied-llama3-rope": ("llama", {"tie_word_embeddings": True, "rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64}}),
    "qwen2": ("qwen2", {}),
    "mistral": ("mistral", {"sliding_window": None}),
}


@pytest.mark.parametrize("name", list(TINY_MODELS))
def test_tiny_random_model_matches_transformers(name, make_tiny_model, load_hf):
    kind, overrides = TINY_MODELS[name]
    model_dir = make_tiny_model(kind, **overrides)
    hf_model = load_hf(model_dir)
    engine = LLMEngine.from_pretrained(str(model_dir), device="cpu", num_kv_blocks=40, **STRESS)
    assert engine.config.architecture == hf_model.config.architectures[0]

    shared = list(range(200, 229))  # a shared prefix (7 blocks of 4 tokens) for prefix reuse
    prompts = [[5, 17, 300, 4000, 9], list(range(100, 141)), [42], shared + [7, 8], shared + [9], [3, 1, 4, 1, 5]]
    outputs = run_greedy(engine, prompts, NUM_NEW_TOKENS, waves=2)
    stats = engine.stats()
    assert stats["num_preemptions"] > 0 and stats["num_prefix_hit_tokens"] > 0, str(stats)
    for prompt, output in zip(prompts, outputs):
        assert hf_greedy_choices(hf_model, prompt, output) == output

    # Logits over a whole sequence, prefilled in chunks so later chunks attend to a cached prefix.
    tokens = prompts[1] + outputs[1]
    torch.testing.assert_close(paged_logits(engine, tokens, chunk=13), hf_logits(hf_model, tokens),
                               rtol=1e-4, atol=1e-4)
