"""The local backend's request mapping: sampling defaults and context-window checks (no model needed)."""

from types import SimpleNamespace

import pytest

from backends.deployment import bundled_deployment
from backends.errors import ContextLengthExceededError
from backends.job import GenerationRequest
from backends.local import LocalBackend


def backend(max_model_len=100):
    b = LocalBackend(bundled_deployment())
    b.engine = SimpleNamespace(max_model_len=max_model_len)
    return b


def test_unset_sampling_fields_take_the_deployment_defaults():
    params = backend().sampling_for(GenerationRequest(kind="completion", prompt="x"), num_prompt_tokens=10)
    assert (params.temperature, params.top_p, params.max_tokens) == (0.2, 0.9, 90)
    req = GenerationRequest(kind="completion", prompt="x", temperature=0.0, top_p=0.5, max_tokens=7, seed=3)
    params = backend().sampling_for(req, num_prompt_tokens=10)
    assert (params.temperature, params.top_p, params.max_tokens, params.seed) == (0.0, 0.5, 7, 3)


def test_context_window_is_enforced_with_a_useful_message():
    with pytest.raises(ContextLengthExceededError, match="100 tokens; the prompt has 100"):
        backend().sampling_for(GenerationRequest(kind="completion", prompt="x"), num_prompt_tokens=100)
    with pytest.raises(ContextLengthExceededError, match="at most 40"):
        backend().sampling_for(GenerationRequest(kind="completion", prompt="x", max_tokens=41), num_prompt_tokens=60)
