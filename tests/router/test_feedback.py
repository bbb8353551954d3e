"""Online feedback: each finished request's true output length reaches the predictor once, on a real proxy.

A request whose client hangs up reports nothing and breaks nothing; a predictor that fails to observe
does not fail the request.
"""

from __future__ import annotations

import time

import httpx
import pytest

from predictor.base import PredictionInput
from predictor.features import prompt_kind
from router.config import GatewayConfig, RoutingSettings
from tests.serving import MODEL, RunningServer, local_deployment, read_data_lines

SHORT = {"model": MODEL, "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8,
         "temperature": 0.0}
LONG = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
        "max_tokens": 1500, "temperature": 0.9, "seed": 3}


def wait_until(predicate, timeout_s=10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def feedback_server(tmp_path_factory):
    cards = tmp_path_factory.mktemp("cards") / "model_cards.json"
    config = GatewayConfig(routing=RoutingSettings(model_cards_path=str(cards)), deployments=(local_deployment(),))
    with RunningServer(config) as s:
        yield s


@pytest.fixture
def seen(feedback_server):
    """What the service reports to its feedback listeners: [(model, predicted tokens, output tokens), ...]."""
    received: list[tuple[str, float, int]] = []
    listeners = feedback_server.gateway.service.feedback_listeners
    listener = lambda *args: received.append(args)  # noqa: E731
    listeners.append(listener)
    yield received
    listeners.remove(listener)


def predictor(server):
    return server.gateway.service.predictor


def test_the_predictor_gets_the_card_file(feedback_server):
    assert predictor(feedback_server).cards_path == feedback_server.config.routing.model_cards_file


def test_each_finished_request_is_observed_once_with_its_true_length(feedback_server, seen):
    from openai import OpenAI

    client = OpenAI(base_url=feedback_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    correction = predictor(feedback_server).correction
    before = correction.observations(MODEL)
    kinds = [prompt_kind(PredictionInput(SHORT["messages"][0]["content"], 1, 8))] * 3 + [
        prompt_kind(PredictionInput("One, two, three,", 1, 8))]
    before_by_kind = {k: correction.observations(MODEL, k) for k in kinds}
    lengths = []
    for _ in range(2):
        answer = client.chat.completions.create(**SHORT)
        lengths.append(answer.usage.completion_tokens)
    stream = client.chat.completions.create(**SHORT, stream=True, stream_options={"include_usage": True})
    lengths.append([c for c in stream if c.usage is not None][-1].usage.completion_tokens)
    answer = client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=8, temperature=0.0)
    lengths.append(answer.usage.completion_tokens)
    assert correction.observations(MODEL) == before + 4  # recorded before each answer was sent
    # and learnt per kind of prompt: the service passed each request along with its length
    assert {k: correction.observations(MODEL, k) - n for k, n in before_by_kind.items()} == {
        k: kinds.count(k) for k in kinds}
    assert [(m, n) for m, _, n in seen] == [(MODEL, n) for n in lengths]
    assert all(0 < predicted <= 8 for _, predicted, _ in seen)  # the median the router used, capped


def test_a_client_hanging_up_mid_stream_reports_nothing_and_breaks_nothing(feedback_server, seen):
    worker = feedback_server.gateway.worker
    backend = feedback_server.gateway.backends["local-smollm2"]
    correction = predictor(feedback_server).correction
    before_observations, before_cancelled = correction.observations(MODEL), worker.num_jobs_cancelled
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", feedback_server.url + "/v1/chat/completions", json={**LONG, "stream": True}) as r:
            assert r.status_code == 200
            read_data_lines(r, 5)
    assert wait_until(lambda: worker.num_jobs_cancelled == before_cancelled + 1)
    assert wait_until(lambda: backend.num_active() == 0)
    assert correction.observations(MODEL) == before_observations and seen == []
    r = httpx.post(feedback_server.url + "/v1/chat/completions", json=SHORT, timeout=120)
    assert r.status_code == 200
    assert correction.observations(MODEL) == before_observations + 1 and len(seen) == 1


def test_a_predictor_that_fails_to_observe_does_not_fail_the_request(feedback_server, seen, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("observe is broken")

    monkeypatch.setattr(predictor(feedback_server), "observe", broken)
    r = httpx.post(feedback_server.url + "/v1/chat/completions", json=SHORT, timeout=120)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    with httpx.stream("POST", feedback_server.url + "/v1/chat/completions", json={**SHORT, "stream": True},
                      timeout=120) as r:
        assert r.status_code == 200
        assert [line for line in r.iter_lines() if line][-1] == "data: [DONE]"
    assert len(seen) == 2  # the other listeners still heard of both


def test_the_feedback_carries_the_correction_its_prediction_was_made_with(feedback_server, monkeypatch):
    """The offset may move while a request queues and runs; the correction judges the prediction by the one
    it was made with. The bundled card's calibration seeds a nonzero one, so this is not zero by default."""
    live = predictor(feedback_server)
    request = PredictionInput(SHORT["messages"][0]["content"], 1, SHORT["max_tokens"])
    made_with = live.predict(request, [MODEL]).by_model[MODEL].correction_log2
    assert made_with == live.correction.offset_log2(MODEL, prompt_kind(request)) != 0.0
    calls = []
    real_observe = live.observe
    monkeypatch.setattr(live, "observe", lambda *a, **kw: (calls.append(kw), real_observe(*a, **kw)))
    r = httpx.post(feedback_server.url + "/v1/chat/completions", json=SHORT, timeout=120)
    assert r.status_code == 200
    assert len(calls) == 1 and calls[0]["correction_log2"] == pytest.approx(made_with)


def test_the_length_error_histogram():
    from router.api.metrics import Metrics

    metrics = Metrics()
    metrics.observe_output_length(MODEL, predicted_tokens=99, output_tokens=199)
    text = metrics.render().decode()
    assert f'tamer_output_length_error_log2_count{{model="{MODEL}"}} 1.0' in text
    assert f'tamer_output_length_error_log2_bucket{{le="1.0",model="{MODEL}"}} 1.0' in text
