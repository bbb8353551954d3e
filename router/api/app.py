"""The FastAPI app factory: OpenAI-compatible endpoints, /health, /metrics, OpenAI-shaped errors."""

from __future__ import annotations

import logging
import math
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from backends.errors import InvalidRequestError, QueueFullError, TamerError
from router.api import responses as R
from router.api.http import check_auth, read_json_body
from router.api.load import LoadGauges, load_body, read_load
from router.api.metrics import Metrics
from router.api.streaming import collect_or_cancel, stream_chat, stream_completion
from router.api.schemas import ChatCompletionRequest, CompletionRequest
from router.config import GatewayConfig
from router.errors import DeploymentNotFoundError
from router.gateway import Gateway
from router.policies.base import RouteTargets
from router.service import RoutedStream

log = logging.getLogger("tamer.api")


def decision_headers(routed: RoutedStream) -> dict[str, str]:
    d = routed.decision
    headers = {
        "x-tamer-model": d.model,
        "x-tamer-deployment": d.deployment,
        "x-tamer-policy": d.policy,
        "x-tamer-est-cost-usd": f"{d.est_cost_usd:.8f}",
        "x-tamer-est-saved-usd": f"{d.est_saved_usd:.8f}",
        "x-tamer-est-output-tokens": f"{d.est_output_tokens:.0f}",
        "x-tamer-reason": d.reason.encode("ascii", "replace").decode(),
        "x-request-id": routed.job_id,
    }
    if d.p_good is not None:
        headers["x-tamer-p-good"] = f"{d.p_good:.3f}"
    if d.quality_target is not None:
        headers["x-tamer-quality-target"] = f"{d.quality_target:.3f}"
    if routed.failed_over_from:
        headers["x-tamer-failed-over-from"] = ",".join(f"{name}:{code}" for name, code in routed.failed_over_from)
    return headers


def _header_number(request: Request, name: str, low: float, high: float) -> float | None:
    text = request.headers.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise InvalidRequestError(f"header {name} must be a number in [{low:g}, {high:g}], got {text!r}", param=name)
    return value


def route_targets(request: Request) -> RouteTargets | None:
    """The request's routing headers: x-tamer-quality-target in [0, 1], x-tamer-ttft-slo-ms and
    x-tamer-latency-slo-ms > 0; a bad value is a 400."""
    quality = _header_number(request, "x-tamer-quality-target", 0.0, 1.0)
    ttft_ms = _header_number(request, "x-tamer-ttft-slo-ms", 1e-3, math.inf)
    latency_ms = _header_number(request, "x-tamer-latency-slo-ms", 1e-3, math.inf)
    if quality is None and ttft_ms is None and latency_ms is None:
        return None
    return RouteTargets(quality_target=quality, ttft_slo_ms=ttft_ms, latency_slo_ms=latency_ms)


def _validation_message(err: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    first = err.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    return (f"invalid field {param!r}: {first.get('msg')}" if param else str(first.get("msg"))), param


def _error_response(err: TamerError) -> JSONResponse:
    headers = {}
    if isinstance(err, QueueFullError):
        headers["Retry-After"] = str(max(1, round(err.retry_after_s)))
    return JSONResponse(R.error_body_for(err), status_code=err.status, headers=headers)


def create_app(config: GatewayConfig, gateway: Gateway | None = None) -> FastAPI:
    """Build the proxy. The gateway (queue, backends, worker) starts with the app and stops with it."""
    gateway = gateway or Gateway(config)
    metrics = Metrics()
    load_gauges = LoadGauges(metrics)
    deployment_names = [d.name for d in config.deployments]
    api_keys = [k.encode() for k in config.server.api_keys]
    max_bytes = config.server.max_request_bytes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await gateway.start()
        gateway.service.feedback_listeners.append(metrics.observe_output_length)
        yield
        await gateway.stop()

    app = FastAPI(title="tamer", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gateway
    app.state.metrics = metrics

    @app.exception_handler(TamerError)
    async def _tamer_error(request: Request, err: TamerError) -> JSONResponse:
        metrics.requests.labels(request.url.path, str(err.status)).inc()
        return _error_response(err)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: Any) -> JSONResponse:
        metrics.requests.labels(request.url.path, "400").inc()
        message, param = _validation_message(err)
        return JSONResponse(R.error_body(message, "invalid_request_error", "invalid_request", param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {err.detail}"
        return JSONResponse(R.error_body(message, "invalid_request_error", None), err.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(R.error_body(f"internal error: {err}", "server_error", "internal_error"), 500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness of this proxy (and its embedded worker's deployments); the cluster is at /v1/tamer/load."""
        return {"status": "ok", "queue": config.queue.kind, "embedded_worker": gateway.worker is not None,
                "deployments": sorted(gateway.backends), "failed_deployments": gateway.failed_deployments}

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        check_auth(request, api_keys)
        await load_gauges.refresh(gateway.queue, deployment_names)
        service = gateway.service
        now_s = service.clock()
        metrics.set_routing_state(deployment_names, service.health.unavailable(now_s),
                                  [p.report(now_s) for p in service.policies_in_use().values() if hasattr(p, "report")])
        for name, backend in gateway.backends.items():
            if hasattr(backend, "num_active"):
                metrics.engine_sequences.labels(name).set(backend.num_active())
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/tamer/load")
    async def cluster_load(request: Request) -> dict[str, Any]:
        check_auth(request, api_keys)
        return load_body(await read_load(gateway.queue, deployment_names), config.queue.kind)

    @app.post("/v1/tamer/deployments/{deployment}/interruption")
    async def interruption_notice(request: Request, deployment: str) -> dict[str, Any]:
        """A spot interruption notice (or an operator's drain): route no new work to `deployment` for a while;
        its running jobs finish, and fail-over covers those that cannot."""
        check_auth(request, api_keys)
        if deployment not in deployment_names:
            raise DeploymentNotFoundError(f"no deployment {deployment!r}; deployments: {sorted(deployment_names)}")
        gateway.service.notice_interruption(deployment)
        return {"deployment": deployment, "draining_s": gateway.service.health.drain_s}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_auth(request, api_keys)
        created = int(time.time())
        data = [{"id": m, "object": "model", "created": created, "owned_by": "tamer"}
                for m in gateway.service.known_models()]
        data.append({"id": "auto", "object": "model", "created": created, "owned_by": "tamer"})
        return {"object": "list", "data": data}

    async def _handle(request: Request, schema: type, endpoint: str) -> Response:
        started_s = time.perf_counter()
        check_auth(request, api_keys)
        body = await read_json_body(request, max_bytes)
        parsed = schema.model_validate(body)
        routed = await gateway.service.start(parsed.to_generation_request(), parsed.model, route_targets(request))
        metrics.observe_decision(routed.decision, routed.failed_over_from)
        headers = decision_headers(routed)
        kind = "chat" if schema is ChatCompletionRequest else "completion"
        if parsed.stream:
            stream = stream_chat if kind == "chat" else stream_completion
            return stream(routed, parsed.include_usage, metrics, endpoint, started_s, headers)
        return await collect_or_cancel(request, routed, kind, metrics, endpoint, started_s, headers)

    async def chat_completions(request: Request) -> Response:
        return await _handle(request, ChatCompletionRequest, "/v1/chat/completions")

    async def completions(request: Request) -> Response:
        return await _handle(request, CompletionRequest, "/v1/completions")

    # Plain Starlette routes for the hot endpoints: they parse their own bodies, so FastAPI's
    # dependency solving would be pure per-request overhead.
    app.router.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.router.add_route("/v1/completions", completions, methods=["POST"])

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tamer")
    except PackageNotFoundError:
        return "0+unknown"
