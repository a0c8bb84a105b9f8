"""``inferplane config reference``: the configuration reference, generated from the config model (stub)."""

from __future__ import annotations

from inferplane.cli_common import fail

__all__ = ["config_reference"]


def config_reference() -> None:
    """Print the configuration reference as Markdown (not built yet)."""
    fail("the configuration reference is not built yet")
