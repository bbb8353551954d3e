"""Deployment health: failing ones cool down with backoff, interrupted ones drain (time passed in)."""

from router.policies.health import DeploymentHealth


def test_failures_cool_down_with_backoff_and_a_success_resets():
    h = DeploymentHealth(cooldown_s=5, max_cooldown_s=12)
    assert h.is_available("a", 0)
    assert h.record_failure("a", 0) == 5
    assert not h.is_available("a", 4.9) and h.is_available("a", 5)
    assert h.record_failure("a", 5) == 15  # doubled
    assert h.record_failure("a", 15) == 27  # capped at 12
    assert h.unavailable(20) == {"a": ("failing", 7)}
    h.record_success("a")
    assert h.record_failure("a", 30) == 35


def test_an_interruption_notice_drains_for_two_minutes():
    h = DeploymentHealth()
    h.notice_interruption("spot-1", 100)
    assert not h.is_available("spot-1", 219) and h.is_available("spot-1", 220)
    assert h.unavailable(150)["spot-1"][0] == "interruption notice"
