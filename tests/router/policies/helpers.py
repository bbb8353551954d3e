"""Plain values for policy tests: deployments, loads and predictions built by hand."""

from backends.deployment import DeploymentSpec
from backends.workqueue.base import DeploymentLoad
from predictor.base import ModelPrediction, Prediction, PredictionInput
from router.policies import Candidate

UP = DeploymentLoad(queue_depth=0, num_in_flight=0, num_workers_alive=1)
REQUEST = PredictionInput(prompt_text="hello", num_messages=1, max_tokens=None)


def spec(name, model, cin=0.0, cout=0.0, **kw):
    return DeploymentSpec(name=name, backend="local", model=model, usd_per_1m_input_tokens=cin,
                          usd_per_1m_output_tokens=cout, **kw)


def load(queue_depth=0, num_in_flight=0, tokens=0, workers=1):
    return DeploymentLoad(queue_depth=queue_depth, num_in_flight=num_in_flight, num_workers_alive=workers,
                          num_in_flight_tokens=tokens)


def prediction(p_good_by_model, tokens=100.0, input_tokens=100):
    return Prediction(input_tokens=input_tokens, by_model={
        m: ModelPrediction(tokens, tokens, tokens, p) for m, p in p_good_by_model.items()})


def cand(s, l=UP):
    return Candidate(s, l)
