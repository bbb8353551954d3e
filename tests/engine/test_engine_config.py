"""ModelConfig parsing and validation."""

from __future__ import annotations

import pytest

from backends.engine.config import ModelConfig
from backends.engine.errors import UnsupportedArchitectureError

BASE = {"architectures": ["LlamaForCausalLM"], "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 512, "rope_theta": 500000.0}


def test_bundled_config(bundled_dir):
    config = ModelConfig.from_model_dir(bundled_dir)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (30, 576, 9)
    assert (config.num_key_value_heads, config.head_dim, config.vocab_size) == (3, 64, 49152)
    assert config.rope_theta == 100000.0 and config.tie_word_embeddings
    assert config.max_model_len == 8192 and config.eos_token_ids == (2,)


def test_unknown_architecture_names_the_supported_ones():
    with pytest.raises(UnsupportedArchitectureError, match="LlamaForCausalLM.*MistralForCausalLM.*Qwen2ForCausalLM"):
        ModelConfig.from_dict({**BASE, "architectures": ["GPTNeoXForCausalLM"]})


def test_transformers_v5_rope_parameters_and_qwen2_biases():
    raw = {**BASE, "architectures": ["Qwen2ForCausalLM"],
           "rope_parameters": {"rope_type": "default", "rope_theta": 1234.0}}
    del raw["rope_theta"]
    config = ModelConfig.from_dict(raw)
    assert config.rope_theta == 1234.0 and config.qkv_bias and not config.o_proj_bias


def test_sliding_window_caps_the_context_only_where_used():
    mistral = ModelConfig.from_dict({**BASE, "architectures": ["MistralForCausalLM"], "sliding_window": 128})
    assert mistral.max_model_len == 128
    qwen2 = ModelConfig.from_dict({**BASE, "architectures": ["Qwen2ForCausalLM"], "sliding_window": 128,
                                   "use_sliding_window": False})
    assert qwen2.max_model_len == 512


@pytest.mark.parametrize("change,message", [
    ({"num_key_value_heads": 3}, "multiple of"),
    ({"hidden_size": 0}, "positive integer"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope type 'yarn' is not supported"),
    ({"hidden_act": "gelu"}, "only 'silu'"),
])
def test_invalid_configs_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict({**BASE, **change})
