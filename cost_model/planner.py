"""Fleet planner: the cheapest mix of replicas (model x instance type x region x market) that serves a workload
within its SLO — a mixed-integer program in the manner of Mélange (GPU types x request-size buckets), extended
with model choice and spot capacity with an on-demand fallback (SkyServe).

Sets: buckets b (request size classes, rate lam_b req/s); candidates c = (model, instance type, region,
market, tensor-parallel degree t), an instance of G GPUs hosting G / t replicas;
cap_cb = requests/s of b one instance of c serves within the SLO (G / t times one replica's, capacity.py; 0 where
it cannot, or where the bucket's tier forbids the model). The rarest buckets, together at most
best_effort_share (< 1 - attainment) of requests, are sized without the TTFT target. n_c counts instances.

Variables: n_c >= 0 integer (instances), x_cb in [0, 1] (share of bucket b sent to c, only where cap_cb > 0),
y_c in {0, 1} (the pool is used). L_c = sum_b x_cb * lam_b / cap_cb is c's load in instances.

    minimize    sum_c e_c * n_c
    subject to  sum_c x_cb = 1                          for every bucket b      (all load served)
                L_c <= a_c * n_c - h_c * y_c             for every c             (capacity)
                u * L_c <= n_c - s * y_c                 for every spot c        (s down: the rest at full load)
                sum_{c spot} x_cb <= r                  for every bucket b      (risk: on-demand share)
                n_c <= N_max * y_c                      for every c             (pool size)

e_c, the price charged, is the list price on demand; for spot it is the expected bill of a spot slot with the
on-demand fallback it runs while spot is away (spot.SpotModel.usd_per_hour_with_fallback): a slot alternates
spot periods of mean 1 / rate (billed at spot) with, when spot cannot be had (1 - obtainable share), an
on-demand stand-in that tries spot again every retry_s and overlaps its successor while it loads:
e_c = (spot / rate + ondemand * F_all) / (1 / rate + F_instead). So the plan's $/hour is what a replay with
interruptions bills, not the spot list price (list_usd_per_hour, beside it).
a_c = 1 on demand, the spot model's availability for spot (interruptions x replacement delay). cap_cb is at
max_utilization u of a replica's full capacity (headroom for bursts). s = spare_spot_replicas: with s instances
of a spot pool interrupted, the others still carry its load at full capacity (the outage lasts a replacement
delay, so it may spend the burst headroom; a pool of one instance still needs one more). h_c =
ondemand_headroom_replicas (0 by default) for on-demand pools, 0 for spot; r = risk tolerance (share of each
bucket spot may carry; 1 by default: an interrupted spot instance is replaced on demand until spot returns).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from cost_model.capacity import Knobs, Slo, replica_capacity_req_per_s, roofline_output_tokens_per_s, why_unservable
from cost_model.catalog import Offering, find_offerings, get_gpu, get_model
from cost_model.errors import CostModelError, InfeasibleFleetError, SloBelowFloorError
from cost_model.perf import PerfModel, load_efficiency
from cost_model.spot import SpotModel
from cost_model.workload import Bucket

MARKETS = ("ondemand", "spot")


@dataclass(frozen=True)
class PlanRequest:
    """What to plan for: allowed models, regions, markets, the SLO and how much load spot may carry."""

    models: tuple[str, ...]
    slo: Slo
    regions: tuple[str, ...] = ("us-east-1",)
    markets: tuple[str, ...] = MARKETS
    risk_tolerance: float = 1.0
    spare_spot_replicas: int = 1
    ondemand_headroom_replicas: float = 0.0  # slack an on-demand pool keeps against the bursts it alone absorbs
    max_replicas_per_pool: int = 64
    instance_types: tuple[str, ...] | None = None
    tier_models: dict[str, tuple[str, ...]] = field(default_factory=dict)
    knobs: Knobs = Knobs()
    spot: SpotModel = SpotModel()
    time_limit_s: float = 10.0
    best_effort_share: float = 0.005  # rarest buckets, up to this share of requests, need no TTFT guarantee

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("give at least one model to plan with")
        bad = [m for m in self.markets if m not in MARKETS]
        if bad or not self.markets:
            raise ValueError(f"markets must be a non-empty subset of {list(MARKETS)}, got {list(self.markets)}")
        if not 0 <= self.risk_tolerance <= 1:
            raise ValueError(f"risk_tolerance must be in [0, 1], got {self.risk_tolerance}")
        if not 0 <= self.best_effort_share < 1 - self.slo.attainment + 1e-12:
            raise ValueError(f"best_effort_share must be in [0, 1 - attainment = {1 - self.slo.attainment:g}), "
                             f"got {self.best_effort_share}")
        if self.spare_spot_replicas < 0 or self.ondemand_headroom_replicas < 0:
            raise ValueError(f"spare_spot_replicas and ondemand_headroom_replicas must be >= 0, got "
                             f"{self.spare_spot_replicas}, {self.ondemand_headroom_replicas}")


@dataclass(frozen=True)
class Candidate:
    """One replica kind the planner may buy."""

    model: str
    offering: Offering
    market: str
    price_usd_per_hour: float  # the list price
    availability: float
    perf: PerfModel = field(compare=False)
    expected_usd_per_hour: float = 0.0  # what the planner charges: spot with its on-demand fallback (0: the list price)

    @property
    def cost_usd_per_hour(self) -> float:
        return self.expected_usd_per_hour or self.price_usd_per_hour

    @property
    def replicas_per_instance(self) -> int:
        return self.offering.num_gpus // self.perf.num_gpus

    @property
    def key(self) -> str:
        tp = f"/tp{self.perf.num_gpus}" if self.offering.num_gpus > 1 else ""
        return f"{self.model}@{self.offering.instance_type}{tp}/{self.offering.region}/{self.market}"


def candidates(req: PlanRequest) -> list[Candidate]:
    """Every allowed (model, instance type, region, market, tensor-parallel degree) whose model fits — the
    smallest degree that fits and the whole instance — keeping per (model, region, GPU type, GPU count, degree,
    market) only the cheapest instance type."""
    best: dict[tuple, Candidate] = {}
    for name in req.models:
        model = get_model(name)
        for o in find_offerings(req.regions, req.instance_types):
            gpu = get_gpu(o.gpu)
            perfs = [PerfModel(model, gpu, t, load_efficiency(o.gpu)) for t in (1, 2, 4, 8) if o.num_gpus % t == 0]
            perfs = [p for p in perfs if p.fits]
            if not perfs:
                continue
            for perf in {perfs[0].num_gpus: perfs[0], perfs[-1].num_gpus: perfs[-1]}.values():
                for market in req.markets:
                    price = o.price_usd_per_hour(market)
                    if price is None:
                        continue
                    avail, expected = 1.0, price
                    if market == "spot":
                        avail = req.spot.availability(o.interruption_bucket, model.weight_bytes)
                        expected = req.spot.usd_per_hour_with_fallback(
                            price, o.price_usd_per_hour("ondemand") or price, o.interruption_bucket, model.weight_bytes)
                    cand = Candidate(name, o, market, price, avail, perf, expected)
                    key = (name, o.region, o.gpu, o.num_gpus, perf.num_gpus, market)
                    if key not in best or expected < best[key].cost_usd_per_hour:
                        best[key] = cand
    return sorted(best.values(), key=lambda c: c.key)


def best_effort_buckets(buckets: list[Bucket], req: PlanRequest) -> set[int]:
    """The rarest buckets, together at most best_effort_share of the requests: a p99 SLO leaves them slack, so
    they must be served but not within the TTFT target (one 14k-token prompt an hour should not buy an H100)."""
    total = sum(b.rate_req_per_s for b in buckets)
    out, used = set(), 0.0
    for j in sorted(range(len(buckets)), key=lambda j: buckets[j].rate_req_per_s):
        used += buckets[j].rate_req_per_s
        if used > req.best_effort_share * total:
            break
        out.add(j)
    return out


def capacity_matrix(cands: list[Candidate], buckets: list[Bucket], req: PlanRequest) -> np.ndarray:
    """cap[c, b]: requests/s of bucket b one replica of candidate c serves within the SLO (for best-effort
    buckets: within the TPOT target, with no TTFT target)."""
    relaxed = dataclasses.replace(req.slo, ttft_p99_s=1e6)
    best_effort = best_effort_buckets(buckets, req)
    cap = np.zeros((len(cands), len(buckets)))
    cache: dict[tuple, float] = {}
    for i, c in enumerate(cands):
        for j, b in enumerate(buckets):
            if b.tier and b.tier in req.tier_models and c.model not in req.tier_models[b.tier]:
                continue
            key = (c.model, c.offering.gpu, c.perf.num_gpus, j)
            if key not in cache:
                slo = relaxed if j in best_effort else req.slo
                cache[key] = replica_capacity_req_per_s(c.perf, b, slo, req.knobs)
            cap[i, j] = cache[key] * c.replicas_per_instance
    return cap


def check_floor(cands: list[Candidate], buckets: list[Bucket], cap: np.ndarray, req: PlanRequest) -> None:
    """Raise with the constraint to relax when the SLO is below the physical floor or a bucket has no server."""
    if not cands:
        raise InfeasibleFleetError(f"no allowed instance holds any of {list(req.models)} in {list(req.regions)} "
                                   f"({'/'.join(req.markets)}); allow a smaller model, more regions or the other market")
    best_effort = best_effort_buckets(buckets, req)
    busiest = max((b for j, b in enumerate(buckets) if j not in best_effort), key=lambda b: b.input_tokens_p99)
    ttft_floor_s = min(c.perf.roofline_step_s(busiest.input_tokens_p99, busiest.input_tokens_p99 ** 2) for c in cands)
    if ttft_floor_s > req.slo.ttft_p99_s:
        raise SloBelowFloorError(
            f"TTFT p99 {req.slo.ttft_p99_s * 1e3:.0f} ms is below the physical floor: prefilling the p99 prompt "
            f"({busiest.input_tokens_p99:.0f} tokens) takes at least {ttft_floor_s * 1e3:.0f} ms at peak on the "
            f"fastest allowed hardware; relax --ttft-p99 to >= {math.ceil(ttft_floor_s * 1e3)}ms or allow faster GPUs")
    tpot_floor_s = min(c.perf.roofline_step_s(0, 0, 1, busiest.input_tokens_mean) for c in cands)
    if tpot_floor_s > req.slo.tpot_p99_s:
        raise SloBelowFloorError(
            f"TPOT p99 {req.slo.tpot_p99_s * 1e3:.1f} ms is below the physical floor of {tpot_floor_s * 1e3:.1f} ms "
            f"(one decode step reading the weights at peak bandwidth); relax --tpot-p99 or allow a smaller model")
    for j, b in enumerate(buckets):
        if b.rate_req_per_s > 0 and not cap[:, j].any():
            reasons = sorted({why_unservable(c.perf, b, req.slo, req.knobs) or "the TPOT target leaves no batch"
                              for c in cands})
            raise InfeasibleFleetError(
                f"no allowed replica serves requests of {b.input_tokens_p99:.0f} input / {b.output_tokens_p99:.0f} "
                f"output tokens (p99 of a bucket{' of tier ' + b.tier if b.tier else ''}): {'; '.join(reasons[:3])}. "
                f"Relax --ttft-p99 / --tpot-p99, allow larger GPUs or more models")


def solve(cands: list[Candidate], buckets: list[Bucket], cap: np.ndarray, req: PlanRequest) -> tuple[np.ndarray, np.ndarray]:
    """Solve the MILP of the module docstring; returns (replicas per candidate, share x[c, b])."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    num_c, num_b = cap.shape
    spot = [i for i, c in enumerate(cands) if c.market == "spot"]
    rates = np.array([b.rate_req_per_s for b in buckets])
    pairs = [(i, j) for i in range(num_c) for j in range(num_b) if cap[i, j] > 0 and rates[j] > 0]
    x0 = 2 * num_c  # n_c, then y_c, then the shares
    nvar = x0 + len(pairs)
    row_bucket, row_cap, row_risk = 0, num_b, num_b + num_c
    row_pool, row_down = 2 * num_b + num_c, 2 * num_b + 2 * num_c
    util = req.knobs.max_utilization
    ri, ci, val = [], [], []

    def put(r: int, c: int, v: float) -> None:
        ri.append(r)
        ci.append(c)
        val.append(v)

    for k, (i, j) in enumerate(pairs):
        put(row_bucket + j, x0 + k, 1.0)                              # sum_c x_cb = 1
        put(row_cap + i, x0 + k, rates[j] / cap[i, j])                # load on c
        if cands[i].market == "spot":
            put(row_down + i, x0 + k, util * rates[j] / cap[i, j])    # u * load on c
            put(row_risk + j, x0 + k, 1.0)                            # spot share of b <= r
    for i, c in enumerate(cands):
        put(row_cap + i, i, -c.availability)                          # - a_c n_c
        if c.market == "spot":
            put(row_down + i, i, -1.0)                                # - (n_c - s_c y_c)
            put(row_down + i, num_c + i, float(req.spare_spot_replicas))
        else:
            put(row_cap + i, num_c + i, req.ondemand_headroom_replicas)  # + h y_c
        put(row_pool + i, i, 1.0)                                     # n_c - N_max y_c <= 0
        put(row_pool + i, num_c + i, -float(req.max_replicas_per_pool))
    num_rows = row_down + num_c
    served = (rates > 0).astype(float)
    lb = np.concatenate([served, np.full(3 * num_c + num_b, -np.inf)])
    ub = np.concatenate([served, np.zeros(num_c), np.full(num_b, req.risk_tolerance), np.zeros(2 * num_c)])
    matrix = coo_matrix((val, (ri, ci)), shape=(num_rows, nvar)).tocsr()
    cost = np.zeros(nvar)
    cost[:num_c] = [c.cost_usd_per_hour for c in cands]
    integrality = np.zeros(nvar)
    integrality[:x0] = 1
    upper = np.ones(nvar)
    upper[:num_c] = req.max_replicas_per_pool
    res = milp(cost, integrality=integrality, bounds=Bounds(np.zeros(nvar), upper),
               constraints=LinearConstraint(matrix, lb, ub),
               options={"time_limit": req.time_limit_s, "mip_rel_gap": 1e-3})
    if res.x is None:
        raise InfeasibleFleetError(
            f"no fleet meets the SLO within {req.max_replicas_per_pool} replicas per pool ({res.message}); raise the "
            f"pool limit, allow more regions or markets, relax the SLO or lower the rate")
    n = np.round(res.x[:num_c]).astype(int)
    share = np.zeros((num_c, num_b))
    for k, (i, j) in enumerate(pairs):
        share[i, j] = res.x[x0 + k]
    return n, share


def single_type_baseline(cands: list[Candidate], buckets: list[Bucket], cap: np.ndarray, market: str,
                         spare: int, util: float = 1.0) -> dict | None:
    """The cheapest fleet of one candidate only (every bucket on it), in the given market."""
    best = None
    rates = np.array([b.rate_req_per_s for b in buckets])
    for i, c in enumerate(cands):
        if c.market != market or not np.all(cap[i][rates > 0] > 0):
            continue
        load = float(np.sum(rates[rates > 0] / cap[i][rates > 0]))
        count = math.ceil(load / c.availability - 1e-9)
        if market == "spot":
            count = max(count, math.ceil(util * load - 1e-9) + spare)
        usd = count * c.cost_usd_per_hour
        if best is None or usd < best["usd_per_hour"]:
            best = {"candidate": c.key, "replicas": count, "usd_per_hour": usd}
    return best


def make_plan(buckets: list[Bucket], req: PlanRequest, workload_summary: dict | None = None) -> dict:
    """Plan a fleet for the buckets: the MILP's fleet, its cost and floor, and the baselines (a plain dict)."""
    if not buckets or sum(b.rate_req_per_s for b in buckets) <= 0:
        raise CostModelError("the workload has no load to plan for; give a non-empty trace or a --rate above 0")
    cands = candidates(req)
    cap = capacity_matrix(cands, buckets, req)
    check_floor(cands, buckets, cap, req)
    started = time.perf_counter()
    n, share = solve(cands, buckets, cap, req)
    solve_s = time.perf_counter() - started
    rates = np.array([b.rate_req_per_s for b in buckets])
    replicas = []
    for i, c in enumerate(cands):
        if n[i] <= 0:
            continue
        load = float(np.sum(share[i] * np.divide(rates, cap[i], out=np.zeros_like(rates), where=cap[i] > 0)))
        needed = load / c.availability
        replicas.append({
            "model": c.model, "instance_type": c.offering.instance_type, "gpu": c.offering.gpu,
            "num_gpus": c.offering.num_gpus, "tensor_parallel": c.perf.num_gpus,
            "replicas_per_instance": c.replicas_per_instance, "region": c.offering.region, "market": c.market,
            "count": int(n[i]),
            "usd_per_hour_each": c.price_usd_per_hour, "expected_usd_per_hour_each": c.cost_usd_per_hour,
            "usd_per_hour": c.cost_usd_per_hour * int(n[i]),
            "availability": c.availability, "interruption_bucket": c.offering.interruption_bucket,
            "load_replicas": round(needed, 3), "headroom_replicas": round(int(n[i]) - needed, 3),
            "kv_capacity_tokens": c.perf.kv_capacity_tokens,
            "bucket_share": {str(j): round(float(share[i, j]), 6) for j in range(len(buckets)) if share[i, j] > 1e-9},
        })
    usd_per_hour = sum(r["usd_per_hour"] for r in replicas)
    out_tok_per_h = sum(b.rate_req_per_s * b.output_tokens_mean for b in buckets) * 3600
    in_tok = sum(b.rate_req_per_s * b.input_tokens_mean for b in buckets) / rates.sum()
    out_tok = out_tok_per_h / 3600 / rates.sum()
    floor = min(c.price_usd_per_hour / 3600 / c.replicas_per_instance
                / roofline_output_tokens_per_s(c.perf, in_tok, out_tok) * 1e6 for c in cands)
    baselines = {"single_ondemand": single_type_baseline(cands, buckets, cap, "ondemand", 0),
                 "single_spot": single_type_baseline(cands, buckets, cap, "spot", req.spare_spot_replicas,
                                                     req.knobs.max_utilization)}
    if "ondemand" in req.markets and "spot" in req.markets:
        od_req = PlanRequest(**{**req.__dict__, "markets": ("ondemand",)})
        od_cands = [c for c in cands if c.market == "ondemand"]
        od_cap = cap[[i for i, c in enumerate(cands) if c.market == "ondemand"]]
        try:
            od_n, _ = solve(od_cands, buckets, od_cap, od_req)
            baselines["hetero_ondemand"] = {"usd_per_hour": float(sum(k * c.cost_usd_per_hour
                                                                      for k, c in zip(od_n, od_cands)))}
        except InfeasibleFleetError:
            baselines["hetero_ondemand"] = None
    single = baselines["single_ondemand"]
    return {
        "version": 1,
        "workload": workload_summary or {},
        "slo": {"ttft_p99_s": req.slo.ttft_p99_s, "tpot_p99_s": req.slo.tpot_p99_s, "attainment": req.slo.attainment},
        "request": {"models": list(req.models), "regions": list(req.regions), "markets": list(req.markets),
                    "risk_tolerance": req.risk_tolerance, "spare_spot_replicas": req.spare_spot_replicas,
                    "spot_rate_multiplier": req.spot.rate_multiplier,
                    "tier_models": {t: list(ms) for t, ms in req.tier_models.items()}},
        "buckets": [{"index": b.index, "tier": b.tier, "input_range": list(b.input_range),
                     "output_range": list(b.output_range), "rate_req_per_s": b.rate_req_per_s,
                     "input_tokens_mean": b.input_tokens_mean, "output_tokens_mean": b.output_tokens_mean}
                    for b in buckets],
        "replicas": replicas,
        "usd_per_hour": usd_per_hour,
        "list_usd_per_hour": sum(r["usd_per_hour_each"] * r["count"] for r in replicas),
        "usd_per_1m_output_tokens": usd_per_hour / out_tok_per_h * 1e6,
        "floor_usd_per_1m_output_tokens": float(floor),
        "headroom_replicas": round(sum(r["headroom_replicas"] for r in replicas), 3),
        "best_effort_buckets": sorted(best_effort_buckets(buckets, req)),
        "baselines": {k: v for k, v in baselines.items()},
        "saving_vs_single_ondemand": None if single is None else 1 - usd_per_hour / single["usd_per_hour"],
        "num_candidates": len(cands),
        "solve_s": solve_s,
    }
