"""The shipped catalog loads, is self-consistent and names the bad value on a miss."""

import subprocess
import sys

import pytest

from cost_model.catalog import find_offerings, get_gpu, get_model, load_gpus, load_models, load_offerings
from cost_model.errors import UnknownNameError

ZOO = ["smollm2-135m", "smollm2-360m", "smollm2-1.7b", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b",
       "qwen2.5-14b", "qwen2.5-32b", "qwen2.5-72b", "llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b"]


def test_zoo_is_complete_and_parameter_counts_match_the_architecture():
    models = load_models()
    assert set(ZOO) <= set(models)
    for m in models.values():
        assert m.num_heads * m.head_dim >= m.hidden_size * 0.9 or m.name.startswith("smollm")
        # embeddings + attention + MLP (dense) within 15% of the published total
        h, q, kv = m.hidden_size, m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim
        per_layer = h * (q + 2 * kv) + q * h + 3 * h * m.intermediate_size * m.num_experts
        estimate = m.num_layers * per_layer + m.vocab_size * h
        assert estimate / (m.num_params_b * 1e9) == pytest.approx(1.0, rel=0.15), m.name


def test_every_offering_has_a_known_gpu_and_sane_prices():
    gpus = load_gpus()
    offerings = load_offerings()
    assert len(offerings) > 300
    for o in offerings:
        assert o.gpu in gpus
        if o.spot_usd_per_hour is not None:
            assert 0 < o.spot_usd_per_hour < o.ondemand_usd_per_hour
    g6 = [o for o in offerings if o.instance_type == "g6.xlarge" and o.region == "us-east-1"][0]
    assert g6.ondemand_usd_per_hour == pytest.approx(0.8048)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match="qwen2.5-7b"):
        get_model("qwen-7")
    with pytest.raises(UnknownNameError, match="H100"):
        get_gpu("H1000")
    with pytest.raises(UnknownNameError, match="us-east-1"):
        find_offerings(regions=("mars-1",))


def test_import_is_cheap():
    code = "import sys, cost_model, cost_model.catalog, cost_model.perf; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
