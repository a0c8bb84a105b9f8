"""What every ``inferplane`` command shares: how a command fails, how it reads a duration."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import NoReturn

import typer

__all__ = ["fail", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1.5h``, ``1d`` or a sum such as ``1h30m``, positive; ValueError
    naming the format otherwise."""
    spec = text.strip().lower()
    parts = _DURATION_PART.findall(spec)
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in parts)
    if not parts or "".join(n + u for n, u in parts) != spec or seconds <= 0:
        raise ValueError(
            f"duration {text!r} does not parse; expected a positive number with s, m, h or d "
            "(e.g. 30m, 2h) or a sum such as 1h30m"
        )
    return timedelta(seconds=seconds)


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with status 2 (bad input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
