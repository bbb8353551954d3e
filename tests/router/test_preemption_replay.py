"""bench/preemption_replay.py's replays: the non-preemptive one agrees with bench/scheduling.py's, and the
preemptive one obeys what is known of SRPT and LAS."""

from __future__ import annotations

import random

from bench.preemption_replay import mlfq_level, poisson_arrivals, replay_nonpreemptive, replay_preemptive
from bench.scheduling import replay_latency_steps


def random_lengths(seed: int, n: int = 40) -> list[int]:
    rng = random.Random(seed)
    return [rng.choice([rng.randint(1, 20), rng.randint(20, 128), 128]) for _ in range(n)]


def test_burst_matches_the_scheduling_bench_replay():
    for seed in range(5):
        lengths = random_lengths(seed)
        rng = random.Random(seed + 100)
        priority = [rng.random() for _ in lengths]
        order = sorted(range(len(lengths)), key=lambda i: (priority[i], i))
        assert replay_nonpreemptive(lengths, [0.0] * len(lengths), priority, 4) == \
            replay_latency_steps(lengths, order, 4)


def test_srpt_is_shortest_first_on_a_burst_and_beats_it_with_arrivals():
    lengths = random_lengths(1)
    burst = [0.0] * len(lengths)
    # all present at once, a started request stays among the shortest remaining: the same schedule
    assert replay_preemptive(lengths, burst, lambda i, w: lengths[i] - w, 4) == \
        replay_nonpreemptive(lengths, burst, lengths, 4)
    # one server: SRPT minimises the mean latency of any schedule (Schrage 1968); arrivals make it differ
    gains = []
    for seed in range(5):
        arrivals = poisson_arrivals(lengths, 0.9, 1, random.Random(seed))
        srpt = sum(replay_preemptive(lengths, arrivals, lambda i, w: lengths[i] - w, 1))
        sjf = sum(replay_nonpreemptive(lengths, arrivals, lengths, 1))
        assert srpt <= sjf
        gains.append(sjf - srpt)
    assert max(gains) > 0


def test_one_slot_las_shares_it_round_robin():
    # two requests of 3 tokens at once: LAS alternates them, so they finish at steps 5 and 6
    assert replay_preemptive([3, 3], [0.0, 0.0], lambda i, w: w, 1) == [5.0, 6.0]
    assert replay_nonpreemptive([3, 3], [0.0, 0.0], [0.0, 0.0], 1) == [3.0, 6.0]


def test_an_idle_slot_waits_for_the_next_arrival():
    assert replay_nonpreemptive([2, 2], [0.0, 10.0], [0.0, 0.0], 1) == [2.0, 2.0]
    assert replay_preemptive([2, 2], [0.0, 10.0], lambda i, w: w, 1) == [2.0, 2.0]


def test_mlfq_levels():
    assert [mlfq_level(w) for w in (0, 7, 8, 23, 24, 56, 500)] == [0, 0, 1, 1, 2, 3, 3]
