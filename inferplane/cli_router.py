"""``inferplane router``: the router in front of an endpoint's local replicas."""

from __future__ import annotations

import typer

__all__ = ["router"]


def router() -> None:
    """Run the router and its local replicas (not built yet)."""
    typer.echo("not built yet", err=True)
    raise typer.Exit(code=1)
