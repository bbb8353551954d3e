"""Prefill throughput of a self-hosted deployment: prompt tokens/s of one replica, for the GPU-time cost.

A request's share of the instance hour is the replica time it takes:
    O / tokens_per_s + I / prefill_tokens_per_s.
The planner (cost_model/capacity.py) charges the same request less for its prompt: chunked prefill rides in
steps that also decode the running batch, so a prompt costs only what those mixed steps add, which depends on
the batch and context at the time. The router knows neither when it prices a request, so it charges the whole
prefill at the replica's prefill rate: an upper bound of the planner's charge, tight for long prompts.
tokens_per_s is measured (the deployment's). prefill_tokens_per_s is the deployment's own when it states one;
otherwise it comes from the performance model the planner uses (cost_model/perf.py): the deployment's model on its instance's GPUs prefills a reference prompt
of I = REFERENCE_INPUT_TOKENS in prefill_s(I), so prefill_tokens_per_s = I / prefill_s(I). That needs an
`instance_type` in the catalog and a model the catalog knows (its `model`, upstream or card name, lower-case,
without an "org/" prefix or an "-instruct"/"-chat"/"-it" suffix) that fits the instance. Otherwise the
prompt is read DEFAULT_PREFILL_OVER_DECODE times faster than the output is written (tokens_per_s): the
median of the performance model's prefill-over-decode ratio for 1.5B, 7-8B and 70B models on T4, A10G, L4,
A100 and H100 at decode batches of 32 and 64 (the ratio ranges from 2.4 to 15 there).
"""

from __future__ import annotations

import functools

from backends.deployment import DeploymentSpec

DEFAULT_PREFILL_OVER_DECODE = 6.0
REFERENCE_INPUT_TOKENS = 1024
MODEL_SUFFIXES = ("-instruct", "-chat", "-it")


def catalog_model_name(spec: DeploymentSpec) -> str | None:
    """The cost_model catalog's name of the deployment's model, or None if the catalog does not know it."""
    from cost_model.catalog import load_models

    known = load_models()
    for name in (spec.model, spec.backend_model, spec.card_model):
        name = name.lower().rsplit("/", 1)[-1]
        for suffix in MODEL_SUFFIXES:
            name = name.removesuffix(suffix)
        if name in known:
            return name
    return None


@functools.cache
def modeled_prefill_tokens_per_s(spec: DeploymentSpec) -> float | None:
    """Prompt tokens/s the performance model gives the deployment's model on its instance; None when the
    catalog lacks its instance type (in its region) or its model, or the model does not fit the instance."""
    model_name = catalog_model_name(spec)
    if not spec.instance_type or model_name is None:
        return None
    from cost_model.catalog import find_offerings, get_gpu, get_model
    from cost_model.perf import PerfModel, load_efficiency

    offerings = find_offerings(regions=(spec.region,), instance_types=(spec.instance_type,))
    if not offerings:
        return None
    gpu = offerings[0].gpu
    perf = PerfModel(get_model(model_name), get_gpu(gpu), offerings[0].num_gpus, load_efficiency(gpu))
    if not perf.fits:
        return None
    return REFERENCE_INPUT_TOKENS / perf.prefill_s(REFERENCE_INPUT_TOKENS)


def prefill_tokens_per_s(spec: DeploymentSpec) -> float:
    """Prompt tokens/s of one replica: stated, else modeled, else DEFAULT_PREFILL_OVER_DECODE x tokens_per_s."""
    if spec.prefill_tokens_per_s:
        return spec.prefill_tokens_per_s
    modeled = modeled_prefill_tokens_per_s(spec)
    if modeled is not None:
        return modeled
    return DEFAULT_PREFILL_OVER_DECODE * spec.tokens_per_s
