"""`tamer plan` and `tamer simulate` end to end on the shipped fixtures."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tamer.cli import app
from tamer.cost_commands import parse_duration_s

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_durations():
    assert parse_duration_s("2s") == 2.0 and parse_duration_s("100ms") == pytest.approx(0.1)
    assert parse_duration_s("1.5") == 1.5
    with pytest.raises(typer.BadParameter, match="100ms"):
        parse_duration_s("fast")


def test_plan_then_simulate(tmp_path):
    plan_path = tmp_path / "plan.json"
    res = runner.invoke(app, ["plan", "--trace", str(FIX / "azure_conv_40.csv"), "--rate", "4", "--model", "qwen2.5-7b",
                              "--ttft-p99", "2s", "--tpot-p99", "100ms", "--region", "us-east-1", "-o", str(plan_path),
                              "--png", str(tmp_path / "plan.png")])
    assert res.exit_code == 0, res.output
    plan = json.loads(plan_path.read_text())
    assert plan["replicas"] and "saving_vs_single_ondemand" in plan
    assert plan["baselines"]["single_ondemand"]["usd_per_hour"] >= plan["usd_per_hour"]
    assert (tmp_path / "plan.png").stat().st_size > 1000
    out = tmp_path / "sim.json"
    res = runner.invoke(app, ["simulate", str(plan_path), "--trace", str(FIX / "azure_conv_40.csv"), "--rate", "4",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    sim = json.loads(out.read_text())
    for key in ("slo_attainment", "lost_requests", "cost_usd", "ttft_p99_s", "tpot_p99_s"):
        assert key in sim
    assert sim["lost_requests"] == 0


def test_no_spot_and_a_poisson_load(tmp_path):
    res = runner.invoke(app, ["plan", "--rate", "3", "--input-tokens", "500", "--output-tokens", "100",
                              "--duration-s", "120", "--model", "qwen2.5-1.5b", "--no-spot", "--no-png",
                              "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    assert {r["market"] for r in json.loads((tmp_path / "p.json").read_text())["replicas"]} == {"ondemand"}


@pytest.mark.parametrize("args,message", [
    (["--trace", str(FIX / "empty.csv")], "no requests"),
    (["--trace", str(FIX / "azure_conv_40.csv"), "--model", "qwen2.5-72b", "--tpot-p99", "0.5ms"], "tpot-p99"),
    (["--trace", str(FIX / "azure_conv_40.csv"), "--model", "gpt-9"], "known models"),
    (["--trace", str(FIX / "azure_conv_40.csv"), "--model", "llama-3.1-70b", "--instance-type", "g4dn.xlarge"],
     "allow"),
])
def test_bad_input_says_what_to_relax(tmp_path, args, message):
    res = runner.invoke(app, ["plan", *args, "--no-png", "-o", str(tmp_path / "p.json")])
    assert res.exit_code == 2
    assert message in res.output.replace("\n", " ")
