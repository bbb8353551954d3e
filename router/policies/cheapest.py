"""Baseline policy `cheapest`: the live candidate with the lowest expected cost, then the least loaded.

expected cost = input_tokens * in_price + p50 predicted output tokens * out_price (per-token prices of
the deployment). Candidates with no live worker are skipped; ties (e.g. several free deployments of one
model) go to the fewest outstanding jobs (queued + in flight), then the name, so the choice is stable.
"""

from __future__ import annotations

from typing import Sequence

from cost_model.pricing import estimate_cost_usd
from predictor.base import Prediction, PredictionInput
from router.policies.base import Candidate, Decision, RouteTargets, live_candidates, model_prediction


class CheapestPolicy:
    name = "cheapest"

    def route(self, request: PredictionInput, prediction: Prediction, candidates: Sequence[Candidate],
              targets: RouteTargets = RouteTargets()) -> Decision:
        live = live_candidates(candidates)

        def score(c: Candidate) -> tuple[float, int, str]:
            return (self._cost(c, prediction), c.load.queue_depth + c.load.num_in_flight, c.spec.name)

        best = min(live, key=score)
        cost = self._cost(best, prediction)
        out_tokens = self._output_tokens(best, prediction)
        reason = (f"cheapest of {len(live)} live candidate(s): est ${cost:.8f} for ~{prediction.input_tokens} in "
                  f"+ ~{out_tokens:.0f} out tokens; outstanding {best.load.queue_depth + best.load.num_in_flight}")
        return Decision(deployment=best.spec.name, model=best.spec.model, policy=self.name,
                        est_cost_usd=cost, est_output_tokens=out_tokens, reason=reason)

    @staticmethod
    def _output_tokens(c: Candidate, prediction: Prediction) -> float:
        p = model_prediction(prediction, c.spec)
        return p.output_tokens_p50 if p is not None else 0.0

    def _cost(self, c: Candidate, prediction: Prediction) -> float:
        return estimate_cost_usd(prediction.input_tokens, self._output_tokens(c, prediction),
                                 c.spec.usd_per_1m_input_tokens, c.spec.usd_per_1m_output_tokens)
