"""Choosing the next token from logits: greedy, or temperature, top-k and top-p sampling with a per-request RNG."""

from __future__ import annotations

import torch

from backends.engine.sampling_params import SamplingParams


def new_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator seeded for one request, so the same seed gives the same tokens; None uses torch's global RNG."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None) -> int:
    """One token id from logits (vocab_size,) fp32.

    Greedy (temperature 0) takes the argmax. Otherwise p = softmax(logits / temperature) restricted to the top_k
    most likely tokens and to the smallest set whose probability reaches top_p, renormalized, then sampled.
    """
    if params.is_greedy:
        return int(torch.argmax(logits))
    scaled = logits.float() / params.temperature  # (vocab_size,)
    if params.top_k != -1 and params.top_k < scaled.shape[0]:
        kth_value = torch.topk(scaled, params.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth_value, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True)  # (vocab_size,) each
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # probability of strictly likelier tokens
        drop_sorted = mass_before >= params.top_p  # the most likely token always stays
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)  # (vocab_size,)
        scaled = scaled.masked_fill(drop, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)  # (vocab_size,)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))
