"""Test helpers for the Redis queue: a private redis-server, settings files, and `tamer worker` processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TAMER = [sys.executable, "-m", "tamer"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url_host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((url_host, port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server of the test's own on a free port (stopped and started again at will)."""

    def __init__(self, data_dir: Path, *, appendonly: bool = False) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; `apt-get install -y redis-server` (.ci/run does)")
        self.port = free_port()
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20.0) -> "RedisServer":
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--protected-mode", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not redis_answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits (a restart keeps what it acknowledged)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None


def write_settings(path: Path, *, redis_url: str, prefix: str, deployments: str, lease_timeout_s: float = 1.5,
                   extra_queue: str = "", server: str = "") -> Path:
    path.write_text(f'''
[server]
log_level = "warning"
{server}

[queue]
kind = "redis"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
lease_timeout_s = {lease_timeout_s}
{extra_queue}

{deployments}
''')
    return path


def sim_deployment(name: str = "sim", *, per_token_ms: float = 2, output_tokens: int = 20, max_concurrency: int = 32,
                   max_queue_depth: int = 5000, model: str = "sim-model") -> str:
    return f'''
[[deployments]]
name = "{name}"
backend = "sim"
model = "{model}"
url = "sim://?ttft_ms=0&per_token_ms={per_token_ms}&output_tokens={output_tokens}"
max_concurrency = {max_concurrency}
max_queue_depth = {max_queue_depth}
'''


class WorkerProcess:
    """A real `tamer worker` subprocess; ready once it prints its serving line."""

    def __init__(self, settings: Path, *args: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        out = open(log_path, "ab") if log_path is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen([*TAMER, "worker", "--config", str(settings), *args], stdout=subprocess.PIPE,
                                     stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout_s: float = 120.0) -> "WorkerProcess":
        import select

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline().decode()
                if "serving" in line:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode} before it was ready; see {self.log_path}")
        raise RuntimeError(f"worker not ready after {timeout_s} s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout_s)


def wait_until(predicate, timeout_s: float = 10.0, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return bool(predicate())
