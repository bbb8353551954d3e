"""The request service: predict, route, queue, and hand back the job's event stream.

Errors before the first token (unknown model, no worker, queue full, prompt too long, upstream down,
queue unreachable) are raised from `start` so the proxy can answer with the right status; the stream
it returns is bounded by the request timeout and cancels the job if the caller stops reading.

Each job's priority is its predicted output tokens (shortest first); the queue ages it (Aging in
backends/workqueue/base.py) so a long job waits a bounded time.

Feedback: when a job finishes, its true output length goes back to the predictor (`observe`, once per
job, before the finish event reaches the client), which corrects that model's length bias online. A job
that errors or whose client leaves first reports nothing; a failing `observe` is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Sequence

from backends.deployment import DeploymentSpec
from backends.errors import BackendUnavailableError, JobTimeoutError
from backends.events import ErrorEvent, Event, FinishEvent, is_terminal
from backends.job import GenerationRequest, Job, new_job_id
from backends.workqueue.base import WorkQueue
from predictor.base import PredictionInput, Predictor
from router.errors import ModelNotFoundError
from router.policies.base import Candidate, Decision, NoCandidateError, UnknownPolicyError, create_policy

AUTO = "auto"

log = logging.getLogger("tamer.service")


@dataclass
class RoutedStream:
    """A routed, queued job: the decision, its first event (already received) and an iterator for the rest."""

    job_id: str
    decision: Decision
    first: Event
    rest: AsyncIterator[Event]

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
                 default_policy: str, request_timeout_s: float) -> None:
        self.deployments = {d.name: d for d in deployments}
        self.queue = queue
        self.predictor = predictor
        self.default_policy = default_policy
        self.request_timeout_s = request_timeout_s
        self._policies = {}
        # called with (model, predicted median tokens, true output tokens) of each finished job, e.g. a metric
        self.feedback_listeners: list[Callable[[str, float, int], None]] = []
        create_policy(default_policy)  # fail at startup, not on the first request

    def known_models(self) -> list[str]:
        return sorted({d.model for d in self.deployments.values()})

    def _policy(self, name: str):
        if name not in self._policies:
            self._policies[name] = create_policy(name)
        return self._policies[name]

    def resolve(self, model: str) -> tuple[str, list[DeploymentSpec]]:
        """`model` -> (policy name, candidate deployments). 'auto', 'auto:<policy>', a model or a deployment name."""
        if model == AUTO or model.startswith(AUTO + ":"):
            policy = model.split(":", 1)[1] if ":" in model else self.default_policy
            try:
                self._policy(policy)
            except UnknownPolicyError as err:
                raise ModelNotFoundError(f"model {model!r}: {err}") from err
            return policy, list(self.deployments.values())
        matches = [d for d in self.deployments.values() if d.model == model or d.name == model]
        if not matches:
            raise ModelNotFoundError(
                f"model {model!r} is not served here; known models: {self.known_models()} "
                f"(or 'auto', 'auto:<policy>' with policies {sorted(self._known_policies())})"
            )
        return self.default_policy, matches

    @staticmethod
    def _known_policies() -> list[str]:
        from router.policies.base import registered_policies

        return registered_policies()

    async def route(self, request: GenerationRequest, model: str) -> Decision:
        decision, _ = await self._route(request, model)
        return decision

    async def _route(self, request: GenerationRequest, model: str) -> tuple[Decision, int]:
        """(decision, predicted input tokens)."""
        policy_name, specs = self.resolve(model)
        pinput = prediction_input(request)
        prediction = self.predictor.predict(pinput, sorted({s.model for s in specs}))
        candidates = [Candidate(spec=s, load=await self.queue.load(s.name)) for s in specs]
        try:
            return self._policy(policy_name).route(pinput, prediction, candidates), prediction.input_tokens
        except NoCandidateError as err:
            raise BackendUnavailableError(str(err)) from err

    async def start(self, request: GenerationRequest, model: str) -> RoutedStream:
        deadline_s = time.monotonic() + self.request_timeout_s
        decision, input_tokens = await self._route(request, model)
        spec = self.deployments[decision.deployment]
        job = Job(job_id=new_job_id(), deployment=spec.name, model=spec.backend_model, request=request,
                  priority=decision.est_output_tokens, est_tokens=round(input_tokens + decision.est_output_tokens),
                  deadline_at_s=time.time() + self.request_timeout_s)
        await self.queue.submit(job)
        events = self._bounded(job.job_id, deadline_s, decision)
        try:
            first = await events.__anext__()
        except BaseException:
            await events.aclose()
            raise
        if isinstance(first, ErrorEvent):
            await events.aclose()
            raise first.to_error()
        return RoutedStream(job_id=job.job_id, decision=decision, first=first, rest=events)

    def _feed_back(self, decision: Decision, finish: FinishEvent) -> None:
        """Tell the predictor how long the answer really was; never raises into the request path."""
        try:
            self.predictor.observe(decision.model, decision.est_output_tokens, finish.completion_tokens,
                                   truncated=finish.finish_reason == "length")
        except Exception:
            log.exception("predictor %r failed to observe a finished job of %s; continuing",
                          getattr(self.predictor, "name", "?"), decision.model)
        for listener in self.feedback_listeners:
            try:
                listener(decision.model, decision.est_output_tokens, finish.completion_tokens)
            except Exception:
                log.exception("feedback listener %r failed; continuing", listener)

    async def _bounded(self, job_id: str, deadline_s: float, decision: Decision) -> AsyncIterator[Event]:
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
                    self._feed_back(decision, event)
                yield event
                if finished:
                    return
        finally:
            if not finished:
                await self.queue.cancel(job_id)
            await source.aclose()
