"""``inferplane costs``: what each endpoint cost today and this month, and the tokens it
served today, read from the store the way the dashboard's overview reads it (the same
figures, so the two never disagree)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from commands.cli_common import ConfigOption, StoreOption, fail, open_config_and_store, resolve_config

__all__ = ["costs"]

_TOKENS = ["prompt_tokens", "generated_tokens"]


def costs(
    config: ConfigOption = None,
    store: StoreOption = None,
    at: Annotated[
        str | None, typer.Option(help="The moment to report as of (ISO 8601, UTC if no zone); default now.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of the table.")] = False,
) -> None:
    """Spend today, month to date and projected (estimated and billed) per endpoint, and
    today's counted tokens and cost per 1K tokens. Days and months are UTC."""
    from inferplane.store import StoreError

    now = _moment(at)
    opened = open_config_and_store(resolve_config(config), store, existing=True)[1]
    try:
        report = _report(opened, now)
    except StoreError as error:
        fail(str(error))
    finally:
        opened.close()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print(report)


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r}: expected an ISO 8601 time such as 2026-12-06T14:30:00Z")
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not _EARLIEST <= moment <= _LATEST:  # a month's and a day's sums reach around it
        fail(f"--at {text!r}: expected a time between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}")
    return moment


def _report(store: Any, now: datetime) -> dict[str, Any]:
    from dashboard import figures

    # The dashboard's overview reads and frames the costs the same way (one store read).
    frame = figures.cost_frame(store.read_cost_table(figures.month_start(now), now))
    endpoints = sorted(set(frame["endpoint"]))
    since = store.first_sample_time(endpoints, figures.run_rate_start(now)) if endpoints else None
    # Each endpoint's run rate over its own readings (the dashboard's overview does the same).
    started = {
        name: at
        for name, since in figures.late_starters(frame, now).items()
        if (at := store.first_sample_time([name], since)) is not None
    }
    spend = figures.spend_summary(frame, now, started)
    tokens = _tokens_today(store, endpoints, now)
    out: dict[str, Any] = {
        "as_of": now.isoformat(),
        "projection": figures.run_rate_label(now, since),
        "endpoints": {},
    }
    for name in [*endpoints, figures.TOTAL]:
        figures_of = {k: _number(v) for k, v in spend.loc[name].items()} if name in spend.index else {}
        served = (
            sum(tokens.get(name, {}).values())
            if name != figures.TOTAL
            else sum(sum(t.values()) for t in tokens.values())
        )
        today = figures_of.get("today_estimated") or 0.0
        figures_of["tokens_today"] = served
        figures_of["usd_per_1k_tokens_today"] = today / served * 1000 if served else None
        out["endpoints"][name] = figures_of
    return out


def _tokens_today(store: Any, endpoints: list[str], now: datetime) -> dict[str, dict[str, float]]:
    from dashboard import figures

    if not endpoints:
        return {}
    served: dict[str, dict[str, float]] = {}
    for endpoint, metric, _, _, total, _ in store.read_bucket_rows(
        endpoints, _TOKENS, figures.day_start(now), now, "1h"
    ):
        served.setdefault(endpoint, {}).setdefault(metric, 0.0)
        served[endpoint][metric] += float(total)
    return served


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _print(report: dict[str, Any]) -> None:
    def money(value: float | None) -> str:
        return "-" if value is None else f"${value:,.2f}"

    typer.echo(f"as of {report['as_of']} (UTC days); projected {report['projection']}")
    columns = ("today", 10), ("month", 10), ("projected", 11), ("billed mo.", 10), ("tokens today", 13)
    typer.echo(f"{'endpoint':<24} " + " ".join(f"{n:>{w}}" for n, w in columns) + f" {'$/1K tok':>9}")
    for name, row in report["endpoints"].items():
        per_1k = row.get("usd_per_1k_tokens_today")
        typer.echo(
            f"{name:<24} {money(row.get('today_estimated')):>10} {money(row.get('month_estimated')):>10} "
            f"{money(row.get('projected_estimated')):>11} {money(row.get('month_billed')):>10} "
            f"{row['tokens_today']:>13,.0f} {'-' if per_1k is None else f'${per_1k:.4f}':>9}"
        )
