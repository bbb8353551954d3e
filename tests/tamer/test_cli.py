"""The `tamer` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.serving import free_port

TAMER = [sys.executable, "-m", "tamer"]


def run(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*TAMER, *args], capture_output=True, text=True, timeout=timeout_s)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("tamer 0.")


def test_generate_prints_the_local_models_answer():
    out = run("generate", "What is the capital of France? One word.", "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_worker_without_a_shared_queue_says_what_to_do():
    out = run("worker")
    assert out.returncode == 2 and "Redis" in out.stderr


def test_bad_config_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    out = run("serve", "--config", str(bad))
    assert out.returncode != 0
    out = run("serve", "--config", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_serve_starts_and_prints_its_url():
    port = free_port()
    proc = subprocess.Popen([*TAMER, "serve", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "TAMER_LOG_LEVEL": "warning"})
    try:
        first_line = proc.stdout.readline()
        assert f"http://localhost:{port}/v1" in first_line
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        assert "smollm2-135m-instruct" in [m["id"] for m in models["data"]]
    finally:
        proc.terminate()
        proc.wait(30)
