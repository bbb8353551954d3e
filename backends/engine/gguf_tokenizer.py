"""Rebuilding a Hugging Face `tokenizer.json` from the vocabulary a GGUF file stores as metadata.

Only GPT-2-style byte-level BPE vocabularies (`tokenizer.ggml.model == "gpt2"`) are handled. llama.cpp's
pre-tokenizer types map to Hugging Face pre-tokenizers: "smollm" splits every digit apart and then applies the
GPT-2 regex; "gpt2" and "default" apply the GPT-2 regex alone. Control tokens become special added tokens and
user-defined ones plain added tokens, so both are matched whole in text.
"""

from __future__ import annotations

from typing import Any

from backends.engine.errors import UnsupportedArchitectureError

CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types
PRE_TOKENIZER_TYPES = ("smollm", "gpt2", "default")


def build_tokenizer(meta: dict[str, Any]):
    """A `tokenizers.Tokenizer` from GGUF metadata (keys as llama.cpp writes them, values already decoded)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer_model = meta.get("tokenizer.ggml.model")
    if tokenizer_model != "gpt2":
        raise UnsupportedArchitectureError(
            f"GGUF tokenizer model {tokenizer_model!r} is not supported; only byte-level BPE ('gpt2') is"
        )
    pre_type = meta.get("tokenizer.ggml.pre", "default")
    if pre_type not in PRE_TOKENIZER_TYPES:
        raise UnsupportedArchitectureError(
            f"GGUF pre-tokenizer type {pre_type!r} is not supported; supported: {', '.join(PRE_TOKENIZER_TYPES)}"
        )
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    token_types: list[int] = list(meta.get("tokenizer.ggml.token_type") or [1] * len(tokens))
    merges = []
    for merge in meta["tokenizer.ggml.merges"]:
        left, sep, right = merge.partition(" ")
        if not sep or not left or not right:
            raise ValueError(f"GGUF merge {merge!r} is not two tokens separated by one space")
        merges.append((left, right))

    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre_type == "smollm":
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()

    tokenizer.add_special_tokens([
        AddedToken(token, special=True, normalized=False)
        for token, kind in zip(tokens, token_types) if kind == CONTROL
    ])
    tokenizer.add_tokens([
        AddedToken(token, special=False, normalized=False)
        for token, kind in zip(tokens, token_types) if kind == USER_DEFINED
    ])

    bos_id = meta.get("tokenizer.ggml.bos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token") and bos_id is not None:
        bos = tokens[bos_id]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def tokenizer_config(meta: dict[str, Any], model_max_length: int) -> dict[str, Any]:
    """The `tokenizer_config.json` that goes with build_tokenizer's output: special tokens and chat template."""
    tokens = meta["tokenizer.ggml.tokens"]

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}")
        return tokens[index] if index is not None else None

    config: dict[str, Any] = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "bos_token": token("bos_token_id"),
        "eos_token": token("eos_token_id"),
        "unk_token": token("unknown_token_id"),
        "pad_token": token("padding_token_id"),
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }
    if meta.get("tokenizer.chat_template"):
        config["chat_template"] = meta["tokenizer.chat_template"]
    return config
