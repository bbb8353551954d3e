"""A deployment: one named place a model runs (a backend kind, its model, where, and what it costs)."""

from __future__ import annotations

from dataclasses import dataclass

BUNDLED_MODEL = "smollm2-135m-instruct"
MARKETS = ("on-demand", "spot")
# The local engine's dtypes (backends/engine/engine.py DTYPES, named here so that settings load without torch).
# "" and "auto": bfloat16 on CUDA, float32 on CPU. bfloat16 on CPU pays where the processor has native bf16
# (AVX512-BF16 or AMX): about 1.5x the output tokens/s of float32 on 2 cores, at bf16's precision.
LOCAL_DTYPES = ("", "auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
# (temperature, top_p) for a request that gives neither, unless the deployment sets its own: the bundled
# SmolLM2-Instruct's model card recommends 0.2 / 0.9; any other local model gets OpenAI's 1.0 / 1.0.
BUNDLED_SAMPLING_DEFAULTS = (0.2, 0.9)
OPENAI_SAMPLING_DEFAULTS = (1.0, 1.0)


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment from the settings file; `model` is the name clients ask for."""

    name: str
    backend: str  # a registered backend kind: "local", "openai"
    model: str
    upstream_model: str = ""  # name sent to the backend; defaults to `model`
    url: str = ""  # base URL of an OpenAI-compatible server, e.g. http://host:8000/v1
    api_key_env: str = ""  # environment variable holding the upstream API key
    path: str = ""  # local backend: an HF safetensors directory; empty = the bundled model
    device: str = ""  # local backend: "cpu", "cuda"; empty = best available
    kv_cache_gib: float = 0.0  # local backend: KV-cache memory; 0 = a fraction of free memory
    dtype: str = ""  # local backend: weights, activations and KV cache (LOCAL_DTYPES); "" = auto
    kv_cache_dtype: str = ""  # local backend: the KV cache's own dtype; "" = dtype's (engine.py EngineConfig)
    usd_per_1m_input_tokens: float = 0.0
    usd_per_1m_output_tokens: float = 0.0
    max_concurrency: int = 8  # jobs one worker runs at once on this deployment
    max_queue_depth: int = 256  # queued (not yet running) jobs before the proxy answers 429
    aging_s_per_token: float | None = None  # shortest-first scale, see queue_aging_s_per_token; None = derived
    context_window_tokens: int = 0  # 0 = ask the backend
    timeout_s: float = 600.0  # upstream request timeout
    default_temperature: float | None = None  # for a request with no temperature (local backend); None = the model's
    default_top_p: float | None = None  # for a request with no top_p (local backend); None = the model's
    http_client: str = "fast"  # openai backend: "fast" (httptools) or "httpx" (proxies, redirects, HTTP/2)
    predictor_model: str = ""  # the model card the predictor reads for this deployment; "" = model
    # Self-hosted capacity, billed by GPU time (instead of, or beside, per-token prices):
    instance_type: str = ""  # cloud instance it runs on (cost_model catalog), e.g. "g5.xlarge"; "" = none
    region: str = "us-east-1"  # where, for the catalog's price
    market: str = "on-demand"  # "on-demand" | "spot" (spot carries its interruption risk)
    usd_per_hour: float = 0.0  # instance price; 0 = the catalog's price of instance_type in region and market
    tokens_per_s: float = 0.0  # measured output tokens/s of one replica at full batch; 0 = unknown
    prefill_tokens_per_s: float = 0.0  # measured prompt tokens/s of one replica; 0 = modeled (router/policies/prefill.py)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a deployment needs a name")
        if not self.model:
            raise ValueError(f"deployment {self.name!r} needs a model")
        if self.backend == "openai" and not self.url:
            raise ValueError(f"deployment {self.name!r}: backend 'openai' needs url (e.g. http://127.0.0.1:8000/v1)")
        for field_name in ("usd_per_1m_input_tokens", "usd_per_1m_output_tokens"):
            if getattr(self, field_name) < 0:
                raise ValueError(f"deployment {self.name!r}: {field_name} must be >= 0")
        if self.max_concurrency < 1:
            raise ValueError(f"deployment {self.name!r}: max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.aging_s_per_token is not None and not self.aging_s_per_token >= 0:
            raise ValueError(f"deployment {self.name!r}: aging_s_per_token must be >= 0 (0: FCFS), or left out")
        if self.max_queue_depth < 1:
            raise ValueError(f"deployment {self.name!r}: max_queue_depth must be >= 1, got {self.max_queue_depth}")
        temperature, top_p = self.sampling_defaults
        if not 0.0 <= temperature <= 2.0 or not 0.0 < top_p <= 1.0:
            raise ValueError(f"deployment {self.name!r}: default_temperature must be in [0, 2], default_top_p in (0, 1]")
        if self.kv_cache_gib < 0:
            raise ValueError(f"deployment {self.name!r}: kv_cache_gib must be >= 0 (0 = automatic)")
        for field_name in ("dtype", "kv_cache_dtype"):
            if getattr(self, field_name) not in LOCAL_DTYPES:
                raise ValueError(f"deployment {self.name!r}: {field_name} must be one of {list(LOCAL_DTYPES[1:])} (or "
                                 f"left out for auto), got {getattr(self, field_name)!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"deployment {self.name!r}: timeout_s must be > 0")
        if self.market not in MARKETS:
            raise ValueError(f"deployment {self.name!r}: market must be one of {list(MARKETS)}, got {self.market!r}")
        if self.usd_per_hour < 0 or self.tokens_per_s < 0 or self.prefill_tokens_per_s < 0:
            raise ValueError(f"deployment {self.name!r}: usd_per_hour, tokens_per_s and prefill_tokens_per_s "
                             "must be >= 0")
        if self.is_billed_by_time and self.tokens_per_s == 0:
            raise ValueError(f"deployment {self.name!r}: GPU-time cost (instance_type or usd_per_hour) needs "
                             "tokens_per_s, the measured output tokens/s of one replica (e.g. from bench/engine.py)")

    @property
    def backend_model(self) -> str:
        return self.upstream_model or self.model

    @property
    def card_model(self) -> str:
        """The name the predictor knows this deployment's model by."""
        return self.predictor_model or self.model

    @property
    def is_billed_by_time(self) -> bool:
        return bool(self.instance_type) or self.usd_per_hour > 0

    @property
    def sampling_defaults(self) -> tuple[float, float]:
        """(temperature, top_p) for a request that gives neither: the deployment's own, else its model's."""
        is_bundled = self.backend == "local" and not self.path
        temperature, top_p = BUNDLED_SAMPLING_DEFAULTS if is_bundled else OPENAI_SAMPLING_DEFAULTS
        return (temperature if self.default_temperature is None else self.default_temperature,
                top_p if self.default_top_p is None else self.default_top_p)


def bundled_deployment() -> DeploymentSpec:
    """The embedded default: the bundled SmolLM2 on the local engine (with its model card's sampling defaults)."""
    return DeploymentSpec(name="local-smollm2", backend="local", model=BUNDLED_MODEL)


def queue_aging_s_per_token(spec: DeploymentSpec, default_s_per_token: float) -> float:
    """How much later a job on this deployment counts as arriving per predicted output token (shortest first).

    The deployment's own `aging_s_per_token` if set; else, when its throughput is measured, the time one
    sequence's slot spends per output token (max_concurrency / tokens_per_s), so a job predicted N tokens
    longer yields to a shorter one for as long as those N tokens take to write there; else the queue's default.
    """
    if spec.aging_s_per_token is not None:
        return spec.aging_s_per_token
    if spec.tokens_per_s > 0:
        return spec.max_concurrency / spec.tokens_per_s
    return default_s_per_token
