"""The engine on the Triton kernels: greedy tokens equal those of the reference path on the same weights.

A tiny random-weight Llama (2 layers, hidden 64, 4 heads / 2 kv heads, the bundled tokenizer's vocabulary) runs
greedy on a few prompts once with `kernels.ops` forced to "reference" and once to "triton" (on CPU: triton's
interpreter; fp32 on CUDA too), with small blocks and a small token budget so chunked prefill and paged decode both run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernels import ops
from tests.tiny_models import save_tiny_model

pytest.importorskip("triton")
pytest.importorskip("transformers")

PROMPTS = ["The capital of France is", "def fibonacci(n):", "One, two, three, four, five, six, seven, eight"]
NUM_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from backends.engine.bundled import bundled_model_dir

    return save_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"), bundled_model_dir())


def greedy_tokens(model_dir: Path, device: str) -> list[list[int]]:
    from backends.engine.engine import LLMEngine
    from backends.engine.sampling_params import SamplingParams

    # fp32 on GPU too, so that argmax ties cannot split the paths; small blocks and a small token budget give
    # chunked prefill over a cached prefix and several blocks per sequence
    engine = LLMEngine.from_pretrained(str(model_dir), device=device, dtype="float32", max_num_seqs=4,
                                       block_size=4, max_num_batched_tokens=8)
    sampling = SamplingParams(max_tokens=NUM_NEW_TOKENS, temperature=0.0, ignore_eos=True)
    outputs: dict[str, list[int]] = {}
    for i, prompt in enumerate(PROMPTS):
        outputs[f"p{i}"] = []
        engine.add_request(f"p{i}", engine.tokenizer.encode(prompt), sampling)
    while engine.has_unfinished():
        for out in engine.step():
            outputs[out.request_id] += out.new_token_ids
    return [outputs[f"p{i}"] for i in range(len(PROMPTS))]


def test_greedy_tokens_on_triton_kernels_equal_the_reference_path(tiny_llama_dir, device, monkeypatch):
    with ops.kernel_backend("reference"):
        expected = greedy_tokens(tiny_llama_dir, device)
    dispatched: list[str] = []
    select = ops._select
    monkeypatch.setattr(ops, "_select", lambda name, x: dispatched.append(name) or select(name, x))
    with ops.kernel_backend("triton"):
        actual = greedy_tokens(tiny_llama_dir, device)
    if not dispatched:
        pytest.xfail("the engine does not call kernels.ops yet (it imports kernels.reference directly), so this "
                     "run never reached the Triton kernels; it checks them once the engine dispatches through ops")
    assert {"paged_decode_attention", "paged_prefill_attention", "store_kv_cache"} <= set(dispatched)
    assert all(len(tokens) == NUM_NEW_TOKENS for tokens in actual)
    assert actual == expected
