"""SamplingParams validation, the sampler's filters, and seeded sampling on the bundled model."""

from __future__ import annotations

import pytest
import torch

from backends.engine.sampler import new_generator, sample
from backends.engine.sampling_params import SamplingParams


@pytest.mark.parametrize("kwargs,message", [
    ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": 0}, "top_k must be -1"),
    ({"top_k": -2}, "top_k must be -1"),
    ({"stop": ("",)}, "non-empty strings"),
])
def test_invalid_sampling_params_say_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_stop_lists_become_tuples():
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
    assert SamplingParams(stop="END").stop == ("END",)
    assert SamplingParams(stop=None).stop == ()


def test_sampler_filters():
    torch.manual_seed(0)
    logits = torch.randn(1000) * 3
    best = int(logits.argmax())
    assert sample(logits, SamplingParams(temperature=0.0)) == best
    assert sample(logits, SamplingParams(temperature=1.5, top_k=1)) == best
    assert sample(logits, SamplingParams(temperature=1.0, top_p=1e-6)) == best
    top3 = set(torch.topk(logits, 3).indices.tolist())
    generator = new_generator(0, torch.device("cpu"))
    assert {sample(logits, SamplingParams(top_k=3), generator) for _ in range(200)} <= top3
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    drawn = {sample(probs, SamplingParams(top_p=0.7), generator) for _ in range(300)}
    assert drawn == {0, 1}  # 0.5 alone is short of 0.7; 0.5 + 0.3 reaches it


def test_same_generator_seed_same_samples():
    logits = torch.zeros(50)

    def draws(seed: int) -> list[int]:
        generator = new_generator(seed, torch.device("cpu"))
        return [sample(logits, SamplingParams(), generator) for _ in range(20)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)


def test_seeded_sampling_on_the_bundled_model(bundled_engine):
    tokenizer = bundled_engine.tokenizer
    prompt = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": "Tell me a story."}]))
    runs = {
        "seed7": SamplingParams(max_tokens=8, temperature=1.0, seed=7, ignore_eos=True),
        "seed7-again": SamplingParams(max_tokens=8, temperature=1.0, seed=7, ignore_eos=True),
        "seed8": SamplingParams(max_tokens=8, temperature=1.0, seed=8, ignore_eos=True),
        "top_k1": SamplingParams(max_tokens=8, temperature=0.8, top_k=1, seed=3, ignore_eos=True),
        "greedy": SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True),
    }
    for request_id, sampling in runs.items():
        bundled_engine.add_request(request_id, prompt, sampling)
    tokens = {request_id: [] for request_id in runs}
    while bundled_engine.has_unfinished():
        for out in bundled_engine.step():
            tokens[out.request_id] += out.new_token_ids
    assert tokens["seed7"] == tokens["seed7-again"]
    assert tokens["seed7"] != tokens["seed8"]
    assert tokens["top_k1"] == tokens["greedy"]
