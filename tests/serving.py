"""Test helper: run a real tamer proxy (uvicorn over TCP) on a free port in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from router.api.app import create_app
from router.config import GatewayConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.port = free_port()
        self.app = create_app(config)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self):
        return self.app.state.gateway

    def start(self, timeout_s: float = 120.0) -> "RunningServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("tamer test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> "RunningServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


MODEL = "smollm2-135m-instruct"


def local_deployment(**overrides):
    """The embedded default's deployment, with some fields changed."""
    import dataclasses

    from backends.deployment import bundled_deployment

    return dataclasses.replace(bundled_deployment(), **{"kv_cache_gib": 0.25, **overrides})


def make_server(deployments=None, **server_settings) -> RunningServer:
    from router.config import ServerSettings

    config = GatewayConfig(server=ServerSettings(**server_settings),
                           deployments=tuple(deployments or (local_deployment(),)))
    return RunningServer(config)


def read_data_lines(response, count: int) -> None:
    """Read an SSE response until `count` `data:` lines have arrived (the connection stays open)."""
    seen = 0
    for line in response.iter_lines():
        seen += line.startswith("data:")
        if seen >= count:
            return
