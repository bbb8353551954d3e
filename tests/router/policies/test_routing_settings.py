"""routing.* settings: validated at load, handed to each policy by name, overridable from the environment."""

import pytest

from router.config import RoutingSettings
from router.policies import create_policy


def test_each_policy_gets_its_options():
    s = RoutingSettings(quality_target=0.7, threshold=0.2, balancer="round-robin", budget_usd_per_hour=3)
    assert create_policy("quality-floor", **s.policy_options("quality-floor")).quality_target == 0.7
    assert create_policy("threshold", **s.policy_options("threshold")).threshold == 0.2
    assert create_policy("budget", **s.policy_options("budget")).controller.target == 3.0
    assert s.policy_options("cheapest") == {}


@pytest.mark.parametrize("bad, message", [({"quality_target": 1.2}, "quality_target"),
                                          ({"balancer": "random"}, "least-work"),
                                          ({"budget_usd_per_hour": 1.0, "budget_strong_share": 0.2}, "not both"),
                                          ({"budget_strong_share": 2.0}, "budget_strong_share")])
def test_bad_settings_say_what_is_valid(bad, message):
    with pytest.raises(ValueError, match=message):
        RoutingSettings(**bad)


def test_toml_and_environment():
    from tamer.config import settings_from_dict

    s = settings_from_dict({"routing": {"default_policy": "quality-floor", "budget_usd_per_hour": 2}},
                           env={"TAMER_QUALITY_TARGET": "0.65"})
    assert s.routing.default_policy == "quality-floor" and s.routing.quality_target == 0.65
    d = settings_from_dict({"deployments": [{"name": "g", "backend": "local", "model": "m",
                                             "instance_type": "g5.xlarge", "market": "spot", "tokens_per_s": 900}]})
    assert d.deployments[0].tokens_per_s == 900.0 and d.deployments[0].is_billed_by_time
