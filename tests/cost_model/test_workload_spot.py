"""Trace readers, rescaling, buckets, and the spot model."""

from pathlib import Path

import numpy as np
import pytest

from cost_model.errors import CostModelError, EmptyWorkloadError
from cost_model.spot import SpotModel, draw_preemptions, preemptions_from_trace, read_spot_trace
from cost_model.workload import bucketize, read_trace, synthetic

FIX = Path(__file__).parent / "fixtures"


def test_readers_for_both_formats():
    azure = read_trace(FIX / "azure_conv_40.csv")
    assert len(azure) == 40 and azure.arrival_s[0] == 0 and np.all(np.diff(azure.arrival_s) >= 0)
    assert azure.input_tokens[0] == 374 and azure.output_tokens[0] == 44
    moon = read_trace(FIX / "mooncake_20.jsonl")
    assert len(moon) == 20 and moon.input_tokens[0] == 40160


def test_empty_and_unknown_traces_say_what_to_do():
    with pytest.raises(EmptyWorkloadError, match="no requests"):
        read_trace(FIX / "empty.csv")
    with pytest.raises(CostModelError, match="Mooncake"):
        read_trace(FIX / "README.md")
    with pytest.raises(CostModelError, match="does not exist"):
        read_trace(FIX / "nope.csv")


def test_rescale_tile_and_buckets():
    w = read_trace(FIX / "azure_conv_40.csv")
    fast = w.rescaled(rate_req_per_s=w.rate_req_per_s * 4)
    assert fast.rate_req_per_s == pytest.approx(w.rate_req_per_s * 4)
    tiled = fast.tiled(w.duration_s)
    assert tiled.duration_s <= w.duration_s and len(tiled) > 3 * len(w)
    b = bucketize(w)
    assert sum(x.num_requests for x in b) == 40
    assert sum(x.rate_req_per_s for x in b) == pytest.approx(w.rate_req_per_s)
    assert w.peak_factor(1.0) >= 1.0


def test_synthetic_workload_has_the_asked_rate_and_means():
    w = synthetic(10, 500, 100, duration_s=200, seed=3)
    assert w.rate_req_per_s == pytest.approx(10, rel=0.1)
    assert np.mean(w.input_tokens) == pytest.approx(500, rel=0.1)


def test_spot_model():
    spot = SpotModel(rate_multiplier=1.0)
    rates = [spot.interruptions_per_hour(b) for b in range(5)]
    assert rates == sorted(rates) and rates[0] > 0
    assert spot.availability(4, 16e9) < spot.availability(0, 16e9) <= 1
    assert spot.replacement_delay_s(16e9) == pytest.approx(150 + 16)
    assert SpotModel().interruptions_per_hour(4) == pytest.approx(0.285, rel=0.05)  # calibrated to the traces
    assert spot.lost_work_s(2.0, 10.0, resume=True) < spot.lost_work_s(2.0, 10.0, resume=False)
    times = draw_preemptions(10.0, 36000, np.random.default_rng(0))
    assert 70 < len(times) < 130 and times == sorted(times)


def test_preemptions_replayed_from_a_trace():
    alive, gap = read_spot_trace(FIX / "spot_trace.json")
    assert gap == 60
    assert preemptions_from_trace(alive, gap, 0, 600) == [180.0, 480.0]
    assert preemptions_from_trace(alive, gap, 4, 300) == [240.0]
