"""What ``inferplane autoscaler status`` shows for one endpoint (reads only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from autoscaler.engine import AutoscalerEngine
from autoscaler.targets import TargetError

__all__ = ["endpoint_status"]


def endpoint_status(engine: AutoscalerEngine, endpoint: str, now: datetime) -> dict[str, Any]:
    """Target counts (or the error reading them), pause, override, off-hours set by hand and
    the last decision."""
    controls = engine.controls(endpoint)
    row: dict[str, Any] = {"endpoint": endpoint, "replicas": None, "ready_replicas": None, "error": None}
    try:
        count = engine.target(endpoint).current_replicas()
        row.update(replicas=count.desired, ready_replicas=count.ready)
    except TargetError as error:
        row["error"] = f"target unreadable: {error}"
    override = controls.active_override(now)
    downtime = engine.downtime(endpoint)
    row["off_hours"] = downtime.text() if downtime is not None and downtime.is_open(now) else None
    row["paused"] = controls.paused
    row["override"] = (
        None
        if override is None
        else f"override {override.replicas} until {override.until:%Y-%m-%d %H:%M} UTC"
    )
    events = engine.store.read_scaling_events(now - timedelta(days=7), now + timedelta(seconds=1), endpoint)
    row["last_decision"] = events[-1] if events else None
    row["cold_start_s"] = controls.policy.cold_start_s
    return row
