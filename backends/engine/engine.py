"""LLMEngine: requests in, one step of tokens and streamable text out. Not thread-safe; drive it from one thread.

Each step the scheduler picks a token budget's worth of work from all live requests (decodes, prefill
chunks, new admissions: continuous batching), the model runner runs it as one batch against the paged
KV cache, and the sampler picks every finished row's next token with that request's own settings.
"""

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
from backends.engine.block_manager import BlockManager
from backends.engine.kv_cache import PagedKVCache, bytes_per_block, kv_cache_budget_bytes
from backends.engine.model_runner import ModelRunner
from backends.engine.sampler import TokenLogprobs, new_generator, sample_batch
from backends.engine.sampling_params import SamplingParams
from backends.engine.scheduler import Scheduler, SchedulerConfig
from backends.engine.sequence import Sequence
from backends.engine.tokenizer import Tokenizer
from kernels import ops

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
    logprobs: list[TokenLogprobs] | None = None  # one per new token, when the request asked for logprobs


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


@dataclass(frozen=True)
class EngineConfig:
    """How the engine batches and how much memory its KV cache takes."""

    max_num_seqs: int = 64  # sequences running at once
    max_num_batched_tokens: int = 512  # tokens per step (decodes + prefill chunks)
    block_size: int = 16  # tokens per KV-cache block
    kv_cache_gib: float | None = None  # None: a fraction of free memory (kv_cache.py)
    num_kv_blocks: int | None = None  # exact block count (overrides kv_cache_gib; for tests)
    enable_prefix_caching: bool = True
    aging_per_step: float = 1.0  # see scheduler.py
    # The KV cache's dtype; None or "auto" = the model's. "bfloat16" under a float32 model halves the bytes every decode
    # step reads (decode attention is bound by them on CPU) at bf16's rounding of keys and values, so greedy
    # output may then part from an all-fp32 run.
    kv_cache_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.num_kv_blocks is not None and self.num_kv_blocks < 1:
            raise ValueError(f"num_kv_blocks must be >= 1, got {self.num_kv_blocks}")
        SchedulerConfig(self.max_num_seqs, self.max_num_batched_tokens, self.aging_per_step)  # validates
        if self.kv_cache_dtype not in (None, "auto") and self.kv_cache_dtype not in DTYPES:
            raise ValueError(f"kv_cache_dtype {self.kv_cache_dtype!r} is not supported; use one of: auto, "
                             f"{', '.join(DTYPES)}")


class LLMEngine:
    def __init__(self, *, model, tokenizer: Tokenizer, config: ModelConfig, model_name: str,
                 engine_config: EngineConfig | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.model_name = model_name
        self.engine_config = ec = engine_config or EngineConfig()
        self.device = model.lm_head.weight.device
        self.dtype = model.lm_head.weight.dtype
        self.kv_cache_dtype = DTYPES[ec.kv_cache_dtype] if ec.kv_cache_dtype not in (None, "auto") else self.dtype
        num_blocks = ec.num_kv_blocks or self._num_blocks_for_budget(ec)
        self.max_model_len = min(config.max_model_len, num_blocks * ec.block_size)
        if self.max_model_len < 16:
            raise ValueError(f"the KV cache holds only {num_blocks} blocks of {ec.block_size} tokens; "
                             f"give it more memory (kv_cache_gib)")
        self.cache = PagedKVCache(num_layers=config.num_hidden_layers, num_blocks=num_blocks,
                                  block_size=ec.block_size, num_kv_heads=config.num_key_value_heads,
                                  head_dim=config.head_dim, dtype=self.kv_cache_dtype, device=self.device)
        self.block_manager = BlockManager(num_blocks, ec.block_size, enable_prefix_caching=ec.enable_prefix_caching)
        self.scheduler = Scheduler(SchedulerConfig(ec.max_num_seqs, ec.max_num_batched_tokens, ec.aging_per_step),
                                   self.block_manager)
        self.runner = ModelRunner(model, self.cache)
        self._seqs: dict[str, Sequence] = {}
        self._generate_ids = itertools.count()

    def _num_blocks_for_budget(self, ec: EngineConfig) -> int:
        per_block = bytes_per_block(num_layers=self.config.num_hidden_layers, block_size=ec.block_size,
                                    num_kv_heads=self.config.num_key_value_heads, head_dim=self.config.head_dim,
                                    dtype=self.kv_cache_dtype)
        return max(1, kv_cache_budget_bytes(self.device, ec.kv_cache_gib) // per_block)

    @classmethod
    def from_pretrained(
        cls, model: str | None = None, *, device: str | None = None, dtype: str | None = None,
        max_num_seqs: int = 64, **engine_options,
    ) -> LLMEngine:
        """model None or 'smollm2-135m-instruct' is the bundled model; otherwise a Hugging Face directory path.

        engine_options are EngineConfig fields (max_num_batched_tokens, kv_cache_gib, block_size, ...).
        """
        from backends.engine.cpu_memory import keep_freed_memory
        from backends.engine.weights import load_model

        started = time.perf_counter()
        engine_config = EngineConfig(max_num_seqs=max_num_seqs, **engine_options)
        model_dir, model_name = resolve_model_dir(model)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        if torch_device.type == "cpu":
            keep_freed_memory()  # reuse the step's temporaries instead of mapping them afresh (cpu_memory.py)
        ops.prepare(torch_device)  # the C++ CPU kernels build here (once per machine), not in the first step
        config = ModelConfig.from_model_dir(model_dir)
        tokenizer = Tokenizer.from_model_dir(model_dir)
        network = load_model(model_dir, config, device=torch_device, dtype=torch_dtype)
        network.pack_linears(engine_config.max_num_seqs)  # CPU: weights prepacked for oneDNN (kernels/cpu)
        engine = cls(model=network, tokenizer=tokenizer, config=config, model_name=model_name,
                     engine_config=engine_config)
        log.info("loaded %s from %s on %s (%s) in %.1f s; KV cache %d blocks x %d tokens (%.2f GiB)", model_name,
                 model_dir, torch_device, str(torch_dtype).removeprefix("torch."), time.perf_counter() - started,
                 engine.cache.num_blocks, engine.cache.block_size, engine.cache.nbytes / 2**30)
        return engine

    def add_request(self, request_id: str, prompt_token_ids: list[int], sampling: SamplingParams,
                    priority: float | None = None) -> None:
        """Queue a request. priority: lower runs first (e.g. predicted output tokens); None = FCFS."""
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
        if priority is not None and not priority >= 0:
            raise ValueError(f"priority must be >= 0 (lower runs first), got {priority!r}")
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
            priority=priority or 0.0,
            generator=new_generator(sampling.seed, self.device),
        )
        self._seqs[request_id] = seq
        self.scheduler.add(seq)

    def abort(self, request_id: str) -> None:
        """Drop a request and free its KV-cache blocks at once; an unknown or finished id is ignored."""
        if self._seqs.pop(request_id, None) is not None:
            self.scheduler.remove(request_id)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def num_unfinished(self) -> int:
        return self.scheduler.num_unfinished()

    def stats(self) -> dict[str, int]:
        return {
            "num_running": len(self.scheduler.running), "num_waiting": len(self.scheduler.waiting),
            "num_kv_blocks": self.block_manager.num_blocks, "num_free_kv_blocks": self.block_manager.num_free_blocks,
            "num_preemptions": self.scheduler.num_preemptions,
            "num_prefix_hit_tokens": self.block_manager.num_prefix_hit_tokens,
        }

    @torch.inference_mode()
    def step(self) -> list[StepOutput]:
        """Run one scheduled batch; one StepOutput per sequence that got a new token."""
        scheduled = self.scheduler.schedule()
        if not scheduled:
            return []
        batch = self.runner.prepare(scheduled)
        logits = self.runner.run(batch)  # (num_sampling, vocab_size)
        for s in batch.ordered:
            s.seq.num_computed_tokens += s.num_tokens
            self.block_manager.commit(s.seq, s.seq.num_computed_tokens)
        seqs = [s.seq for s in batch.sampling]
        token_ids, logprobs = sample_batch(logits, [q.sampling for q in seqs], [q.generator for q in seqs])
        return [self._append(seq, token_id, lp) for seq, token_id, lp in zip(seqs, token_ids, logprobs)]

    def _append(self, seq: Sequence, token_id: int, logprobs: TokenLogprobs | None) -> StepOutput:
        seq.append_token(token_id)
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
            del self._seqs[seq.request_id]
        return StepOutput(
            request_id=seq.request_id, new_token_ids=[token_id], new_text=text, finished=reason is not None,
            finish_reason=reason, num_prompt_tokens=seq.num_prompt_tokens, num_output_tokens=seq.num_output_tokens,
            logprobs=None if logprobs is None else [logprobs],
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
