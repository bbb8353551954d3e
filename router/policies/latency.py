"""Predicted latency of one request on one deployment, from its live load (plain values in and out).

Work ahead of the request = predicted tokens of the jobs in flight + queued jobs times the mean in-flight
job (or this request's own tokens when nothing is in flight). A replica with a free slot starts the request
at once; otherwise it waits for the work ahead to drain at the deployment's throughput:
    wait_s = work_ahead_tokens / (tokens_per_s * workers)
and the whole request takes wait_s + its own output tokens / (tokens_per_s / max_concurrency).
A deployment with no measured throughput is assumed to run DEFAULT_TOKENS_PER_S.
"""

from __future__ import annotations

from backends.deployment import DeploymentSpec
from backends.workqueue.base import DeploymentLoad

DEFAULT_TOKENS_PER_S = 200.0


def outstanding_tokens(load: DeploymentLoad, own_tokens: float) -> float:
    """Predicted tokens of everything the deployment holds: in flight plus queued."""
    per_job = load.num_in_flight_tokens / load.num_in_flight if load.num_in_flight else own_tokens
    return load.num_in_flight_tokens + load.queue_depth * per_job


def predicted_wait_s(spec: DeploymentSpec, load: DeploymentLoad, own_tokens: float) -> float:
    """Predicted time before the request gets a slot (and its first token, prefill aside)."""
    num_workers = max(1, load.num_workers_alive)
    if load.queue_depth == 0 and load.num_in_flight < spec.max_concurrency * num_workers:
        return 0.0
    tokens_per_s = spec.tokens_per_s or DEFAULT_TOKENS_PER_S
    return outstanding_tokens(load, own_tokens) / (tokens_per_s * num_workers)


def predicted_latency_s(spec: DeploymentSpec, load: DeploymentLoad, input_tokens: float,
                        output_tokens: float) -> float:
    """Queue ahead plus the request's own predicted decode time."""
    tokens_per_s = spec.tokens_per_s or DEFAULT_TOKENS_PER_S
    per_sequence_tokens_per_s = tokens_per_s / spec.max_concurrency
    return predicted_wait_s(spec, load, input_tokens + output_tokens) + output_tokens / per_sequence_tokens_per_s
