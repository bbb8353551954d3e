"""GGUF -> Hugging Face conversion: tensor layout, config, tokenizer, and crash-safe caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backends.engine import gguf_convert
from backends.engine.bundled import cache_root
from backends.engine.gguf_convert import convert_gguf, unpermute_rows

HIDDEN, HEADS, KV_HEADS, LAYERS, FFN = 32, 4, 2, 2, 48
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute, applied to q_proj and k_proj rows."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def test_unpermute_undoes_llama_cpp_permute():
    rng = np.random.default_rng(0)
    for n_head, head_dim in [(9, 64), (3, 64), (4, 6)]:
        w = rng.standard_normal((n_head * head_dim, 17)).astype(np.float32)
        assert np.array_equal(unpermute_rows(llama_cpp_permute(w, n_head), n_head), w)


def byte_vocab() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    codes, extra = {}, 0
    for b in range(256):
        if b in printable:
            codes[b] = chr(b)
        else:
            codes[b] = chr(256 + extra)
            extra += 1
    return [codes[b] for b in range(256)]


def write_tiny_gguf(path: Path) -> dict[str, np.ndarray]:
    """A tiny llama GGUF written the way llama.cpp does (permuted q/k); returns its weights in HF layout."""
    gguf = pytest.importorskip("gguf")
    merges = ["h e", "l l", "he ll", "Ġ w", "o r"]
    tokens = SPECIALS + byte_vocab() + [m.replace(" ", "") for m in merges]
    vocab_size = len(tokens)
    rng = np.random.default_rng(0)

    def rand(*shape):
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    hf = {"model.embed_tokens.weight": rand(vocab_size, HIDDEN), "model.norm.weight": 1 + rand(HIDDEN),
          "lm_head.weight": rand(vocab_size, HIDDEN)}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (vocab_size - len(SPECIALS)))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    writer.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", hf["model.norm.weight"])
    writer.add_tensor("output.weight", hf["lm_head.weight"])
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        layer = {
            "attn_norm": ("input_layernorm", 1 + rand(HIDDEN)),
            "ffn_norm": ("post_attention_layernorm", 1 + rand(HIDDEN)),
            "attn_q": ("self_attn.q_proj", rand(HEADS * head_dim, HIDDEN)),
            "attn_k": ("self_attn.k_proj", rand(KV_HEADS * head_dim, HIDDEN)),
            "attn_v": ("self_attn.v_proj", rand(KV_HEADS * head_dim, HIDDEN)),
            "attn_output": ("self_attn.o_proj", rand(HIDDEN, HEADS * head_dim)),
            "ffn_gate": ("mlp.gate_proj", rand(FFN, HIDDEN)),
            "ffn_up": ("mlp.up_proj", rand(FFN, HIDDEN)),
            "ffn_down": ("mlp.down_proj", rand(HIDDEN, FFN)),
        }
        for gguf_name, (hf_name, weight) in layer.items():
            hf[f"model.layers.{i}.{hf_name}.weight"] = weight
            stored = weight
            if gguf_name == "attn_q":
                stored = llama_cpp_permute(weight, HEADS)
            elif gguf_name == "attn_k":
                stored = llama_cpp_permute(weight, KV_HEADS)
            writer.add_tensor(f"blk.{i}.{gguf_name}.weight", np.ascontiguousarray(stored))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return hf


def test_tiny_gguf_converts_to_hugging_face_layout(tmp_path):
    from safetensors.numpy import load_file

    from backends.engine.engine import LLMEngine
    from backends.engine.sampling_params import SamplingParams

    expected = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = convert_gguf(tmp_path / "tiny.gguf", tmp_path / "cache" / "tiny")
    converted = load_file(str(out / "model.safetensors"))
    assert set(converted) == set(expected)
    for name, weight in expected.items():
        np.testing.assert_array_equal(converted[name], weight, err_msg=name)

    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["tie_word_embeddings"] is False
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (4, 2, 8)
    assert config["rms_norm_eps"] == 1e-5 and config["torch_dtype"] == "float32"
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == ("<|im_start|>", "<|im_end|>")
    assert "chat_template" in tokenizer_config

    engine = LLMEngine.from_pretrained(str(out))
    tok = engine.tokenizer
    assert tok.encode("hello world 42") == [tok.token_to_id(t) for t in
                                            ["hell", "o", "Ġw", "or", "l", "d", "Ġ", "4", "2"]]
    assert tok.encode("<|im_start|>hi") == [1, tok.token_to_id("h"), tok.token_to_id("i")]
    assert tok.decode(tok.encode("héllo ✓")) == "héllo ✓"
    assert len(engine.generate(["hello"], SamplingParams(max_tokens=3, temperature=0.0))) == 1


def test_a_crash_mid_conversion_leaves_no_cache(tmp_path, monkeypatch):
    def crash(gguf_path, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_convert, "write_hf_dir", crash)
    target = tmp_path / "models" / "m"
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(tmp_path / "any.gguf", target)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_finished_conversion_is_reused(tmp_path, monkeypatch):
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("{}")
    monkeypatch.setattr(gguf_convert, "write_hf_dir", lambda *_: pytest.fail("converted again"))
    assert convert_gguf(tmp_path / "any.gguf", target) == target


def test_bundled_cache_is_a_complete_hugging_face_directory(bundled_dir):
    names = {p.name for p in bundled_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= names
    assert not [p for p in bundled_dir.parent.iterdir() if ".tmp-" in p.name]


def test_cache_root_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TAMER_CACHE_DIR", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("TAMER_CACHE_DIR")
    assert cache_root().name == "tamer"
