"""The bundled tokenizer rebuilt from GGUF metadata, and chat templates."""

from __future__ import annotations

import pytest

from backends.engine.chat_template import render_chat_template
from backends.engine.errors import ChatTemplateError

TRICKY = [
    "Hello, world!",
    "  leading spaces,\ttabs\n\nand blank lines   ",
    "digits 1234567890 and 3.14159",
    "unicode: naïve café 中文 русский",
    "emoji 😀👍🏽🇫🇷 and symbols ∑∫√",
    "code:\n    def f(x):\n        return x ** 2\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_digits_are_split_one_by_one(tokenizer):
    ids = tokenizer.encode("2024")
    assert [tokenizer.decode([i]) for i in ids] == ["2", "0", "2", "4"]


def test_control_tokens_are_single_special_ids(tokenizer):
    ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == tokenizer.token_to_id("<|im_start|>") == 1
    assert ids[-1] == tokenizer.token_to_id("<|im_end|>") == 2
    assert tokenizer.decode(ids) == "user\nhi"  # special tokens skipped
    assert tokenizer.decode(ids, skip_special_tokens=False) == "<|im_start|>user\nhi<|im_end|>"
    assert tokenizer.eos_token_ids == (2,)


def test_smollm2_chat_template(tokenizer):
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi there"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], add_generation_prompt=False
    )
    assert with_system == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"


def test_template_helpers_and_sandbox():
    template = ("{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}"
                "{% endif %}{{ bos_token }}{{ messages | tojson }}{{ eos_token }}")
    assert render_chat_template(template, [{"role": "user", "content": "é"}], bos_token="<s>", eos_token="</s>") == (
        '<s>[{"role": "user", "content": "é"}]</s>'
    )
    with pytest.raises(ChatTemplateError, match="first message must be from the user"):
        render_chat_template(template, [{"role": "assistant", "content": "x"}])
    with pytest.raises(ChatTemplateError):
        render_chat_template("{{ ''.__class__.__mro__ }}", [])
