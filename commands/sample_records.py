"""Writing the sample as the collector, the autoscaler and the alert engine would:
samples, estimated costs and scaling decisions from the control loop
(``commands.sample_loop``: the real estimator and the real policy), daily billed costs,
alert transitions and their deliveries (channel names only).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from alerts.model import fingerprint
from collector.costs import TokenPrice
from commands.sample_loop import Tick, run_endpoint, run_hosted
from commands.sample_sim import MINUTE, OLD_STEP, Profile, World
from inferplane.config.endpoints import Endpoint
from inferplane.store import Store
from inferplane.vocabulary import CostRow, Sample

__all__ = ["CHANNELS", "HOSTED", "HOSTED_PRICE", "write_endpoint", "write_hosted", "write_spend_alert"]

HOSTED = "gpt-4o-mini"  # the hosted, per-token priced endpoint the what-if page compares with
HOSTED_PRICE = TokenPrice(0.000165, 0.00066)
CHANNELS = ("oncall-mail", "oncall-hook")
_GAP_REASON = "source 'prom': every target failed: ConnectError: [Errno 111] Connection refused"
# Indexes into a reading's gauges (commands.sample_sim.METRICS).
_UTIL, _WAITING, _LATENCY = 0, 2, 3


def write_endpoint(
    store: Store,
    endpoint: Endpoint,
    profile: Profile,
    span: tuple[datetime, datetime, datetime],
    rng: random.Random,
    gap: tuple[datetime, datetime] | None = None,
) -> None:
    """Run one self-hosted endpoint over ``span`` (start, start of the one-minute readings,
    end) and write all it leaves in a store. ``gap``: a source outage, recorded as a gap,
    with no readings inside it."""
    start, raw_from, end = span
    policy = endpoint.autoscaling
    cold_start = timedelta(seconds=policy.cold_start_s if policy is not None else 60)
    world = World(profile, start, end, rng, cold_start)
    ticks = run_endpoint(store, endpoint, world, start, raw_from, end, gap)
    if gap is not None:
        store.record_gap("prom", profile.name, gap[0], gap[1], _GAP_REASON)
    store.write_samples(s for t in ticks for s in t.samples)
    if profile.billed:
        store.write_costs(_billed(store, profile.name, "Virtual Machines", end, rng))
    _write_alerts(store, profile, ticks)


def write_hosted(store: Store, span: tuple[datetime, datetime, datetime], rng: random.Random) -> None:
    """The hosted endpoint: tokens and latency as Azure Monitor reports them (rates and
    the tokens counted in each step), no replicas; its cost from the real estimator."""
    start, raw_from, end = span
    readings: list[list[Sample]] = []
    at = start
    while at < end:
        step = OLD_STEP if at < raw_from else MINUTE
        local = at.astimezone(ZoneInfo("Europe/Berlin"))
        bump = max(0.0, math.sin(math.pi * (local.hour + local.minute / 60 - 6) / 16))
        rps = 3.0 * (0.08 + bump) * (1.0 if local.weekday() < 5 else 0.4) * rng.uniform(0.8, 1.2)
        rates = {
            "request_latency_seconds_p95": 2.4 * rng.uniform(0.9, 1.2),
            "time_to_first_token_seconds_p95": 0.55 * rng.uniform(0.9, 1.3),
            "prompt_tokens_per_second": rps * 700,
            "generated_tokens_per_second": rps * 250,
            "requests_per_second": rps,
        }
        samples = [Sample(at, HOSTED, metric, round(value, 4)) for metric, value in rates.items()]
        seconds = step.total_seconds()
        for rate, count in (
            ("prompt_tokens", "prompt_tokens_per_second"),
            ("generated_tokens", "generated_tokens_per_second"),
            ("requests", "requests_per_second"),
        ):
            samples.append(Sample(at, HOSTED, rate, round(round(rates[count], 4) * seconds, 3)))
        readings.append(samples)
        at += step
    store.write_samples(s for samples in readings for s in samples)
    run_hosted(store, HOSTED, HOSTED_PRICE, readings, end)
    store.write_costs(_billed(store, HOSTED, "Foundry Models", end, rng))


def _billed(store: Store, endpoint: str, service: str, end: datetime, rng: random.Random) -> list[CostRow]:
    """Daily billed rows as Azure Cost Management gives them: up to yesterday, a few
    percent above the estimate (disks, network, the hours estimates cannot see)."""
    today = end.replace(hour=0, minute=0)
    daily: dict[datetime, float] = {}
    for cost in store.read_costs(today - timedelta(days=400), today, endpoint, "estimated"):
        day = cost.period_start.replace(hour=0, minute=0)
        daily[day] = daily.get(day, 0.0) + cost.amount
    return [
        CostRow(
            day,
            day + timedelta(days=1),
            endpoint,
            service,
            round(total * rng.uniform(1.03, 1.10) + 0.8, 2),
            "USD",
            "billed",
        )
        for day, total in sorted(daily.items())
    ]


def _streaks(ticks: list[Tick], bad: Callable[[Tick], bool]) -> Iterator[tuple[Tick, Tick, list[Tick]]]:
    """(first bad tick, first good tick after, the bad ticks) of every run of ``bad`` ticks."""
    run: list[Tick] = []
    for tick in ticks:
        if bad(tick):
            run.append(tick)
        elif run:
            yield run[0], tick, run
            run = []


def _write_alerts(store: Store, profile: Profile, ticks: list[Tick]) -> None:
    """Alerts as the engine records them, derived from the same ticks the samples hold."""
    name = profile.name

    def slow(t: Tick) -> bool:
        return bool(t.ready) and t.values[3] > profile.latency_target_s

    for first, after, run in _streaks(ticks, slow):
        since, fires = first.time, first.time + timedelta(minutes=5)
        if after.time > fires:
            summary = (
                f"{name}: request_latency_seconds_p95 {run[-1].values[3]:.2f}s above the "
                f"{profile.latency_target_s:.2f}s target for 5.0 min"
            )
            figures = {"p95_seconds": run[-1].values[3], "target_seconds": profile.latency_target_s}
            labels = {"metric": "request_latency_seconds_p95"}
            _alert(store, "latency_slo", name, labels, summary, figures, since, fires, after.time, None)

    def idle(t: Tick) -> bool:
        return bool(t.ready) and t.values[0] < 0.1

    for first, after, run in _streaks(ticks, idle):
        fires = first.time + timedelta(hours=2)
        if after.time > fires:
            burn = run[-1].ready * profile.replica_usd_per_hour
            mean = sum(t.values[0] for t in run) / len(run)
            summary = (
                f"{name}: {run[-1].ready:g} replicas idle below 10% GPU (mean {mean:.0%}) "
                f"for 2.0 h, burning ${burn:,.2f}/h"
            )
            figures = {"mean_utilization": round(mean, 4), "replicas": run[-1].ready, "hours_idle": 2.0}
            _alert(store, "idle_gpu", name, {}, summary, figures, first.time, fires, after.time, burn)

    def spiky(t: Tick) -> bool:
        return t.load > 2.5 * profile.peak_rps

    for first, after, run in _streaks(ticks, spiky):
        rate = run[0].load * 60 * sum(profile.tokens_per_request)
        summary = (
            f"{name}: {rate:,.0f} tokens/min, 4.0x the baseline ({rate / 4:,.0f}/min) "
            f"since {first.time:%Y-%m-%d %H:%M} UTC"
        )
        figures = {
            "tokens_per_minute": round(rate, 1),
            "baseline_per_minute": round(rate / 4, 1),
            "ratio": 4.0,
        }
        fires = first.time + timedelta(minutes=2)
        _alert(
            store,
            "token_spike",
            name,
            {"tokens": "both"},
            summary,
            figures,
            first.time,
            fires,
            after.time,
            None,
        )


def _alert(
    store: Store,
    rule: str,
    endpoint: str,
    labels: dict[str, str],
    summary: str,
    figures: dict[str, float],
    since: datetime,
    fires: datetime,
    resolves: datetime | None,
    cost_per_hour: float | None,
) -> None:
    """A firing (and, when ``resolves`` is given, resolved) alert and its notifications:
    each channel after the group wait; every third webhook delivery needs a retry."""
    key = fingerprint(rule, endpoint, labels)
    details = {
        "severity": "warning",
        "figures": figures,
        "cost_per_hour_usd": cost_per_hour,
        "since": since.isoformat(),
        "labels": labels,
        "starts_at": fires.isoformat(),
    }
    steps: tuple[tuple[Literal["firing", "resolved"], datetime | None], ...] = (
        ("firing", fires),
        ("resolved", resolves),
    )
    for status, at in steps:
        if at is None:
            continue
        store.write_alert_event(at, key, endpoint, rule, status, summary, details)
        sent = at + timedelta(seconds=30)
        store.write_delivery(sent, key, CHANNELS[0], 1, True)
        if int(at.timestamp() // 60) % 3 == 0:
            store.write_delivery(
                sent, key, CHANNELS[1], 1, False, f"{CHANNELS[1]}: HTTP 503 Service Unavailable"
            )
            store.write_delivery(sent + timedelta(seconds=1), key, CHANNELS[1], 2, True)
        else:
            store.write_delivery(sent, key, CHANNELS[1], 1, True)


def write_spend_alert(store: Store, endpoint: str, end: datetime) -> float:
    """A monthly spend alert on ``endpoint``, firing since a day ago; returns the budget it
    breaks (80% of the projection then), which the config's spend rule names."""
    fires = end - timedelta(days=1)
    month = fires.replace(day=1, hour=0, minute=0)
    spent = sum(
        c.amount for c in store.read_costs(month, fires, endpoint, "estimated") if c.period_end <= fires
    )
    length = (
        month.replace(month=month.month % 12 + 1, year=month.year + month.month // 12) - month
    ) / timedelta(hours=1)
    elapsed = max(1.0, (fires - month) / timedelta(hours=1))
    projected = spent * length / elapsed
    budget = max(10.0, round(projected * 0.8, -1))
    summary = (
        f"{endpoint}: month spend ${spent:,.2f} projects to ${projected:,.2f}, over the ${budget:,.2f} budget"
    )
    figures = {"spent_usd": round(spent, 2), "projected_usd": round(projected, 2), "budget_usd": budget}
    _alert(store, "spend_budget", endpoint, {"period": "month"}, summary, figures, fires, fires, None, None)
    return budget
