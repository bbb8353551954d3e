"""`tamer plan` and `tamer simulate`: the cheapest fleet for a workload and SLO, and its replay on a trace."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import typer

DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|)\s*$")


def parse_duration_s(text: str) -> float:
    """'2s' -> 2.0, '100ms' -> 0.1, '1.5' -> 1.5 (seconds)."""
    match = DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; write e.g. 2s, 1.5s or 100ms")
    value = float(match.group(1))
    return value / 1e3 if match.group(2) == "ms" else value


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _workload(trace: Optional[Path], rate: Optional[float], input_tokens: float, output_tokens: float,
              duration_s: float):
    from cost_model.workload import read_trace, synthetic

    if trace is None:
        if rate is None:
            raise typer.BadParameter("give --trace FILE, or --rate with --input-tokens / --output-tokens")
        return synthetic(rate, input_tokens, output_tokens, duration_s)
    workload = read_trace(trace)
    if rate is not None:
        # same length of time at the new rate: compress (or stretch) the trace, then repeat it
        workload = workload.rescaled(rate_req_per_s=rate)
        if workload.duration_s < read_trace(trace).duration_s:
            workload = workload.tiled(read_trace(trace).duration_s)
    return workload


def plan(
    trace: Optional[Path] = typer.Option(None, "--trace", help="Request trace: Azure LLM CSV or Mooncake JSONL."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Arrival rate, req/s (rescales --trace, or a "
                                         "Poisson load without one)."),
    model: list[str] = typer.Option(["llama-3.1-8b"], "--model", help="Allowed model (repeat for more)."),
    ttft_p99: str = typer.Option("2s", "--ttft-p99", help="99th-percentile time to first token, e.g. 2s."),
    tpot_p99: str = typer.Option("100ms", "--tpot-p99", help="99th-percentile time per output token."),
    region: list[str] = typer.Option(["us-east-1"], "--region", help="Allowed AWS region (repeat for more)."),
    spot: bool = typer.Option(True, "--spot/--no-spot", help="Allow spot capacity."),
    risk_tolerance: float = typer.Option(1.0, "--risk-tolerance", min=0.0, max=1.0,
                                         help="Largest share of each request bucket that spot may carry."),
    spare_spot: int = typer.Option(1, "--spare-spot", min=0, help="Spare spot instances per pool."),
    instance_type: list[str] = typer.Option([], "--instance-type", help="Only these instance types (repeat)."),
    input_tokens: float = typer.Option(1000.0, "--input-tokens", help="Mean prompt tokens (without --trace)."),
    output_tokens: float = typer.Option(200.0, "--output-tokens", help="Mean output tokens (without --trace)."),
    duration_s: float = typer.Option(3600.0, "--duration-s", help="Length of the Poisson load (without --trace)."),
    out: Path = typer.Option(Path("plan.json"), "-o", "--output", help="Where to write the plan."),
    png: Optional[Path] = typer.Option(None, "--png", help="Cost-against-SLO plot (default: next to the plan)."),
    no_png: bool = typer.Option(False, "--no-png", help="Skip the plot."),
) -> None:
    """Plan the cheapest fleet (model x instance type x region x market) that meets the SLO."""
    from rich.console import Console

    from cost_model.capacity import Slo
    from cost_model.errors import CostModelError
    from cost_model.planner import PlanRequest, make_plan
    from cost_model.workload import bucketize

    console = Console()
    try:
        slo = Slo(parse_duration_s(ttft_p99), parse_duration_s(tpot_p99))
        workload = _workload(trace, rate, input_tokens, output_tokens, duration_s)
        req = PlanRequest(models=tuple(model), slo=slo, regions=tuple(region),
                          markets=("ondemand", "spot") if spot else ("ondemand",), risk_tolerance=risk_tolerance,
                          spare_spot_replicas=spare_spot, instance_types=tuple(instance_type) or None)
        peak = workload.peak_factor(slo.ttft_p99_s * req.knobs.ttft_budget_frac)
        summary = {"name": workload.name, "num_requests": len(workload), "rate_req_per_s": workload.rate_req_per_s,
                   "peak_factor": peak, "input_tokens_mean": float(workload.input_tokens.mean()),
                   "output_tokens_mean": float(workload.output_tokens.mean()), "duration_s": workload.duration_s}
        result = make_plan(bucketize(workload, peak), req, summary)
    except (CostModelError, ValueError) as err:
        _fail(err)
    out.write_text(json.dumps(result, indent=1) + "\n")
    _print_plan(console, result)
    if not no_png:
        path = png or out.with_suffix(".png")
        try:
            _plot(result, workload, req, path)
            console.print(f"wrote {out} and {path}")
        except ImportError:
            console.print(f"wrote {out} (install matplotlib for the cost-against-SLO plot)")
    else:
        console.print(f"wrote {out}")


def _print_plan(console, result: dict) -> None:
    from rich.table import Table

    w = result["workload"]
    console.print(f"[bold]{w.get('name', '')}[/]: {w.get('num_requests', 0)} requests, "
                  f"{w.get('rate_req_per_s', 0):.2f} req/s (planned for x{w.get('peak_factor', 1):.2f} bursts), "
                  f"SLO TTFT p99 {result['slo']['ttft_p99_s']:g}s, TPOT p99 {result['slo']['tpot_p99_s'] * 1e3:g}ms")
    table = Table(title="chosen fleet")
    for col in ("model", "instance", "region", "market", "count", "TP x replicas", "$/h", "load", "headroom"):
        table.add_column(col, justify="right" if col in ("count", "$/h", "load", "headroom") else "left")
    for r in result["replicas"]:
        table.add_row(r["model"], r["instance_type"], r["region"], r["market"], str(r["count"]),
                      f"{r['tensor_parallel']} x {r['replicas_per_instance']}", f"{r['usd_per_hour']:.2f}",
                      f"{r['load_replicas']:.2f}", f"{r['headroom_replicas']:.2f}")
    console.print(table)
    cmp = Table(title="against the baselines")
    cmp.add_column("fleet")
    cmp.add_column("$/h", justify="right")
    cmp.add_column("what", justify="left")
    cmp.add_row("[bold]tamer plan[/]", f"[bold]{result['usd_per_hour']:.2f}[/]",
                f"{result['usd_per_1m_output_tokens']:.3f} $/1M output tokens "
                f"(physical floor {result['floor_usd_per_1m_output_tokens']:.3f})")
    names = {"single_ondemand": "cheapest single type, on-demand", "single_spot": "cheapest single type, spot",
             "hetero_ondemand": "heterogeneous, on-demand only"}
    for key, label in names.items():
        b = result["baselines"].get(key)
        if b:
            cmp.add_row(label, f"{b['usd_per_hour']:.2f}", b.get("candidate", ""))
    console.print(cmp)
    if result["saving_vs_single_ondemand"] is not None:
        console.print(f"saving vs the cheapest single instance type on demand: "
                      f"[bold]{result['saving_vs_single_ondemand'] * 100:.1f}%[/]  (solved in {result['solve_s']:.2f} s)")


def _plot(result: dict, workload, req, path: Path) -> None:
    """$/hour of the cheapest fleet against the TPOT target (TTFT fixed), the chosen point marked."""
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cost_model.capacity import Slo
    from cost_model.errors import CostModelError
    from cost_model.planner import make_plan
    from cost_model.workload import bucketize

    buckets = bucketize(workload, result["workload"]["peak_factor"])
    xs, ys = [], []
    for factor in (0.5, 0.75, 1.5, 2.0, 4.0):
        slo = Slo(req.slo.ttft_p99_s, req.slo.tpot_p99_s * factor)
        try:
            other = make_plan(buckets, dataclasses.replace(req, slo=slo, time_limit_s=2.0))
        except CostModelError:
            continue
        xs.append(slo.tpot_p99_s * 1e3)
        ys.append(other["usd_per_hour"])
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(zip(xs + [req.slo.tpot_p99_s * 1e3], ys + [result["usd_per_hour"]]))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="cheapest fleet")
    ax.plot([req.slo.tpot_p99_s * 1e3], [result["usd_per_hour"]], "r*", markersize=16, label="chosen")
    single = result["baselines"].get("single_ondemand")
    if single:
        ax.axhline(single["usd_per_hour"], color="gray", linestyle="--", label="single type on-demand")
    ax.set_xscale("log")
    ax.set_xlabel("TPOT p99 target (ms)")
    ax.set_ylabel("$ / hour")
    ax.set_title(f"{result['workload'].get('name', '')}: TTFT p99 {req.slo.ttft_p99_s:g}s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def simulate(
    plan_file: Path = typer.Argument(..., help="A plan.json written by `tamer plan`."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Trace to replay (Azure CSV or Mooncake JSONL)."),
    rate: Optional[float] = typer.Option(None, "--rate", help="Rescale the trace to this arrival rate (req/s)."),
    spot_source: str = typer.Option("model", "--spot-source", help="Preemptions from: model, trace, none."),
    spot_trace: list[Path] = typer.Option([], "--spot-trace", help="Spot trace JSON to replay (repeat)."),
    seed: int = typer.Option(0, "--seed", help="Random seed for preemptions."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results here."),
) -> None:
    """Replay a trace against a plan: SLO attainment, TTFT/TPOT, $ spent, requests lost."""
    from rich.console import Console
    from rich.progress import Progress

    from cost_model.errors import CostModelError
    from cost_model.simulate import SimOptions, simulate as run
    from cost_model.spot import read_spot_trace

    console = Console()
    try:
        plan_doc = json.loads(Path(plan_file).read_text())
        if trace is None:
            raise CostModelError("give --trace FILE to replay (the plan holds only a summary of its workload)")
        workload = _workload(trace, rate, 0, 0, 0)
        options = SimOptions(spot_source=spot_source, spot_traces=tuple(read_spot_trace(p) for p in spot_trace),
                             seed=seed)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("simulating", total=1.0)
            result = run(plan_doc, workload, options, progress=lambda f: bar.update(task, completed=f))
    except (CostModelError, ValueError, OSError) as err:
        _fail(err)
    console.print(f"{result['num_requests']} requests over {result['duration_s']:.0f} s: "
                  f"SLO attainment [bold]{result['slo_attainment'] * 100:.2f}%[/], lost {result['lost_requests']}")
    console.print(f"TTFT p50 / p99 {result['ttft_p50_s']:.3f} / {result['ttft_p99_s']:.3f} s;  "
                  f"TPOT p50 / p99 {result['tpot_p50_s'] * 1e3:.1f} / {result['tpot_p99_s'] * 1e3:.1f} ms")
    console.print(f"cost ${result['cost_usd']:.2f} (${result['usd_per_hour']:.2f}/h, "
                  f"${result['usd_per_1m_output_tokens']:.3f} per 1M output tokens); preemptions "
                  f"{result['preemptions']}, re-queued {result['requeued_requests']}, on-demand fallbacks "
                  f"{result['ondemand_fallback_instances']}")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1) + "\n")
        console.print(f"wrote {json_out}")
