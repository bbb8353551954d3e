"""Scheduler and block manager, pure Python: no leaks, no drops, bounded waiting, FCFS by default.

A fake executor stands in for the model: it marks scheduled tokens computed and "samples" a token
derived from the sequence's length, so runs are deterministic and need no torch.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backends.engine.block_manager import BlockManager
from backends.engine.sampling_params import SamplingParams
from backends.engine.scheduler import Scheduler, SchedulerConfig
from backends.engine.sequence import Sequence, SequenceStatus

SHARED_PREFIX = list(range(1000, 1019))  # 19 tokens: a few full blocks that prompts can share


def make_seq(request_id: str, prompt: list[int], max_tokens: int, priority: float = 0.0) -> Sequence:
    return Sequence(request_id=request_id, prompt_token_ids=prompt, sampling=SamplingParams(max_tokens=max_tokens),
                    max_output_tokens=max_tokens, priority=priority)


def execute(scheduler: Scheduler) -> list[Sequence]:
    """One step: schedule, mark computed, append a token to sampling sequences, finish those at max_tokens."""
    finished = []
    for s in scheduler.schedule():
        samples = s.samples
        s.seq.num_computed_tokens += s.num_tokens
        scheduler.blocks.commit(s.seq, s.seq.num_computed_tokens)
        if samples:
            s.seq.append_token(s.seq.num_tokens % 97)
            if s.seq.num_output_tokens >= s.seq.max_output_tokens:
                scheduler.finish(s.seq)
                finished.append(s.seq)
    return finished


request = st.tuples(
    st.booleans(),  # starts with the shared prefix
    st.lists(st.integers(0, 50), min_size=1, max_size=40),  # own prompt tokens
    st.integers(1, 12),  # max_tokens
    st.sampled_from([0.0, 0.0, 5.0, 50.0]),  # priority
)
operation = st.one_of(
    st.tuples(st.just("add"), request),
    st.tuples(st.just("step"), st.integers(1, 4)),
    st.tuples(st.just("abort"), st.integers(0, 1000)),
)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(operation, min_size=1, max_size=60),
       num_blocks=st.integers(16, 40), block_size=st.sampled_from([1, 2, 4, 8]),
       budget=st.integers(1, 64), max_num_seqs=st.integers(1, 6), prefix_caching=st.booleans())
def test_no_block_leaks_and_every_request_finishes(ops, num_blocks, block_size, budget, max_num_seqs,
                                                   prefix_caching):
    blocks = BlockManager(num_blocks, block_size, enable_prefix_caching=prefix_caching)
    scheduler = Scheduler(SchedulerConfig(max_num_seqs, budget, 1.0), blocks)
    capacity_tokens = num_blocks * block_size
    added: dict[str, Sequence] = {}
    aborted: set[str] = set()
    for op, arg in ops:
        if op == "add":
            shared, own, max_tokens, priority = arg
            prompt = (SHARED_PREFIX if shared else []) + own
            if len(prompt) + max_tokens > capacity_tokens:
                continue  # the engine refuses these at add_request
            seq = make_seq(f"r{len(added)}", prompt, max_tokens, priority)
            added[seq.request_id] = seq
            scheduler.add(seq)
        elif op == "step":
            for _ in range(arg):
                execute(scheduler)
        elif added:
            victim = list(added)[arg % len(added)]
            if scheduler.remove(victim) is not None:
                aborted.add(victim)
        blocks.check_invariants(scheduler.live())
    for _ in range(10_000):
        if not scheduler.has_unfinished():
            break
        execute(scheduler)
        blocks.check_invariants(scheduler.live())
    assert not scheduler.has_unfinished()
    assert blocks.num_free_blocks == num_blocks  # nothing leaked
    for request_id, seq in added.items():
        assert seq.status is SequenceStatus.FINISHED and not seq.block_table
        if request_id not in aborted:
            assert seq.num_output_tokens == seq.max_output_tokens  # not dropped, not cut short


def test_abort_frees_blocks_at_once():
    blocks = BlockManager(32, 4)
    scheduler = Scheduler(SchedulerConfig(4, 64, 1.0), blocks)
    seq = make_seq("a", list(range(30)), 5)
    scheduler.add(seq)
    execute(scheduler)
    assert len(seq.block_table) == 8 and blocks.num_free_blocks == 24
    scheduler.remove("a")
    assert blocks.num_free_blocks == 32 and seq.block_table == []


def test_fcfs_without_priorities():
    scheduler = Scheduler(SchedulerConfig(1, 1000, 1.0), BlockManager(100, 4))
    seqs = [make_seq(f"r{i}", [i, i + 1, i + 2], 2) for i in range(5)]
    for seq in seqs:
        scheduler.add(seq)
    order = []
    while scheduler.has_unfinished():
        order += [s.request_id for s in execute(scheduler)]
    assert order == ["r0", "r1", "r2", "r3", "r4"]


def test_shortest_predicted_first_and_aging_bounds_the_wait():
    """A long job (priority 40) among a steady stream of short ones (priority 1) starts within its bound:
    only jobs that arrived by step arrival + priority / aging_per_step may overtake it."""
    aging = 2.0
    scheduler = Scheduler(SchedulerConfig(1, 1000, aging), BlockManager(200, 4))
    long_job = make_seq("long", [1, 2, 3], 1, priority=40.0)
    admitted_at: dict[str, int] = {}
    arrivals: dict[str, int] = {}
    known: list[Sequence] = []
    for step in range(200):
        if step == 3:
            scheduler.add(long_job)
            arrivals["long"] = scheduler.step_count
            known.append(long_job)
        short = make_seq(f"s{step}", [step % 50, 7], 1, priority=1.0)
        scheduler.add(short)
        arrivals[short.request_id] = scheduler.step_count
        known.append(short)
        execute(scheduler)
        for seq in known:
            if seq.status is not SequenceStatus.WAITING:
                admitted_at.setdefault(seq.request_id, scheduler.step_count)
        if "long" in admitted_at and step > 60:
            break
    assert "long" in admitted_at
    bound_step = arrivals["long"] + long_job.priority / aging
    overtook = [r for r, step in admitted_at.items() if r != "long" and step > arrivals["long"]
                and step <= admitted_at["long"]]
    assert overtook, "short jobs should run first"
    assert all(arrivals[r] <= bound_step for r in overtook)


def test_preemption_recomputes_and_drops_nothing():
    blocks = BlockManager(12, 2)  # 24 tokens for three sequences that each grow to 12
    scheduler = Scheduler(SchedulerConfig(3, 64, 1.0), blocks)
    seqs = [make_seq(f"r{i}", [i] * 4, 8) for i in range(3)]
    for seq in seqs:
        scheduler.add(seq)
    while scheduler.has_unfinished():
        execute(scheduler)
        blocks.check_invariants(scheduler.live())
    assert scheduler.num_preemptions > 0
    assert all(seq.num_output_tokens == 8 for seq in seqs)
    assert blocks.num_free_blocks == 12


def test_prefix_reuse_shares_full_blocks_and_keeps_the_last_token_computed():
    blocks = BlockManager(64, 4)
    scheduler = Scheduler(SchedulerConfig(4, 512, 1.0), blocks)
    first = make_seq("a", SHARED_PREFIX + [1, 2], 10)
    scheduler.add(first)
    execute(scheduler)
    second = make_seq("b", SHARED_PREFIX + [3], 2)
    scheduler.add(second)
    execute(scheduler)
    assert second.num_cached_prompt_tokens == 16  # 4 full blocks of the 19-token prefix
    assert second.block_table[:4] == first.block_table[:4]
    assert all(blocks.blocks[b].ref_count == 2 for b in first.block_table[:4])
    exact = make_seq("c", SHARED_PREFIX[:16], 1)  # fully cached prompt: its last block is recomputed
    scheduler.add(exact)
    execute(scheduler)
    assert exact.num_cached_prompt_tokens == 12
