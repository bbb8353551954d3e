"""LLMEngine: requests in, one step of tokens and streamable text out. Not thread-safe; drive it from one thread."""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from backends.engine.bundled import BUNDLED_MODEL_NAME, bundled_model_dir
from backends.engine.config import ModelConfig
from backends.engine.detokenizer import IncrementalDetokenizer
from backends.engine.errors import (
    DuplicateRequestError,
    EngineBusyError,
    InvalidPromptError,
    ModelNotFoundError,
    PromptTooLongError,
)
from backends.engine.model_runner import ModelRunner
from backends.engine.sampler import new_generator, sample
from backends.engine.sampling_params import SamplingParams
from backends.engine.scheduler import Scheduler
from backends.engine.sequence import Sequence
from backends.engine.tokenizer import Tokenizer

log = logging.getLogger("tamer.engine")

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


@dataclass
class StepOutput:
    request_id: str
    new_token_ids: list[int]
    new_text: str  # text safe to emit now (stop-string hold-back applied)
    finished: bool
    finish_reason: str | None  # "stop" (EOS / stop string / stop token) or "length"
    num_prompt_tokens: int
    num_output_tokens: int


def resolve_device(device: str | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use device='cpu'")
    return resolved


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """None or 'auto': bfloat16 on CUDA, float32 elsewhere."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of: auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_model_dir(model: str | None) -> tuple[Path, str]:
    """(Hugging Face directory, model name) for the bundled model's name or a directory path."""
    if model is None or model == BUNDLED_MODEL_NAME:
        return bundled_model_dir(), BUNDLED_MODEL_NAME
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model {model!r} is neither the bundled {BUNDLED_MODEL_NAME!r} nor a directory; pass the path of a "
            f"Hugging Face model directory (config.json, tokenizer.json, *.safetensors)"
        )
    return path, path.resolve().name


class LLMEngine:
    def __init__(
        self, *, model, tokenizer: Tokenizer, config: ModelConfig, model_name: str, max_num_seqs: int = 8,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.model_name = model_name
        self.max_model_len = config.max_model_len
        self.device = model.lm_head.weight.device
        self.dtype = model.lm_head.weight.dtype
        self.scheduler = Scheduler(max_num_seqs)
        self.runner = ModelRunner(model, max_model_len=self.max_model_len)
        self._seqs: dict[str, Sequence] = {}
        self._generate_ids = itertools.count()

    @classmethod
    def from_pretrained(
        cls, model: str | None = None, *, device: str | None = None, dtype: str | None = None, max_num_seqs: int = 8,
    ) -> LLMEngine:
        """model None or 'smollm2-135m-instruct' is the bundled model; otherwise a Hugging Face directory path."""
        from backends.engine.weights import load_model

        started = time.perf_counter()
        model_dir, model_name = resolve_model_dir(model)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        config = ModelConfig.from_model_dir(model_dir)
        tokenizer = Tokenizer.from_model_dir(model_dir)
        network = load_model(model_dir, config, device=torch_device, dtype=torch_dtype)
        log.info("loaded %s from %s on %s (%s) in %.1f s", model_name, model_dir, torch_device,
                 str(torch_dtype).removeprefix("torch."), time.perf_counter() - started)
        return cls(model=network, tokenizer=tokenizer, config=config, model_name=model_name,
                   max_num_seqs=max_num_seqs)

    def add_request(self, request_id: str, prompt_token_ids: list[int], sampling: SamplingParams) -> None:
        if request_id in self._seqs:
            raise DuplicateRequestError(request_id)
        prompt = [int(t) for t in prompt_token_ids]
        if not prompt:
            raise InvalidPromptError("prompt_token_ids is empty; the model needs at least one prompt token")
        if len(prompt) + 1 > self.max_model_len:
            raise PromptTooLongError(len(prompt), self.max_model_len)
        vocab_size = self.config.vocab_size
        bad = [t for t in prompt if not 0 <= t < vocab_size]
        if bad:
            raise InvalidPromptError(
                f"prompt token ids {bad[:5]} are outside this model's vocabulary [0, {vocab_size})"
            )
        stop_ids = set(sampling.stop_token_ids)
        if not sampling.ignore_eos:
            stop_ids.update(self.tokenizer.eos_token_ids)
        seq = Sequence(
            request_id=request_id,
            prompt_token_ids=prompt,
            sampling=sampling,
            max_output_tokens=min(sampling.max_tokens, self.max_model_len - len(prompt)),
            detokenizer=IncrementalDetokenizer(self.tokenizer.decode, stop=sampling.stop, context_ids=prompt),
            stop_token_ids=frozenset(stop_ids),
            generator=new_generator(sampling.seed, self.device),
        )
        self._seqs[request_id] = seq
        self.scheduler.add(seq)

    def abort(self, request_id: str) -> None:
        """Drop a request and free its KV cache at once; an unknown or finished id is ignored."""
        seq = self._seqs.pop(request_id, None)
        if seq is None:
            return
        self.scheduler.remove(request_id)
        self.runner.free(seq)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def num_unfinished(self) -> int:
        return self.scheduler.num_unfinished()

    @torch.inference_mode()
    def step(self) -> list[StepOutput]:
        """Run every scheduled sequence one token forward (its prefill on the first step); one output each."""
        seqs = self.scheduler.schedule()
        if not seqs:
            return []
        outputs = []
        for seq, logits in zip(seqs, self.runner.run(seqs)):
            token_id = sample(logits, seq.sampling, seq.generator)
            outputs.append(self._append(seq, token_id))
        return outputs

    def _append(self, seq: Sequence, token_id: int) -> StepOutput:
        seq.output_token_ids.append(token_id)
        reason = None
        if token_id in seq.stop_token_ids:
            reason, text = "stop", seq.detokenizer.flush()
        else:
            text = seq.detokenizer.add(token_id)
            if seq.detokenizer.stop_string is not None:
                reason = "stop"
            elif seq.num_output_tokens >= seq.max_output_tokens:
                reason, text = "length", text + seq.detokenizer.flush()
        if reason is not None:
            seq.finish_reason = reason
            self.scheduler.finish(seq)
            self.runner.free(seq)
            del self._seqs[seq.request_id]
        return StepOutput(
            request_id=seq.request_id, new_token_ids=[token_id], new_text=text, finished=reason is not None,
            finish_reason=reason, num_prompt_tokens=seq.num_prompt_tokens, num_output_tokens=seq.num_output_tokens,
        )

    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[str]:
        """Encode each prompt as plain text, run all to completion, return the texts in prompt order."""
        if self.has_unfinished():
            raise EngineBusyError(
                f"generate() needs an idle engine but {self.num_unfinished()} requests are unfinished; "
                f"drive them with step() or abort() them first"
            )
        request_ids = [f"generate-{next(self._generate_ids)}" for _ in prompts]
        for request_id, prompt in zip(request_ids, prompts):
            self.add_request(request_id, self.tokenizer.encode(prompt, add_special_tokens=False), sampling)
        texts = {request_id: [] for request_id in request_ids}
        while self.has_unfinished():
            for out in self.step():
                texts[out.request_id].append(out.new_text)
        return ["".join(texts[request_id]) for request_id in request_ids]
