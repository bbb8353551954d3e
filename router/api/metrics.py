"""Prometheus metrics of the proxy, on a registry of its own (one per app, so tests can build many)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_LOG2_RATIO_BUCKETS = (-4, -3, -2, -1.5, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 1.5, 2, 3, 4)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tamer_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.request_duration_s = Histogram("tamer_request_duration_seconds", "Time from request to last byte",
                                            ["endpoint"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.ttft_s = Histogram("tamer_time_to_first_token_seconds", "Time from request to first token",
                                ["deployment"], buckets=_LATENCY_BUCKETS_S, registry=r)
        self.decisions = Counter("tamer_routing_decisions", "Routing decisions",
                                 ["policy", "deployment", "model"], registry=r)
        self.tokens = Counter("tamer_tokens", "Tokens processed", ["deployment", "kind"], registry=r)
        self.est_cost_usd = Counter("tamer_estimated_cost_usd", "Estimated cost of routed requests",
                                    ["deployment"], registry=r)
        self.cancelled = Counter("tamer_requests_cancelled", "Requests whose client went away before the end",
                                 ["deployment"], registry=r)
        self.queue_depth = Gauge("tamer_queue_depth", "Jobs waiting", ["deployment"], registry=r)
        self.in_flight = Gauge("tamer_jobs_in_flight", "Jobs claimed by a worker, not yet done",
                               ["deployment"], registry=r)
        self.workers_alive = Gauge("tamer_workers_alive", "Workers serving the deployment", ["deployment"],
                                   registry=r)
        self.engine_sequences = Gauge("tamer_engine_active_sequences", "Sequences live in a local engine",
                                      ["deployment"], registry=r)
        self.est_saved_usd = Counter("tamer_estimated_saved_usd", "Estimated $ saved against sending every routed "
                                     "request to the strongest candidate", ["policy"], registry=r)
        self.predicted_output_tokens = Counter("tamer_predicted_output_tokens", "Predicted median output tokens of "
                                               "finished requests (compare tamer_actual_output_tokens)", ["model"],
                                               registry=r)
        self.actual_output_tokens = Counter("tamer_actual_output_tokens", "Output tokens of finished requests",
                                            ["model"], registry=r)
        self.failovers = Counter("tamer_failovers", "Requests moved to another deployment after a failure before "
                                 "the first token", ["deployment", "code"], registry=r)
        self.deployment_avoided = Gauge("tamer_deployment_avoided", "1 while the router avoids the deployment "
                                        "(cooling down after failures, or draining after an interruption notice)",
                                        ["deployment"], registry=r)
        self.budget_target = Gauge("tamer_budget_target", "The budget policy's target ($/hour or strong share)",
                                   ["kind"], registry=r)
        self.budget_measured = Gauge("tamer_budget_measured", "What the budget policy measured over its window",
                                     ["kind"], registry=r)
        self.budget_relative_error = Gauge("tamer_budget_relative_error", "How close the budget policy holds: "
                                           "(measured - target) / target", ["kind"], registry=r)
        self.budget_quality_target = Gauge("tamer_budget_quality_target", "The quality target the budget "
                                           "controller set", ["kind"], registry=r)
        self.output_length_error_log2 = Histogram(
            "tamer_output_length_error_log2", "log2((1 + actual) / (1 + predicted median)) output tokens of "
            "finished requests: 0 is exact, +1 twice as long as predicted", ["model"],
            buckets=_LOG2_RATIO_BUCKETS, registry=r)

    def observe_output_length(self, model: str, predicted_tokens: float, output_tokens: int) -> None:
        """One finished request's predicted median against its true output length."""
        if predicted_tokens >= 0 and math.isfinite(predicted_tokens) and output_tokens >= 0:
            error = math.log2(1 + output_tokens) - math.log2(1 + predicted_tokens)
            self.output_length_error_log2.labels(model).observe(error)
            self.predicted_output_tokens.labels(model).inc(predicted_tokens)
            self.actual_output_tokens.labels(model).inc(output_tokens)

    def observe_decision(self, decision, failed_over_from=()) -> None:
        """One routed request: the decision per policy/deployment/model, its estimated $ and saving, fail-overs."""
        self.decisions.labels(decision.policy, decision.deployment, decision.model).inc()
        self.est_cost_usd.labels(decision.deployment).inc(decision.est_cost_usd)
        self.est_saved_usd.labels(decision.policy).inc(decision.est_saved_usd)
        for deployment, code in failed_over_from:
            self.failovers.labels(deployment, code).inc()

    def set_routing_state(self, deployment_names, avoided, budget_reports) -> None:
        """Gauges read at scrape time: deployments avoided now, and each budget controller's report."""
        for name in deployment_names:
            self.deployment_avoided.labels(name).set(1 if name in avoided else 0)
        for report in budget_reports:
            self.budget_target.labels(report.kind).set(report.target)
            self.budget_measured.labels(report.kind).set(report.measured)
            self.budget_relative_error.labels(report.kind).set(report.relative_error)
            self.budget_quality_target.labels(report.kind).set(report.quality_target)

    def render(self) -> bytes:
        return generate_latest(self.registry)
