"""The replay simulator: a request trace against simulated replicas, one row per policy.

``capacity`` holds what one replica can do, ``simulator`` the pure time-step simulation
(router, continuous batching, cold starts, draining, scraped readings), ``policies`` the
controllers compared (configured, static, threshold), ``oracle`` the lower bound,
``workload`` load scaling and synthetic traces, ``report`` the rows.
"""

from autoscaler.replay.capacity import Capacity, capacity_from_mapping
from autoscaler.replay.report import ReplayRow, format_table, replay_rows

__all__ = ["Capacity", "ReplayRow", "capacity_from_mapping", "format_table", "replay_rows"]
