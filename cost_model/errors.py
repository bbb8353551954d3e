"""The cost model's exceptions: one class per failure, each message says what to change."""

from __future__ import annotations


class CostModelError(ValueError):
    """Base class: bad input to the catalog, planner or simulator."""


class UnknownNameError(CostModelError):
    """A model, GPU, instance type or region that the catalog does not hold."""


class EmptyWorkloadError(CostModelError):
    """A trace or workload with no requests."""


class SloBelowFloorError(CostModelError):
    """An SLO tighter than any allowed hardware can physically meet."""


class InfeasibleFleetError(CostModelError):
    """No fleet within the allowed models, GPUs, regions and markets meets the SLO."""
