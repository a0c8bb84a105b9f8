"""``inferplane replay``: replay a request trace against simulated endpoints, one row per policy."""

from __future__ import annotations

import typer

__all__ = ["replay"]


def replay() -> None:
    """Replay a request trace against the autoscaling policies (not built yet)."""
    typer.echo("not built yet", err=True)
    raise typer.Exit(code=1)
