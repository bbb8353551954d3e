"""Choosing the next token for every sampling row of a step at once, each row with its own settings.

Greedy rows (temperature 0) take the argmax. Other rows: p = softmax(logits / temperature) restricted
to the top_k most likely tokens and to the smallest set whose probability reaches top_p, renormalized,
then sampled, with the request's own seeded generator when it has a seed (same seed, same tokens,
whatever else is in the batch). Logprobs, when asked, are of the model's own distribution
(log_softmax of the raw logits), as OpenAI reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backends.engine.sampling_params import SamplingParams


@dataclass(frozen=True)
class TokenLogprobs:
    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...]  # (token id, logprob), most likely first


def new_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A generator seeded for one request, so the same seed gives the same tokens; None uses torch's global RNG."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _filter(scaled: torch.Tensor, top_k: list[int], top_p: list[float]) -> torch.Tensor:
    """Mask to -inf what top-k and top-p rule out; scaled: (num_rows, vocab_size) fp32."""
    vocab_size = scaled.shape[-1]
    ks = torch.tensor([k if 0 < k < vocab_size else vocab_size for k in top_k], device=scaled.device)
    if bool((ks < vocab_size).any()):
        k_max = int(ks.max())
        top_values = torch.topk(scaled, k_max, dim=-1).values  # (num_rows, k_max)
        kth = top_values.gather(1, (ks - 1).clamp(max=k_max - 1)[:, None])  # (num_rows, 1)
        kth = torch.where((ks < vocab_size)[:, None], kth, torch.full_like(kth, float("-inf")))
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    ps = torch.tensor(top_p, device=scaled.device)[:, None]  # (num_rows, 1)
    if bool((ps < 1.0).any()):
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)  # (num_rows, vocab_size)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # probability of strictly likelier tokens
        drop_sorted = (mass_before >= ps) & (ps < 1.0)  # the most likely token always stays
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return scaled


def sample_batch(logits: torch.Tensor, params: list[SamplingParams],
                 generators: list[torch.Generator | None]) -> tuple[list[int], list[TokenLogprobs | None]]:
    """Next token ids for rows of logits (num_rows, vocab_size) fp32, and their logprobs where asked."""
    # (num_rows,) greedy for all; random rows overwritten below. max(dim).indices is argmax (the first maximal
    # index too) at a third of torch.argmax's time on CPU for a 49k vocabulary
    token_ids = torch.max(logits, dim=-1).indices
    random_rows = [i for i, p in enumerate(params) if not p.is_greedy]
    if random_rows:
        rows = torch.tensor(random_rows, device=logits.device)
        temps = torch.tensor([params[i].temperature for i in random_rows], device=logits.device)
        scaled = logits[rows] / temps[:, None]  # (num_random, vocab_size)
        scaled = _filter(scaled, [params[i].top_k for i in random_rows], [params[i].top_p for i in random_rows])
        probs = torch.softmax(scaled, dim=-1)
        unseeded = [j for j, i in enumerate(random_rows) if generators[i] is None]
        if unseeded:
            picked = torch.multinomial(probs[unseeded], num_samples=1).squeeze(1)
            token_ids[rows[unseeded]] = picked
        for j, i in enumerate(random_rows):
            if generators[i] is not None:
                token_ids[i] = torch.multinomial(probs[j], num_samples=1, generator=generators[i])[0]
    ids = token_ids.tolist()
    logprobs: list[TokenLogprobs | None] = [None] * len(params)
    wanting = [i for i, p in enumerate(params) if p.logprobs is not None]
    if wanting:
        log_probs = torch.log_softmax(logits[wanting], dim=-1)  # (num_wanting, vocab_size)
        n_max = max(params[i].logprobs for i in wanting)
        top_values, top_ids = torch.topk(log_probs, max(n_max, 1), dim=-1)
        for j, i in enumerate(wanting):
            n = params[i].logprobs
            top = tuple(zip(top_ids[j, :n].tolist(), top_values[j, :n].tolist()))
            logprobs[i] = TokenLogprobs(ids[i], float(log_probs[j, ids[i]]), top)
    return ids, logprobs


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None = None) -> int:
    """One token id from one row of logits (vocab_size,) fp32."""
    return sample_batch(logits[None], [params], [generator])[0][0]
