"""Which deployments the router should avoid for now: failing ones cool down, interrupted ones drain.

Pure state with the time passed in. A deployment that fails a request before its first token (upstream
down, engine gone) cools down for `cooldown_s`, doubling with each failure in a row up to `max_cooldown_s`;
a success resets it. A deployment that got a spot interruption notice is drained for `drain_s` (AWS gives
two minutes), then comes back when its replacement serves. The router prefers available deployments and
uses unavailable ones only when nothing else is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _State:
    unavailable_until_s: float = 0.0
    consecutive_failures: int = 0
    why: str = ""


@dataclass
class DeploymentHealth:
    cooldown_s: float = 5.0
    max_cooldown_s: float = 120.0
    drain_s: float = 120.0
    _states: dict[str, _State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cooldown_s < 0 or self.max_cooldown_s < self.cooldown_s or self.drain_s < 0:
            raise ValueError("need 0 <= cooldown_s <= max_cooldown_s and drain_s >= 0")

    def record_failure(self, deployment: str, now_s: float, why: str = "failing") -> float:
        """Cool the deployment down; returns until when (s)."""
        state = self._states.setdefault(deployment, _State())
        state.consecutive_failures += 1
        cooldown_s = min(self.max_cooldown_s, self.cooldown_s * 2 ** (state.consecutive_failures - 1))
        state.unavailable_until_s = max(state.unavailable_until_s, now_s + cooldown_s)
        state.why = why
        return state.unavailable_until_s

    def record_success(self, deployment: str) -> None:
        state = self._states.get(deployment)
        if state is not None:
            state.consecutive_failures = 0

    def notice_interruption(self, deployment: str, now_s: float) -> None:
        """A spot interruption notice: take no new work there for drain_s."""
        state = self._states.setdefault(deployment, _State())
        state.unavailable_until_s = max(state.unavailable_until_s, now_s + self.drain_s)
        state.why = "interruption notice"

    def is_available(self, deployment: str, now_s: float) -> bool:
        state = self._states.get(deployment)
        return state is None or now_s >= state.unavailable_until_s

    def unavailable(self, now_s: float) -> dict[str, tuple[str, float]]:
        """{deployment: (why, seconds left)} of those avoided now."""
        return {name: (s.why, s.unavailable_until_s - now_s) for name, s in sorted(self._states.items())
                if now_s < s.unavailable_until_s}
