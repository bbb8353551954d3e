"""`tamer profile` on the real bundled engine, with a tiny grid: it writes a profile the cost model reads."""

import json

from typer.testing import CliRunner

import tamer.profile_command as profile_command
from cost_model.device_profile import read_device_profile
from tamer.cli import app


def test_profile_writes_a_usable_device_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_command, "QUICK_PREFILL_LENGTHS", (16,))
    monkeypatch.setattr(profile_command, "QUICK_DECODE_POINTS", ((1, 16), (2, 16)))
    out = tmp_path / "cpu.json"
    res = CliRunner().invoke(app, ["profile", "--quick", "--threads", "1", "--kv-cache-gib", "0.05",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "fitted:" in res.output and str(out) in res.output.replace("\n", "")
    profile = read_device_profile(out)
    assert profile.name == "cpu" and profile.spec.dtype == "fp32" and len(profile.samples) >= 10
    assert profile.kv_capacity_tokens == profile.perf().kv_capacity_tokens > 0
    doc = json.loads(out.read_text())
    assert doc["machine"]["torch_threads"] == 1 and doc["peak"]["matmul_tflops"] > 0
    assert [p["kind"] for p in doc["points"]] == ["prefill", "prefill", "decode", "decode"]
