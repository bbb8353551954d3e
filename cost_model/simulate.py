"""Discrete-event replay of a workload against a plan: continuous batching per replica (replica.py), the
router's dispatch (a rule from dispatch.py, by name), spot preemptions (drawn from the spot model or replayed
from spot traces), re-queue and resume of interrupted requests, on-demand fallback while spot is away, and
the bill."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cost_model.capacity import Knobs, Slo, prefill_chunk_tokens, replica_capacity_req_per_s
from cost_model.catalog import get_gpu, get_model
from cost_model.dispatch import DEFAULT_RULE, ReplicaLoad, create_rule
from cost_model.errors import CostModelError
from cost_model.perf import PerfModel, load_efficiency
from cost_model.replica import Replica, Seq
from cost_model.spot import SpotModel, draw_preemptions, preemptions_from_trace
from cost_model.workload import Bucket, Workload, bucket_index

ARRIVAL, REPLICA, WARN, KILL, READY, RETRY, RELAUNCH = range(7)


@dataclass(frozen=True)
class SimOptions:
    """How to replay: the spot source ("model", "trace" or "none"), traces for "trace", seed, engine limits."""

    spot_source: str = "model"
    spot_traces: tuple = ()  # ((alive per tick, gap_s), ...)
    spot: SpotModel = SpotModel()
    seed: int = 0
    max_num_seqs: int = 256
    max_batched_tokens: int | None = None  # None: sized to the TPOT target (capacity.prefill_chunk_tokens)
    drain_after_s: float = 3600.0  # stop this long after the last arrival; anything unfinished is lost
    spot_retry_s: float | None = None  # how often an on-demand fallback tries spot again (None: spot.retry_s)
    dispatch: str = DEFAULT_RULE  # a rule registered in dispatch.py

    def __post_init__(self) -> None:
        create_rule(self.dispatch)  # an unknown name fails here, listing the known ones
        if self.spot_source not in ("model", "trace", "none"):
            raise ValueError(f"spot_source must be one of ['model', 'trace', 'none'], got {self.spot_source!r}")
        if self.spot_source == "trace" and not self.spot_traces:
            raise ValueError("spot_source='trace' needs spot_traces (give --spot-trace FILE)")
        if self.spot_retry_s is not None and self.spot_retry_s <= 0:
            raise ValueError(f"spot_retry_s must be > 0, got {self.spot_retry_s}")

    @property
    def retry_s(self) -> float:
        return self.spot.retry_s if self.spot_retry_s is None else self.spot_retry_s


@dataclass
class Instance:
    """One billed machine hosting replicas."""

    entry: dict
    market: str
    price_usd_per_hour: float
    start_s: float
    end_s: float | None = None
    replicas: list = field(default_factory=list)
    is_fallback: bool = False  # on demand, standing in for an interrupted spot instance
    is_retiring: bool = False  # a fallback handing back to spot (its end is not a preemption)


def simulate(plan: dict, workload: Workload, options: SimOptions = SimOptions(),
             progress: Callable[[float], None] | None = None,
             predicted_output_tokens: np.ndarray | None = None) -> dict:
    """Replay `workload` against `plan` (the planner's dict); return attainment, latencies, cost and losses.
    predicted_output_tokens: what the dispatch rule believes each request's output length is (None: the
    true lengths)."""
    if not plan.get("replicas"):
        raise CostModelError("the plan has no replicas; make one with `tamer plan`")
    slo = Slo(**plan["slo"])
    rng = np.random.default_rng(options.seed)
    edges_buckets = _bucket_lookup(plan)
    req_tier = [""] * len(workload) if workload.tier is None else [str(t) for t in workload.tier]
    req_bucket = [edges_buckets.get((int(b), t), edges_buckets.get((int(b), None)))
                  for b, t in zip(bucket_index(workload.input_tokens, workload.output_tokens), req_tier)]
    # a request of a tier the plan restricts is served only by the models the tier allows (router's quality tiers)
    tier_models = {t: set(ms) for t, ms in plan.get("request", {}).get("tier_models", {}).items()}
    horizon_s = float(workload.arrival_s[-1]) + options.drain_after_s
    events: list = []
    tie = itertools.count()

    def push(t: float, kind: int, obj, version: int = 0) -> None:
        heapq.heappush(events, (t, next(tie), kind, obj, version))

    perf_of, cap_of = {}, {}

    def perf_for(entry: dict) -> PerfModel:
        key = (entry["model"], entry["gpu"], entry.get("tensor_parallel", entry["num_gpus"]))
        if key not in perf_of:
            perf_of[key] = PerfModel(get_model(key[0]), get_gpu(key[1]), key[2], load_efficiency(key[1]))
        return perf_of[key]

    buckets = [Bucket(b["index"], b["rate_req_per_s"], b["input_tokens_mean"], b["input_tokens_mean"],
                      b["output_tokens_mean"], b["output_tokens_mean"]) for b in plan["buckets"]]
    instances: list[Instance] = []
    replicas: list[Replica] = []

    def launch(entry: dict, market: str, t_launch: float, t_ready: float) -> Instance:
        price = entry["usd_per_hour_each"] if market == entry["market"] else _price(entry, market)
        inst = Instance(entry, market, price, t_launch)
        perf = perf_for(entry)
        for _ in range(entry.get("replicas_per_instance", 1)):
            chunk = options.max_batched_tokens or prefill_chunk_tokens(perf, slo)
            rep = Replica(perf, inst, options.max_num_seqs, chunk)
            rep.alive = rep.accepting = t_ready <= t_launch
            rep.t_last = t_ready
            inst.replicas.append(rep)
            replicas.append(rep)
            for b in buckets:
                cap_of[(id(rep), b.index)] = replica_capacity_req_per_s(perf, b, slo, Knobs()) or 1e-6
        instances.append(inst)
        if t_ready > t_launch:
            push(t_ready, READY, inst)
        if market == "spot":
            for t in _preemption_times(entry, t_launch, horizon_s, options, rng):
                push(t - min(options.spot.warning_s, t - t_ready) if t > t_ready else t, WARN, inst)
                push(t, KILL, inst)
                break  # the first interruption ends this instance; its replacement draws anew
        return inst

    for entry in plan["replicas"]:
        for _ in range(entry["count"]):
            launch(entry, entry["market"], 0.0, 0.0)
    spare = int(plan.get("request", {}).get("spare_spot_replicas", 0))
    slots_down = {id(entry): 0 for entry in plan["replicas"]}

    def replace(entry: dict, now: float) -> None:
        """Refill an interrupted spot slot: spot if it can be had; else on demand unless the pool keeps a spare
        beyond the ones it has lost (SkyServe's fallback, holding the last spare in reserve: a pool that rode
        out one interruption on its only spare while spot was away lost everything to a second one); else try
        spot again later."""
        delay = options.spot.replacement_delay_s(get_model(entry["model"]).weight_bytes)
        if _spot_available(entry, now, options, rng):
            launch(entry, "spot", now, now + delay)
        elif slots_down[id(entry)] >= spare:
            new = launch(entry, "ondemand", now, now + delay)
            new.is_fallback = True
            push(now + options.retry_s, RETRY, new)
        else:
            push(now + options.retry_s, RELAUNCH, entry)
            return
        slots_down[id(entry)] -= 1
    for i in range(len(workload)):
        push(float(workload.arrival_s[i]), ARRIVAL, i)

    pending: list[Seq] = []
    ttft = np.full(len(workload), np.nan)
    tpot = np.full(len(workload), np.nan)
    done = np.zeros(len(workload), dtype=bool)
    served_by = np.full(len(workload), -1)
    entry_keys = [f"{e['model']}@{e['instance_type']}/{e['market']}" for e in plan["replicas"]]
    entry_index = {id(e): k for k, e in enumerate(plan["replicas"])}
    requeued = 0
    finished: list = []

    rule = create_rule(options.dispatch)
    predicted = workload.output_tokens if predicted_output_tokens is None else np.asarray(predicted_output_tokens)
    if len(predicted) != len(workload):
        raise CostModelError(f"predicted_output_tokens has {len(predicted)} entries for {len(workload)} requests")

    def remaining(s: Seq) -> float:
        return max(float(predicted[s.req]) - s.done_before, 0.0)

    def dispatch(seq: Seq, now: float) -> bool:
        """Offer the rule the replicas that can take seq (those the plan gives its bucket first)."""
        b = req_bucket[seq.req]
        allowed = tier_models.get(req_tier[seq.req])
        offered = [rep for rep in replicas if rep.accepting and rep.fits(seq)
                   and (allowed is None or rep.instance.entry["model"] in allowed)]
        preferred = [rep for rep in offered
                     if b is None or rep.instance.entry["bucket_share"].get(str(b), 0.0) > 0]
        pool = preferred or offered
        if not pool:
            return False
        loads = [ReplicaLoad(rep.num_outstanding,
                             _predicted_work_tokens(rep, now, remaining) if rule.uses_predicted_work else 0.0,
                             cap_of[(id(rep), b if b is not None else 0)]) for rep in pool]
        best = pool[rule.choose(loads, seq.prompt_tokens + remaining(seq))]
        best.waiting.append(seq)
        wake(best, now)
        return True

    def wake(rep: Replica, now: float) -> None:
        if rep.prefill_end_s is None:  # decoding or idle: the next step takes the new prompt
            rep.version += 1
            push(now, REPLICA, rep, rep.version)

    def reschedule(rep: Replica, t_next: float | None) -> None:
        rep.version += 1
        if t_next is not None:
            push(t_next, REPLICA, rep, rep.version)

    num_events = 0
    last_done_s = 0.0
    while events:
        now, _, kind, obj, version = heapq.heappop(events)
        if now > horizon_s:
            break
        num_events += 1
        if kind == ARRIVAL:
            i = obj
            seq = Seq(i, now, int(workload.input_tokens[i]), int(workload.output_tokens[i]))
            if not dispatch(seq, now):
                pending.append(seq)
            if progress is not None and i % 500 == 0:
                progress(i / len(workload))
        elif kind == REPLICA:
            rep = obj
            if version != rep.version or not rep.alive:
                continue
            t_next = rep.step(now, finished)
            reschedule(rep, t_next)
            for seq, t_done in finished:
                done[seq.req] = True
                last_done_s = max(last_done_s, t_done)
                served_by[seq.req] = entry_index[id(rep.instance.entry)]
                ttft[seq.req] = seq.first_token_s - seq.arrival_s
                total_out = seq.done_before + seq.output_tokens
                if total_out > 1:
                    tpot[seq.req] = (t_done - seq.first_token_s) / (total_out - 1)
            finished.clear()
        elif kind == WARN:
            for rep in obj.replicas:
                rep.accepting = False
                moved = [seq for seq in rep.waiting if not seq.admitted]
                rep.waiting = type(rep.waiting)(seq for seq in rep.waiting if seq.admitted)
                for seq in moved:
                    if not dispatch(seq, now):
                        pending.append(seq)
        elif kind == KILL:
            inst = obj
            if inst.end_s is not None:
                continue
            inst.end_s = now
            for rep in inst.replicas:
                for seq in rep.evict(now):
                    requeued += 1
                    if not dispatch(seq, now):
                        pending.append(seq)
            if inst.is_retiring:
                continue
            slots_down[id(inst.entry)] += 1
            replace(inst.entry, now)
        elif kind == RELAUNCH:
            if slots_down[id(obj)] > 0:
                replace(obj, now)
        elif kind == RETRY:  # SkyServe: an on-demand fallback goes back to spot once spot can be had
            inst = obj
            if inst.end_s is not None:
                continue
            if _spot_available(inst.entry, now, options, rng):
                delay = options.spot.replacement_delay_s(get_model(inst.entry["model"]).weight_bytes)
                launch(inst.entry, "spot", now, now + delay)
                inst.is_retiring = True
                push(now + delay, WARN, inst)
                push(now + delay + options.spot.warning_s, KILL, inst)
            else:
                push(now + options.retry_s, RETRY, inst)
        elif kind == READY:
            for rep in obj.replicas:
                rep.alive = rep.accepting = obj.end_s is None
            still = pending
            pending = []
            for seq in still:
                if not dispatch(seq, now):
                    pending.append(seq)
    end_s = min(horizon_s, max(float(workload.arrival_s[-1]), last_done_s))
    cost = sum(inst.price_usd_per_hour * (min(end_s, inst.end_s if inst.end_s is not None else end_s) - inst.start_s)
               / 3600 for inst in instances if inst.start_s <= end_s)  # billed while it runs within the replay
    if progress is not None:
        progress(1.0)
    out = _summary(workload, slo, ttft, tpot, done, cost, requeued, instances, end_s, num_events)
    ok = done & (ttft <= slo.ttft_p99_s) & (np.nan_to_num(tpot, nan=0.0) <= slo.tpot_p99_s)
    out["by_replica"] = {key: {"requests": int((served_by == k).sum()),
                               "slo_attainment": float(ok[served_by == k].mean()) if (served_by == k).any() else None,
                               "ttft_p99_s": _pct(ttft[served_by == k], 0.99)}
                         for k, key in enumerate(entry_keys)}
    if workload.tier is not None:
        tiers = np.asarray(req_tier)
        models = [e["model"] for e in plan["replicas"]]
        out["by_tier"] = {t: {"requests": int((tiers == t).sum()),
                              "slo_attainment": float(ok[tiers == t].mean()),
                              "models": sorted({models[k] for k in served_by[(tiers == t) & done]})}
                          for t in sorted(set(req_tier))}
    return out


def _predicted_work_tokens(rep: Replica, now: float, remaining: Callable[[Seq], float]) -> float:
    """Prompt tokens still to prefill + predicted output tokens still to generate, over rep's requests."""
    work = sum(s.prompt_tokens - s.prefilled + remaining(s) for s in rep.waiting)
    work += sum(s.prompt_tokens - s.prefilled + remaining(s) for s, _ in rep.prefill_batch)
    steps = rep.steps_done
    if rep.prefill_end_s is None and rep.running and rep.dt_s > 0:
        steps += (now - rep.t_last) / rep.dt_s
    work += sum(max(remaining(s) - (steps - s.decode_start_step), 0.0) for _, _, s in rep.running)
    return work


def _pct(a: np.ndarray, q: float) -> float:
    a = a[~np.isnan(a)]
    return float(np.quantile(a, q)) if len(a) else float("nan")


def _summary(workload: Workload, slo: Slo, ttft, tpot, done, cost, requeued, instances, end_s, num_events) -> dict:
    ok = done & (ttft <= slo.ttft_p99_s) & (np.nan_to_num(tpot, nan=0.0) <= slo.tpot_p99_s)
    finished = done.sum()
    out_tokens = float(workload.output_tokens[done].sum())
    latency = ttft + np.nan_to_num(tpot, nan=0.0) * np.maximum(workload.output_tokens - 1, 0)  # arrival to last token

    pct = _pct
    return {
        "num_requests": int(len(workload)), "completed": int(finished), "lost_requests": int(len(workload) - finished),
        "slo_attainment": float(ok.sum() / len(workload)),
        "ttft_p50_s": pct(ttft, 0.5), "ttft_p99_s": pct(ttft, 0.99),
        "tpot_p50_s": pct(tpot, 0.5), "tpot_p99_s": pct(tpot, 0.99),
        "latency_mean_s": float(np.mean(latency[done])) if finished else float("nan"),
        "cost_usd": float(cost), "duration_s": float(end_s),
        "usd_per_hour": float(cost / max(end_s, 1e-9) * 3600),
        "usd_per_1m_output_tokens": float(cost / out_tokens * 1e6) if out_tokens else float("nan"),
        "output_tokens_per_s": out_tokens / max(end_s, 1e-9),
        "preemptions": int(sum(1 for i in instances if i.end_s is not None and not i.is_retiring)),
        "requeued_requests": int(requeued),
        "ondemand_fallback_instances": int(sum(1 for i in instances if i.is_fallback)),
        "num_events": int(num_events),
    }


def _bucket_lookup(plan: dict) -> dict[tuple, int]:
    """(size-bucket id (workload.bucket_index), tier) -> the plan's bucket index; (id, None) -> the first tier's."""
    from cost_model.workload import INPUT_EDGES, OUTPUT_EDGES

    out = {}
    num_out = len(OUTPUT_EDGES) - 1
    for b in plan["buckets"]:
        i = INPUT_EDGES.index(b["input_range"][0])
        o = OUTPUT_EDGES.index(b["output_range"][0])
        out.setdefault((i * num_out + o, b.get("tier", "")), b["index"])
        out.setdefault((i * num_out + o, None), b["index"])
    return out


def _price(entry: dict, market: str) -> float:
    from cost_model.catalog import find_offerings

    for o in find_offerings((entry["region"],), (entry["instance_type"],)):
        price = o.price_usd_per_hour(market)
        if price is not None:
            return price
    return entry["usd_per_hour_each"]


def _preemption_times(entry: dict, t0: float, horizon_s: float, options: SimOptions, rng) -> list[float]:
    if options.spot_source == "none":
        return []
    if options.spot_source == "trace":
        alive, gap_s = options.spot_traces[rng.integers(len(options.spot_traces))]
        offset = int(rng.integers(len(alive)))
        return [t0 + t for t in preemptions_from_trace(alive, gap_s, offset, horizon_s - t0) if t > 0]
    rate = options.spot.interruptions_per_hour(entry.get("interruption_bucket", 4))
    return [t0 + t for t in draw_preemptions(rate, horizon_s - t0, rng)]


def _spot_available(entry: dict, now: float, options: SimOptions, rng) -> bool:
    """Whether a replacement can be had on spot right now (traces: the alive share of a random one; the spot
    model: its obtainable_share; no spot source: yes)."""
    if options.spot_source == "none":
        return True
    if options.spot_source == "model":
        return bool(rng.random() < options.spot.obtainable_share)
    alive, _ = options.spot_traces[rng.integers(len(options.spot_traces))]
    return bool(rng.random() < float(np.mean(alive > 0)))
