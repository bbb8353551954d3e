"""The request service: predict, route, queue, and hand back the job's event stream.

Errors before the first token (unknown model, no worker, queue full, prompt too long, upstream down,
queue unreachable) are raised from `start` so the proxy can answer with the right status; the stream
it returns is bounded by the request timeout and cancels the job if the caller stops reading.

Routing (`model`): "auto" uses routing.default_policy, "auto:<policy>" names one, and RouteLLM-style
"router-<policy>-<threshold>" names one with its number (the threshold of `threshold`, the quality target
of `quality-floor`); a model or deployment name routes among that model's deployments. Each decision is
logged as one JSON line on the `tamer.route` logger.

Fail-over: when the chosen deployment fails before the first token (upstream unreachable, engine gone,
queue full), the request is routed again without it, up to routing.max_attempts deployments; a failing
deployment cools down (router/policies/health.py) and is avoided while another candidate is left.

Each job's priority is its predicted output tokens (shortest first); the queue ages it (Aging in
backends/workqueue/base.py) so a long job waits a bounded time.

Time: routing state (the budget controller, deployment health) reads the time only through `clock`
(monotonic seconds, time.monotonic by default), so a replay can run it on simulated time; request
deadlines always run on the real clock.

Feedback: when a job finishes, its true output length goes back to the predictor (`observe`, once per
job, before the finish event reaches the client), which corrects that model's length bias online. A job
that errors or whose client leaves first reports nothing; a failing `observe` is logged, never raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Sequence

from backends.deployment import DeploymentSpec
from backends.errors import (BackendUnavailableError, InternalError, JobTimeoutError, QueueFullError, TamerError,
                             UpstreamError)
from backends.events import ErrorEvent, Event, FinishEvent, is_terminal
from backends.job import GenerationRequest, Job, new_job_id
from backends.workqueue.base import WorkQueue
from predictor.base import PredictionInput, Predictor
from router.config import RoutingSettings
from router.errors import ModelNotFoundError
from router.policies.base import (Candidate, Decision, NoCandidateError, RouteTargets, UnknownPolicyError,
                                  create_policy)
from router.policies.health import DeploymentHealth

AUTO = "auto"
ROUTER_PREFIX = "router-"  # RouteLLM's model names: router-<policy>-<threshold>
# failures before the first token that another deployment may not have; QueueFull is load, not a fault
FAIL_OVER_ERRORS = (BackendUnavailableError, UpstreamError, InternalError, QueueFullError)

log = logging.getLogger("tamer.service")
route_log = logging.getLogger("tamer.route")


@dataclass
class RoutedStream:
    """A routed, queued job: the decision, its first event (already received) and an iterator for the rest."""

    job_id: str
    decision: Decision
    first: Event
    rest: AsyncIterator[Event]
    failed_over_from: tuple[tuple[str, str], ...] = ()  # (deployment, error code) tried first, in order

    async def events(self) -> AsyncIterator[Event]:
        yield self.first
        if is_terminal(self.first):
            return
        async for event in self.rest:
            yield event

    async def aclose(self) -> None:
        """Stop reading; cancels the job if it has not finished."""
        await self.rest.aclose()


def prediction_input(request: GenerationRequest) -> PredictionInput:
    if request.kind == "chat":
        text = "\n".join(str(m.get("content") or "") for m in request.messages)
        return PredictionInput(prompt_text=text, num_messages=len(request.messages), max_tokens=request.max_tokens)
    return PredictionInput(prompt_text=request.prompt, num_messages=0, max_tokens=request.max_tokens)


class RequestService:
    def __init__(self, deployments: Sequence[DeploymentSpec], queue: WorkQueue, predictor: Predictor,
                 default_policy: str, request_timeout_s: float, routing: RoutingSettings | None = None) -> None:
        self.deployments = {d.name: d for d in deployments}
        self.queue = queue
        self.predictor = predictor
        self.request_timeout_s = request_timeout_s
        self.clock: Callable[[], float] = time.monotonic  # the routing clock (see the module docstring)
        # called with (model, predicted median tokens, true output tokens) of each finished job, e.g. a metric
        self.feedback_listeners: list[Callable[[str, float, int], None]] = []
        if routing is None and default_policy not in self._known_policies():
            create_policy(default_policy)  # raises, listing the registered names
        # without the routing settings (given later by `configure`) the default policy is built on first use
        self.configure(routing or RoutingSettings(default_policy=default_policy), build=routing is not None)

    def configure(self, routing: RoutingSettings, build: bool = True) -> None:
        """Use these routing settings; policies are rebuilt with their options (the default one now, so a
        misconfigured policy fails at startup, not on the first request)."""
        self.routing = routing
        self.default_policy = routing.default_policy
        self.health = DeploymentHealth(cooldown_s=routing.cooldown_s, max_cooldown_s=max(120.0, routing.cooldown_s))
        self._policies = {}
        if build:
            self._policy(self.default_policy)

    def known_models(self) -> list[str]:
        return sorted({d.model for d in self.deployments.values()})

    def _policy(self, name: str):
        if name not in self._policies:
            self._policies[name] = create_policy(name, **self.routing.policy_options(name))
        return self._policies[name]

    def policies_in_use(self) -> dict[str, object]:
        return dict(self._policies)

    def resolve(self, model: str) -> tuple[str, list[DeploymentSpec]]:
        """`model` -> (policy name, candidate deployments). 'auto', 'auto:<policy>', a model or a deployment name."""
        policy, specs, _ = self.resolve_route(model)
        return policy, specs

    def resolve_route(self, model: str) -> tuple[str, list[DeploymentSpec], float | None]:
        """`model` -> (policy name, candidate deployments, threshold of a router-<policy>-<threshold> name)."""
        threshold = None
        if model == AUTO or model.startswith(AUTO + ":"):
            policy = model.split(":", 1)[1] if ":" in model else self.default_policy
        elif model.startswith(ROUTER_PREFIX) and model.count("-") >= 2 and not self._serves(model):
            policy, _, number = model[len(ROUTER_PREFIX):].rpartition("-")
            try:
                threshold = float(number)
            except ValueError:
                threshold = -1.0
            if not 0.0 <= threshold <= 1.0:
                raise ModelNotFoundError(f"model {model!r}: the threshold after the last '-' must be a number "
                                         "in [0, 1], e.g. router-threshold-0.3")
        else:
            matches = [d for d in self.deployments.values() if d.model == model or d.name == model]
            if not matches:
                raise ModelNotFoundError(
                    f"model {model!r} is not served here; known models: {self.known_models()} "
                    f"(or 'auto', 'auto:<policy>', 'router-<policy>-<threshold>' with policies "
                    f"{self._known_policies()})"
                )
            return self.default_policy, matches, None
        try:
            self._policy(policy)
        except UnknownPolicyError as err:
            raise ModelNotFoundError(f"model {model!r}: {err}") from err
        except ValueError as err:
            raise ModelNotFoundError(f"model {model!r}: policy {policy!r} is not configured: {err}") from err
        return policy, list(self.deployments.values()), threshold

    def _serves(self, model: str) -> bool:
        return any(d.model == model or d.name == model for d in self.deployments.values())

    @staticmethod
    def _known_policies() -> list[str]:
        from router.policies.base import registered_policies

        return registered_policies()

    async def route(self, request: GenerationRequest, model: str, targets: RouteTargets | None = None) -> Decision:
        decision, _ = await self._route(request, model, targets or RouteTargets())
        return decision

    async def _route(self, request: GenerationRequest, model: str, targets: RouteTargets,
                     exclude: Sequence[str] = ()) -> tuple[Decision, int]:
        """(decision, predicted input tokens). Deployments in `exclude` are not candidates; cooling-down ones
        only when nothing else is left."""
        policy_name, specs, threshold = self.resolve_route(model)
        now_s = self.clock()
        targets = RouteTargets(targets.quality_target, targets.ttft_slo_ms, targets.latency_slo_ms,
                               threshold if targets.threshold is None else targets.threshold, now_s)
        specs = [s for s in specs if s.name not in exclude]
        if not specs:
            raise BackendUnavailableError(f"every deployment for model {model!r} failed: {', '.join(exclude)}")
        healthy = [s for s in specs if self.health.is_available(s.name, now_s)]
        specs = healthy or specs
        pinput = prediction_input(request)
        prediction = self.predictor.predict(pinput, sorted({s.card_model for s in specs}))
        candidates = [Candidate(spec=s, load=await self.queue.load(s.name)) for s in specs]
        try:
            decision = self._policy(policy_name).route(pinput, prediction, candidates, targets)
        except NoCandidateError as err:
            raise BackendUnavailableError(str(err)) from err
        self._log_decision(decision, model, targets, prediction.input_tokens, exclude)
        return decision, prediction.input_tokens

    @staticmethod
    def _log_decision(d: Decision, model: str, targets: RouteTargets, input_tokens: int,
                      exclude: Sequence[str]) -> None:
        if route_log.isEnabledFor(logging.INFO):
            route_log.info(json.dumps({
                "event": "route", "requested": model, "policy": d.policy, "deployment": d.deployment,
                "model": d.model, "est_cost_usd": d.est_cost_usd, "est_saved_usd": d.est_saved_usd,
                "est_input_tokens": input_tokens, "est_output_tokens": round(d.est_output_tokens, 1),
                "p_good": d.p_good, "quality_target": d.quality_target, "ttft_slo_ms": targets.ttft_slo_ms,
                "predicted_wait_ms": round(d.predicted_wait_ms, 1), "is_strong": d.is_strong,
                "failed_over_from": list(exclude), "reason": d.reason}))

    def notice_interruption(self, deployment: str) -> None:
        """A spot interruption notice for `deployment`: route no new work there while it drains."""
        self.health.notice_interruption(deployment, self.clock())

    async def start(self, request: GenerationRequest, model: str, targets: RouteTargets | None = None) -> RoutedStream:
        targets = targets or RouteTargets()
        deadline_s = time.monotonic() + self.request_timeout_s
        failed: list[tuple[str, str]] = []
        while True:
            decision, input_tokens = await self._route(request, model, targets, [name for name, _ in failed])
            try:
                routed = await self._start_on(request, decision, input_tokens, deadline_s)
            except FAIL_OVER_ERRORS as err:
                self._note_failure(decision.deployment, err)
                failed.append((decision.deployment, err.code))
                if len(failed) >= self.routing.max_attempts or not self._has_other(model, failed):
                    raise
                log.warning("deployment %s failed before the first token (%s: %s); failing over",
                            decision.deployment, err.code, err.message)
                continue
            self.health.record_success(decision.deployment)
            routed.failed_over_from = tuple(failed)
            return routed

    def _has_other(self, model: str, failed: list[tuple[str, str]]) -> bool:
        tried = {name for name, _ in failed}
        return any(s.name not in tried for s in self.resolve_route(model)[1])

    def _note_failure(self, deployment: str, err: TamerError) -> None:
        if not isinstance(err, QueueFullError):
            self.health.record_failure(deployment, self.clock(), why=err.code)

    async def _start_on(self, request: GenerationRequest, decision: Decision, input_tokens: int,
                        deadline_s: float) -> RoutedStream:
        spec = self.deployments[decision.deployment]
        job = Job(job_id=new_job_id(), deployment=spec.name, model=spec.backend_model, request=request,
                  priority=decision.est_output_tokens, est_tokens=round(input_tokens + decision.est_output_tokens),
                  deadline_at_s=time.time() + self.request_timeout_s)
        await self.queue.submit(job)
        events = self._bounded(job.job_id, deadline_s, decision, request)
        try:
            first = await events.__anext__()
        except BaseException:
            await events.aclose()
            raise
        if isinstance(first, ErrorEvent):
            await events.aclose()
            raise first.to_error()
        return RoutedStream(job_id=job.job_id, decision=decision, first=first, rest=events)

    def _feed_back(self, request: GenerationRequest, decision: Decision, finish: FinishEvent) -> None:
        """Tell the predictor how long the answer to `request` really was; never raises into the request path."""
        median = decision.est_output_tokens if decision.output_tokens_p50 is None else decision.output_tokens_p50
        spec = self.deployments.get(decision.deployment)
        card = spec.card_model if spec is not None else decision.model
        try:
            self.predictor.observe(card, median, finish.completion_tokens,
                                   truncated=finish.finish_reason == "length", request=prediction_input(request),
                                   correction_log2=decision.correction_log2)
        except Exception:
            log.exception("predictor %r failed to observe a finished job of %s; continuing",
                          getattr(self.predictor, "name", "?"), decision.model)
        for listener in self.feedback_listeners:
            try:
                listener(decision.model, median, finish.completion_tokens)
            except Exception:
                log.exception("feedback listener %r failed; continuing", listener)

    async def _bounded(self, job_id: str, deadline_s: float, decision: Decision,
                       request: GenerationRequest) -> AsyncIterator[Event]:
        """The job's events, ending with a JobTimeoutError at the deadline; cancels the job unless it finished.
        A finish event is fed back to the predictor before it is passed on."""
        source = self.queue.events(job_id).__aiter__()
        loop = asyncio.get_running_loop()
        finished = False
        try:
            while True:
                try:
                    async with asyncio.timeout_at(loop.time() + deadline_s - time.monotonic()):
                        event = await source.__anext__()
                except StopAsyncIteration:
                    finished = True
                    return
                except TimeoutError:
                    raise JobTimeoutError(
                        f"request timed out after {self.request_timeout_s:g} s (server.request_timeout_s)"
                    ) from None
                finished = is_terminal(event)
                if isinstance(event, FinishEvent):
                    self._feed_back(request, decision, event)
                yield event
                if finished:
                    return
        finally:
            if not finished:
                await self.queue.cancel(job_id)
            await source.aclose()
