"""The replica capacity model, kept here for the replay's imports (see :mod:`autoscaler.capacity`)."""

from autoscaler.capacity import Capacity, capacity_from_mapping, load_capacity

__all__ = ["Capacity", "capacity_from_mapping", "load_capacity"]
