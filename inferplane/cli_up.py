"""``inferplane up`` and ``inferplane demo`` (stubs until built)."""

from __future__ import annotations

from inferplane.cli_common import fail

__all__ = ["demo", "up"]


def up() -> None:
    """Start the whole control plane on this machine (not built yet)."""
    fail("inferplane up is not built yet")


def demo() -> None:
    """Drive load from a trace (not built yet)."""
    fail("inferplane demo is not built yet")
