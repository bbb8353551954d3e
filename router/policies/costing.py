"""Expected cost of one request on one deployment, from the predicted output-length distribution.

Per-token deployments (hosted APIs): input_tokens * in_price + E[output tokens] * out_price.
Self-hosted deployments billed by time: the request's share of the replica's GPU time,
    usd_per_hour / 3600 * (input_tokens / prefill_tokens_per_s + E[output tokens] / tokens_per_s)
(tokens_per_s = measured output throughput of one replica at full batch, so a batch shares the hour; the
prompt's prefill holds the whole replica, at prefill_tokens_per_s from router/policies/prefill.py).
A spot deployment also pays, in expectation, for redoing the request if it is interrupted while running:
    cost * (1 + P(interruption during the request)),  P = 1 - exp(-interruptions_per_s * duration_s)
with duration_s = input_tokens / prefill_tokens_per_s + E[output tokens] / (tokens_per_s / max_concurrency)
(the prefill, then one sequence's decode rate).

E[output tokens] is Swanson's rule on the predicted quantiles, 0.3 p10 + 0.4 p50 + 0.3 p90: the mean of
a skewed length distribution sits above its median, and a long tail costs money.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from backends.deployment import DeploymentSpec
from cost_model.pricing import estimate_cost_usd
from predictor.base import ModelPrediction
from router.policies.prefill import prefill_tokens_per_s

SPOT_BUCKET_UNKNOWN = 4  # a spot deployment priced by hand (no catalog entry) is assumed the riskiest bucket


def expected_output_tokens(p: ModelPrediction) -> float:
    """The mean of the predicted output length (Swanson's rule on p10/p50/p90)."""
    return 0.3 * p.output_tokens_p10 + 0.4 * p.output_tokens_p50 + 0.3 * p.output_tokens_p90


@dataclass(frozen=True)
class Pricing:
    """How one deployment is billed, on plain numbers."""

    usd_per_1m_input_tokens: float = 0.0
    usd_per_1m_output_tokens: float = 0.0
    usd_per_hour: float = 0.0  # instance price (0: not billed by time)
    tokens_per_s: float = 0.0  # one replica's output throughput at full batch
    max_concurrency: int = 1  # sequences one replica decodes at once
    interruptions_per_hour: float = 0.0  # spot only
    prefill_tokens_per_s: float = 0.0  # one replica's prompt throughput (0: the prompt costs no GPU time)


def request_cost_usd(pricing: Pricing, input_tokens: float, output_tokens: float) -> float:
    """Expected $ of one request with `output_tokens` expected output tokens (see the module docstring)."""
    cost = estimate_cost_usd(input_tokens, output_tokens, pricing.usd_per_1m_input_tokens,
                             pricing.usd_per_1m_output_tokens)
    prefill_s = input_tokens / pricing.prefill_tokens_per_s if pricing.prefill_tokens_per_s > 0 else 0.0
    if pricing.usd_per_hour > 0 and pricing.tokens_per_s > 0:
        cost += pricing.usd_per_hour / 3600.0 * (prefill_s + output_tokens / pricing.tokens_per_s)
    if pricing.interruptions_per_hour > 0 and pricing.tokens_per_s > 0:
        duration_s = prefill_s + output_tokens / (pricing.tokens_per_s / max(1, pricing.max_concurrency))
        cost *= 2.0 - math.exp(-pricing.interruptions_per_hour / 3600.0 * duration_s)
    return cost


@functools.cache
def pricing_for(spec: DeploymentSpec) -> Pricing:
    """A deployment's pricing: its per-token prices, and its instance's $/h from the cost_model catalog
    (spot or on-demand in its region) with the spot interruption rate of the instance's advisor bucket and
    its prefill throughput."""
    usd_per_hour, bucket = spec.usd_per_hour, SPOT_BUCKET_UNKNOWN
    if spec.instance_type:
        from cost_model.catalog import find_offerings

        offerings = find_offerings(regions=(spec.region,), instance_types=(spec.instance_type,))
        if not offerings:
            raise ValueError(f"deployment {spec.name!r}: the catalog has no {spec.instance_type} in {spec.region}; "
                             "set usd_per_hour")
        offering = offerings[0]
        bucket = offering.interruption_bucket
        if usd_per_hour == 0:
            catalog_price = offering.price_usd_per_hour("spot" if spec.market == "spot" else "ondemand")
            if catalog_price is None:
                raise ValueError(f"deployment {spec.name!r}: {spec.instance_type} has no {spec.market} price in "
                                 f"{spec.region}; set usd_per_hour or market = 'on-demand'")
            usd_per_hour = catalog_price
    interruptions_per_hour = 0.0
    if spec.market == "spot":
        from cost_model.spot import SpotModel

        interruptions_per_hour = SpotModel().interruptions_per_hour(bucket)
    return Pricing(spec.usd_per_1m_input_tokens, spec.usd_per_1m_output_tokens, usd_per_hour, spec.tokens_per_s,
                   spec.max_concurrency, interruptions_per_hour,
                   prefill_tokens_per_s(spec) if usd_per_hour > 0 else 0.0)
