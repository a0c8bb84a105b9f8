"""``inferplane dashboard``: start the Streamlit dashboard over a store (stub until built)."""

from __future__ import annotations

from inferplane.cli_common import fail

__all__ = ["dashboard"]


def dashboard() -> None:
    """Start the dashboard (not built yet)."""
    fail("the dashboard is not built yet")
