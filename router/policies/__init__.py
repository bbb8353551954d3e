"""Routing policies, registered by name; `create_policy(name)` builds one."""

from router.policies.base import (Candidate, Decision, RouteTargets, RoutingPolicy, create_policy,
                                  registered_policies)

__all__ = ["Candidate", "Decision", "RouteTargets", "RoutingPolicy", "create_policy", "registered_policies"]
