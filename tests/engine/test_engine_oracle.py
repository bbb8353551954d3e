"""The engine against Hugging Face transformers on the same weights: greedy tokens and logits must agree.

HF greedy decoding picks, at every step, the argmax of its logits given the prompt and the tokens so far. So running
HF once over prompt + our output and checking that its argmax at each position is our next token is the same check
as comparing with HF's generate(), in one forward pass instead of one per token.
"""

from __future__ import annotations

import pytest
import torch

from backends.engine.config import ModelConfig
from backends.engine.engine import LLMEngine
from backends.engine.sampling_params import SamplingParams
from backends.engine.weights import load_model

NUM_NEW_TOKENS = 24

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}],
    [{"role": "user", "content": "Summarize this: " + " ".join(
        ["The committee met on Tuesday to review the budget, the hiring plan and the new office lease."] * 12)}],
]


def run_greedy(engine: LLMEngine, prompts: list[list[int]], num_tokens: int) -> list[list[int]]:
    """Greedy outputs for all prompts, added together so the scheduler interleaves them."""
    sampling = SamplingParams(max_tokens=num_tokens, temperature=0.0, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"oracle-{i}", prompt, sampling)
    outputs: dict[str, list[int]] = {f"oracle-{i}": [] for i in range(len(prompts))}
    while engine.has_unfinished():
        for out in engine.step():
            outputs[out.request_id] += out.new_token_ids
    return [outputs[f"oracle-{i}"] for i in range(len(prompts))]


@torch.inference_mode()
def hf_logits(hf_model, token_ids: list[int]) -> torch.Tensor:
    return hf_model(torch.tensor([token_ids])).logits[0].float()  # (num_tokens, vocab_size)


def hf_greedy_choices(hf_model, prompt: list[int], output: list[int]) -> list[int]:
    """HF's greedy next token after prompt + output[:i], for every i."""
    logits = hf_logits(hf_model, prompt + output)  # (num_prompt + num_output, vocab_size)
    return logits[len(prompt) - 1: -1].argmax(dim=-1).tolist()


def test_bundled_greedy_matches_transformers(bundled_engine, bundled_dir, load_hf):
    tokenizer = bundled_engine.tokenizer
    prompts = [tokenizer.encode(tokenizer.apply_chat_template(chat)) for chat in CHATS]
    assert len({len(p) for p in prompts}) == len(prompts)  # mixed lengths
    outputs = run_greedy(bundled_engine, prompts, NUM_NEW_TOKENS)
    hf_model = load_hf(bundled_dir)
    for prompt, output in zip(prompts, outputs):
        assert len(output) == NUM_NEW_TOKENS
        assert hf_greedy_choices(hf_model, prompt, output) == output, tokenizer.decode(output)
    assert "Paris" in tokenizer.decode(outputs[0])  # the converted weights are the real model


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
    engine = LLMEngine.from_pretrained(str(model_dir), device="cpu")
    assert engine.config.architecture == hf_model.config.architectures[0]

    prompts = [[5, 17, 300, 4000, 9], list(range(100, 141)), [42]]
    outputs = run_greedy(engine, prompts, NUM_NEW_TOKENS)
    for prompt, output in zip(prompts, outputs):
        assert hf_greedy_choices(hf_model, prompt, output) == output

    # Logits over a whole sequence, prefilled in two chunks so the second attends to a cached prefix.
    config = ModelConfig.from_model_dir(model_dir)
    ours = load_model(model_dir, config, device=torch.device("cpu"), dtype=torch.float32)
    tokens = prompts[1] + outputs[1]
    with torch.inference_mode():
        cache = ours.new_cache(config.max_model_len)
        first = ours(torch.tensor(tokens[:30]), cache, all_logits=True)  # (30, vocab_size)
        rest = ours(torch.tensor(tokens[30:]), cache, all_logits=True)  # (len - 30, vocab_size)
    torch.testing.assert_close(torch.cat([first, rest]), hf_logits(hf_model, tokens), rtol=1e-4, atol=1e-4)
