"""Proxy overhead: the same load sent straight to an upstream and through tamer, in one run.

An instant mock OpenAI upstream (bench/mock_upstream.py) and a `tamer serve` whose one deployment is
that upstream (backend `openai`) run as separate processes; a load generator sends chat completions
at a fixed concurrency, alternating blocks of direct and proxied requests so both see the same machine
state. Added latency = latency through tamer - latency direct, at p50 and p99.

    python bench/proxy_overhead.py            # 3,000 requests per arm at each of concurrency 1 and 4
    python bench/proxy_overhead.py --quick    # under 30 s
The headline numbers (overhead_p50_ms, overhead_p99_ms, rps) are those of the first concurrency level.
Writes bench/results/proxy_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repo root, not bench/ (whose queue.py would shadow the standard library's)

from backends.http1 import Pool  # noqa: E402
BODY = {"model": "mock-model", "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16, "temperature": 0}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout_s} s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def run_block(client: Pool, num_requests: int, concurrency: int) -> list[float]:
    latencies_ms: list[float] = []
    remaining = num_requests
    payload = json.dumps(BODY).encode()

    async def one_lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post("/chat/completions", payload)
            body = await response.read()
            await response.aclose()
            latencies_ms.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"{client.port} answered {response.status}: {body[:300]!r}")

    await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    return latencies_ms


async def load(direct_url: str, tamer_url: str, num_requests: int, concurrency: int, block: int) -> dict:
    """Alternating blocks of direct and proxied requests. The client is tamer's own lean HTTP/1.1 pool
    (backends/http1.py) so that the load generator takes as little of the shared CPUs as possible."""
    clients = {"direct": Pool(direct_url, max_connections=concurrency, read_timeout_s=30),
               "tamer": Pool(tamer_url, max_connections=concurrency, read_timeout_s=30)}
    results: dict[str, list[float]] = {"direct": [], "tamer": []}
    seconds = {"direct": 0.0, "tamer": 0.0}
    await run_block(clients["direct"], 50, concurrency)  # warm up both paths
    await run_block(clients["tamer"], 200, concurrency)
    done = 0
    while done < num_requests:
        n = min(block, num_requests - done)
        for arm, client in clients.items():
            started = time.perf_counter()
            results[arm] += await run_block(client, n, concurrency)
            seconds[arm] += time.perf_counter() - started
        done += n
    for client in clients.values():
        await client.aclose()
    return {"latencies_ms": results, "seconds": seconds}


def summarize(latencies_ms: dict[str, list[float]], seconds: dict[str, float]) -> dict:
    out: dict = {}
    for arm, values in latencies_ms.items():
        out[arm] = {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
                    "mean_ms": statistics.fmean(values), "rps": len(values) / seconds[arm], "n": len(values)}
    out["overhead_p50_ms"] = out["tamer"]["p50_ms"] - out["direct"]["p50_ms"]
    out["overhead_p99_ms"] = out["tamer"]["p99_ms"] - out["direct"]["p99_ms"]
    out["rps"] = out["tamer"]["rps"]
    out["rps_ratio_tamer_over_direct"] = out["tamer"]["rps"] / out["direct"]["rps"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per arm and concurrency level")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated concurrency levels")
    parser.add_argument("--block", type=int, default=250, help="requests per alternating block")
    parser.add_argument("--quick", action="store_true", help="400 requests per arm and level (under 30 s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "proxy_overhead.json")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.block = 400, 100
    levels = [int(c) for c in args.concurrency.split(",")]

    upstream_port, tamer_port = free_port(), free_port()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'''
[server]
log_level = "warning"
[[deployments]]
name = "mock"
backend = "openai"
model = "mock-model"
url = "http://127.0.0.1:{upstream_port}/v1"
max_concurrency = 64
''')
    config.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.mock_upstream", "--port", str(upstream_port)], cwd=ROOT,
                         env=env),
        subprocess.Popen([sys.executable, "-m", "tamer", "serve", "--port", str(tamer_port), "--config",
                          config.name], cwd=ROOT, env=env, stdout=subprocess.DEVNULL),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/health")
        wait_ready(f"http://127.0.0.1:{tamer_port}/health")
        raws = {c: asyncio.run(load(f"http://127.0.0.1:{upstream_port}/v1", f"http://127.0.0.1:{tamer_port}/v1",
                                    args.requests, c, args.block)) for c in levels}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        os.unlink(config.name)

    by_level = {c: summarize(r["latencies_ms"], r["seconds"]) for c, r in raws.items()}
    head = by_level[levels[0]]
    result = {
        "benchmark": "proxy_overhead", "requests_per_arm": args.requests, "concurrency": levels[0],
        "overhead_p50_ms": head["overhead_p50_ms"], "overhead_p99_ms": head["overhead_p99_ms"],
        "rps": head["rps"], "by_concurrency": {str(c): s for c, s in by_level.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "note": "load generator, tamer and the mock upstream share this machine's CPUs",
    }
    print(f"{'conc':>4} {'arm':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}")
    for c, summary in by_level.items():
        for arm in ("direct", "tamer"):
            s = summary[arm]
            print(f"{c:4d} {arm:8} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['mean_ms']:8.2f} {s['rps']:8.0f}")
    for c, summary in by_level.items():
        print(f"concurrency {c}: added latency p50 {summary['overhead_p50_ms']:.2f} ms, "
              f"p99 {summary['overhead_p99_ms']:.2f} ms; {summary['rps']:.0f} req/s through tamer "
              f"({summary['rps_ratio_tamer_over_direct']:.2f}x of direct)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
