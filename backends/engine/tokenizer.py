"""The engine's tokenizer: a Hugging Face `tokenizer.json` plus the chat template and special tokens around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.engine.chat_template import render_chat_template
from backends.engine.errors import MissingChatTemplateError, ModelNotFoundError


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json spells special tokens as strings or as {"content": ...} dicts."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [int(v) for v in value]


class Tokenizer:
    def __init__(
        self, backend: Any, *, chat_template: str | None = None, bos_token: str | None = None,
        eos_token: str | None = None, extra_eos_token_ids: tuple[int, ...] = (),
    ) -> None:
        self.backend = backend  # a tokenizers.Tokenizer
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token
        eos_ids = [backend.token_to_id(eos_token)] if eos_token else []
        eos_ids += list(extra_eos_token_ids)
        self.eos_token_ids: tuple[int, ...] = tuple(dict.fromkeys(i for i in eos_ids if i is not None))

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> Tokenizer:
        """Read tokenizer.json, tokenizer_config.json, and the eos ids of config.json / generation_config.json."""
        from tokenizers import Tokenizer as Backend

        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.exists():
            raise ModelNotFoundError(
                f"{path} is missing; the engine needs the fast-tokenizer file tokenizer.json (save it with "
                f"transformers' AutoTokenizer.from_pretrained(...).save_pretrained(dir))"
            )
        backend = Backend.from_file(str(path))
        config = _read_json(model_dir / "tokenizer_config.json")
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: use "default"
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        jinja_file = model_dir / "chat_template.jinja"
        if template is None and jinja_file.exists():
            template = jinja_file.read_text(encoding="utf-8")
        extra_eos = _ids(_read_json(model_dir / "config.json").get("eos_token_id"))
        extra_eos += _ids(_read_json(model_dir / "generation_config.json").get("eos_token_id"))
        return cls(
            backend, chat_template=template, bos_token=_token_text(config.get("bos_token")),
            eos_token=_token_text(config.get("eos_token")), extra_eos_token_ids=tuple(extra_eos),
        )

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        if not self.chat_template:
            raise MissingChatTemplateError(
                "this model has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); "
                "send a plain completion prompt instead, or add a template to the model directory"
            )
        return render_chat_template(
            self.chat_template, messages, add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token, eos_token=self.eos_token,
        )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
