"""``inferplane bench dashboard``: render time of every dashboard page (stub until built)."""

from __future__ import annotations

from inferplane.cli_common import fail

__all__ = ["bench_dashboard"]


def bench_dashboard() -> None:
    """Measure the dashboard's page render times (not built yet)."""
    fail("the dashboard benchmark is not built yet")
