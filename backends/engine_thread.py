"""Drives an LLMEngine from one background thread and hands its outputs to asyncio consumers.

The engine is not thread-safe: only this thread touches it. Callers post add/abort commands; each
request's StepOutputs arrive on an asyncio.Queue owned by the caller's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any, Callable

log = logging.getLogger("tamer.engine")


class EngineThread:
    def __init__(self, engine: Any, *, idle_wait_s: float = 0.05) -> None:
        self.engine = engine
        self.idle_wait_s = idle_wait_s
        self._commands: deque[Callable[[], None]] = deque()
        self._wakeup = threading.Event()
        self._stopping = False
        self._sinks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._thread = threading.Thread(target=self._loop, name="tamer-engine", daemon=True)
        self.num_steps = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def submit(self, request_id: str, prompt_token_ids: list[int], sampling: Any,
               priority: float | None = None) -> asyncio.Queue:
        """Start a request (priority: lower runs first, None = FCFS); returns the queue its StepOutputs
        (or an Exception) will arrive on."""
        loop = asyncio.get_running_loop()
        sink: asyncio.Queue = asyncio.Queue()

        def add() -> None:
            self._sinks[request_id] = (loop, sink)
            try:
                self.engine.add_request(request_id, prompt_token_ids, sampling, priority=priority)
            except Exception as err:  # reported to the caller, the engine keeps running
                self._sinks.pop(request_id, None)
                loop.call_soon_threadsafe(sink.put_nowait, err)

        self._post(add)
        return sink

    def abort(self, request_id: str) -> None:
        def abort() -> None:
            self._sinks.pop(request_id, None)
            self.engine.abort(request_id)

        self._post(abort)

    def num_active(self) -> int:
        return len(self._sinks)

    def _post(self, command: Callable[[], None]) -> None:
        self._commands.append(command)
        self._wakeup.set()

    def _loop(self) -> None:
        while not self._stopping:
            while self._commands:
                self._commands.popleft()()
            if not self.engine.has_unfinished():
                self._wakeup.wait(self.idle_wait_s)
                self._wakeup.clear()
                continue
            try:
                outputs = self.engine.step()
            except Exception as err:
                log.exception("engine step failed; failing its running requests")
                for request_id, (loop, sink) in list(self._sinks.items()):
                    loop.call_soon_threadsafe(sink.put_nowait, err)
                    self.engine.abort(request_id)
                self._sinks.clear()
                continue
            self.num_steps += 1
            for out in outputs:
                target = self._sinks.get(out.request_id)
                if target is None:
                    continue
                if out.finished:
                    del self._sinks[out.request_id]
                loop, sink = target
                loop.call_soon_threadsafe(sink.put_nowait, out)
