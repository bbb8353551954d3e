"""bench/sim_vs_engine.py's pieces that need no engine: the scaled trace, the latency figures, the simulated run."""

from pathlib import Path

import numpy as np
import pytest

from bench.sim_vs_engine import burst_after, latency_stats, relative_errors, scaled_trace, simulate_cpu
from cost_model.workload import Workload, read_trace

FIX = Path(__file__).parent / "fixtures"


def test_scaled_trace_keeps_the_window_and_caps_lengths():
    trace = read_trace(FIX / "azure_conv_40.csv")
    w = scaled_trace(trace, 0.5, 10.0, 40.0, 1 / 16, 1 / 8, 64, 16)
    assert w.arrival_s[0] == 0 and w.arrival_s[-1] < 40.0
    assert w.input_tokens.max() <= 64 and w.output_tokens.max() <= 16 and w.input_tokens.min() >= 1
    assert len(w) < len(trace)
    with pytest.raises(SystemExit):
        scaled_trace(trace, 0.5, 1e6, 10.0, 1, 1, 10, 10)
    burst = burst_after(trace, 0.5, 50.0, 5, 1 / 16, 1 / 8, 64, 16)
    assert len(burst) == 5 and not burst.arrival_s.any() and burst.output_tokens.max() <= 16


def test_latency_stats():
    stats = latency_stats([0.0, 1.0], [0.5, 1.2], [2.5, 1.2], [5, 1])
    assert stats["ttft_p50_s"] == pytest.approx(0.35)
    assert stats["tpot_p50_s"] == pytest.approx(0.5)  # only the request with more than one token
    assert stats["latency_mean_s"] == pytest.approx((2.5 + 0.2) / 2)
    assert stats["output_tokens_per_s"] == pytest.approx(6 / 2.5)
    assert relative_errors({"a": 2.0, "b": 0.0}, {"a": 3.0, "b": 1.0}) == {"a": 0.5}


def test_simulated_cpu_run_matches_its_own_latency_figures():
    w = Workload(np.array([0.0, 0.5, 4.0]), np.array([64, 32, 128]), np.array([8, 4, 16]))
    sim = simulate_cpu(w, max_num_seqs=8, max_batched_tokens=512)
    assert sim["completed"] == 3 and sim["lost_requests"] == 0
    assert 0 < sim["ttft_p50_s"] < sim["latency_mean_s"]
    assert sim["output_tokens_per_s"] == pytest.approx(28 / sim["duration_s"])
