"""Work-queue throughput and added latency: the real Redis queue (1 and 4 worker processes) beside the memory queue.

Every arm runs the same jobs through submit -> claim -> run -> publish -> ack -> the submitter reading
the finish event, on a no-op backend (the `sim` backend with zero tokens and zero delay), so all the time
measured is the queue's. The bench process plays the proxy (a RedisWorkQueue submitting and reading
events); the workers are `tamer worker` processes. The memory arm runs its worker in the bench process,
as `tamer serve` does.

- throughput: `--jobs` jobs with `--concurrency` of them outstanding at once -> jobs/s
- added latency: one job at a time (`--latency-jobs` of them), submit to finish event received -> p50 / p99

    python bench/queue.py            # 20,000 jobs per arm
    python bench/queue.py --quick    # under 30 s

Headline keys in bench/results/queue.json (redis_jobs_per_s, redis_added_p50_ms, redis_added_p99_ms) are
the 4-worker Redis arm's. Redis: --redis-url (default redis://127.0.0.1:6379/0); keys go under a fresh
prefix that is deleted afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file would stand in for the
# standard library's `queue` module; take the folder out before anything imports it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = _HERE.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from backends.deployment import DeploymentSpec  # noqa: E402
from backends.events import is_terminal  # noqa: E402
from backends.job import GenerationRequest, Job  # noqa: E402
from backends.workqueue import create_queue  # noqa: E402

NOOP_URL = "sim://?ttft_ms=0&per_token_ms=0&output_tokens=0"
DEPLOYMENT = "noop"
REQUEST = GenerationRequest(kind="chat", messages=({"role": "user", "content": "What is the capital of France?"},),
                            max_tokens=16)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def new_job() -> Job:
    return Job(job_id=uuid.uuid4().hex, deployment=DEPLOYMENT, model="noop", request=REQUEST, priority=16,
               est_tokens=30)


async def run_one(queue) -> float:
    job = new_job()
    started = time.perf_counter()
    await queue.submit(job)
    async for event in queue.events(job.job_id):
        if is_terminal(event):
            break
    return time.perf_counter() - started


async def measure(queue, num_jobs: int, concurrency: int, num_latency_jobs: int) -> dict:
    for _ in range(min(200, num_jobs)):  # warm-up: connections, scripts, worker loops
        await run_one(queue)
    latencies_s = [await run_one(queue) for _ in range(num_latency_jobs)]
    remaining = num_jobs

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await run_one(queue)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall_s = time.perf_counter() - started
    return {"jobs_per_s": num_jobs / wall_s, "added_p50_ms": percentile(latencies_s, 50) * 1000,
            "added_p99_ms": percentile(latencies_s, 99) * 1000, "jobs": num_jobs, "concurrency": concurrency,
            "latency_jobs": num_latency_jobs}


async def memory_arm(args) -> dict:
    from backends.sim import SimBackend
    from backends.worker import Worker

    queue = create_queue("memory", max_queue_depth=1_000_000)
    backend = SimBackend(DeploymentSpec(name=DEPLOYMENT, backend="sim", model="noop", url=NOOP_URL,
                                        max_concurrency=args.worker_concurrency))
    await backend.start()
    worker = Worker(queue, {DEPLOYMENT: backend})
    await worker.start()
    try:
        return await measure(queue, args.jobs, args.concurrency, args.latency_jobs)
    finally:
        await worker.stop()
        await queue.close()


def settings_file(directory: Path, redis_url: str, prefix: str, worker_concurrency: int) -> Path:
    path = directory / "queue-bench.toml"
    path.write_text(f'''
[server]
log_level = "warning"
[queue]
kind = "redis"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
[[deployments]]
name = "{DEPLOYMENT}"
backend = "sim"
model = "noop"
url = "{NOOP_URL}"
max_concurrency = {worker_concurrency}
max_queue_depth = 1000000
''')
    return path


def start_workers(settings: Path, count: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-m", "tamer", "worker", "--config", str(settings)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT) for _ in range(count)]
    for proc in procs:
        line = proc.stdout.readline().decode()
        if "serving" not in line:
            raise RuntimeError(f"a worker did not start: {line!r}")
    return procs


async def redis_arm(args, num_workers: int, directory: Path) -> dict:
    prefix = f"tamer-bench-{uuid.uuid4().hex[:8]}"
    settings = settings_file(directory, args.redis_url, prefix, args.worker_concurrency)
    procs = start_workers(settings, num_workers)
    queue = create_queue("redis", redis_url=args.redis_url, key_prefix=prefix, max_queue_depth=1_000_000)
    try:
        return await measure(queue, args.jobs, args.concurrency, args.latency_jobs)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        await queue.close()
        await delete_prefix(args.redis_url, prefix)


async def delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=5000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i:i + 1000])
    finally:
        await client.aclose()


def reply_parser() -> str:
    """Which RESP reader the Redis queue used: hiredis (C) if installed, else the pure-Python one."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return "python"
    return "hiredis"


async def main_async(args) -> dict:
    arms = {"memory": await memory_arm(args)}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 4):
            arms[f"redis_{n}_worker{'s' if n > 1 else ''}"] = await redis_arm(args, n, Path(tmp))
    headline = arms["redis_4_workers"]
    return {"benchmark": "queue", "redis_jobs_per_s": headline["jobs_per_s"],
            "redis_added_p50_ms": headline["added_p50_ms"], "redis_added_p99_ms": headline["added_p99_ms"],
            "arms": arms, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                      "redis_reply_parser": reply_parser()},
            "command": " ".join(["python", "bench/queue.py", *sys.argv[1:]])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under 30 s")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--latency-jobs", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=512, help="jobs outstanding at once (throughput)")
    parser.add_argument("--worker-concurrency", type=int, default=256, help="jobs one worker runs at once")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "queue.json"))
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.latency_jobs = 3_000, 300
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(main_async(args))
    print(f"{'arm':<16} {'jobs/s':>9} {'added p50 ms':>13} {'added p99 ms':>13}")
    for name, arm in result["arms"].items():
        print(f"{name:<16} {arm['jobs_per_s']:>9.0f} {arm['added_p50_ms']:>13.2f} {arm['added_p99_ms']:>13.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
