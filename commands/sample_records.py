"""Writing the simulated ticks as the collector, the autoscaler and the alert engine
would: samples, hourly estimated and daily billed costs, scaling decisions, alert
transitions and their deliveries (channel names only).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.model import fingerprint
from collector.costs import GpuPrice, TokenPrice, estimate_costs
from commands.sample_sim import METRICS, OLD_STEP, Profile, Tick, simulate
from inferplane.vocabulary import CostRow, Sample

__all__ = ["CHANNELS", "HOSTED", "HOSTED_PRICE", "write_endpoint", "write_hosted", "write_spend_alert"]

HOSTED = "gpt-4o-mini"  # the hosted, per-token priced endpoint the what-if page compares with
HOSTED_PRICE = TokenPrice(0.000165, 0.00066)
CHANNELS = ("oncall-mail", "oncall-hook")


def write_endpoint(
    store: Any,
    profile: Profile,
    times: list[tuple[datetime, timedelta]],
    end: datetime,
    rng: random.Random,
    gap: tuple[datetime, datetime] | None = None,
) -> None:
    """Simulate one self-hosted endpoint and write all it leaves in a store. ``gap``: a
    source outage, recorded as a gap, with no readings (so no estimate) inside it."""
    ticks = simulate(profile, times, rng)
    if gap is not None:
        ticks = [t for t in ticks if not gap[0] <= t.time < gap[1]]
        reason = "source 'prom': every target failed: ConnectError: [Errno 111] Connection refused"
        store.record_gap("prom", profile.name, gap[0], gap[1], reason)
    store.write_samples(_samples(profile.name, ticks, with_replicas=True))
    price = GpuPrice(profile.gpu_per_hour_usd, profile.gpus_per_replica)
    store.write_costs(_estimates(profile.name, price, ticks, end))
    if profile.billed:
        store.write_costs(_billed(store, profile.name, "Virtual Machines", end, rng))
    _write_scaling(store, profile, ticks)
    _write_alerts(store, profile, ticks)


def write_hosted(
    store: Any, times: list[tuple[datetime, timedelta]], end: datetime, rng: random.Random
) -> None:
    """The hosted endpoint: tokens and latency as Azure Monitor reports them, no replicas."""
    ticks = []
    for at, step in times:
        local = at.astimezone(ZoneInfo("Europe/Berlin"))
        bump = max(0.0, math.sin(math.pi * (local.hour + local.minute / 60 - 6) / 16))
        rps = 3.0 * (0.08 + bump) * (1.0 if local.weekday() < 5 else 0.4) * rng.uniform(0.8, 1.2)
        values = (
            None,
            None,
            None,
            2.4 * rng.uniform(0.9, 1.2),
            0.55 * rng.uniform(0.9, 1.3),
            rps * 700,
            rps * 250,
            rps,
        )
        ticks.append(Tick(at, step, rps, 0, 0, tuple(round(v, 4) for v in values if v is not None), None))
    samples = [
        Sample(t.time, HOSTED, metric, value)
        for t in ticks
        for metric, value in zip(METRICS[3:], t.values, strict=True)
    ]
    samples += [s for t in ticks for s in _counts(HOSTED, t, dict(zip(METRICS[3:], t.values, strict=True)))]
    store.write_samples(samples)
    store.write_costs(_estimates(HOSTED, HOSTED_PRICE, ticks, end, samples))
    store.write_costs(_billed(store, HOSTED, "Foundry Models", end, rng))


def _samples(endpoint: str, ticks: list[Tick], with_replicas: bool) -> Iterator[Sample]:
    """Endpoint-level samples: replica counts always, the rest while a replica is ready
    (a scaled-to-zero endpoint has nothing to scrape)."""
    for tick in ticks:
        if with_replicas:
            yield Sample(tick.time, endpoint, "replicas", float(tick.replicas))
            yield Sample(tick.time, endpoint, "ready_replicas", float(tick.ready))
            seconds = tick.step.total_seconds()
            yield Sample(tick.time, endpoint, "ready_replica_seconds", float(tick.ready) * seconds)
        if tick.ready:
            yield from (Sample(tick.time, endpoint, m, v) for m, v in zip(METRICS, tick.values, strict=True))
            yield from _counts(endpoint, tick, dict(zip(METRICS, tick.values, strict=True)))


def _counts(endpoint: str, tick: Tick, rates: dict[str, float]) -> Iterator[Sample]:
    """The increases a collector keeps beside the rates: what served in the tick's step."""
    seconds = tick.step.total_seconds()
    for rate, count in (
        ("prompt_tokens_per_second", "prompt_tokens"),
        ("generated_tokens_per_second", "generated_tokens"),
        ("requests_per_second", "requests"),
    ):
        if rate in rates:
            yield Sample(tick.time, endpoint, count, round(rates[rate] * seconds, 3))


def _estimates(
    endpoint: str,
    price: GpuPrice | TokenPrice,
    ticks: list[Tick],
    end: datetime,
    samples: list[Sample] | None = None,
) -> list[CostRow]:
    """Hourly estimated costs by the collector's ``estimate_costs``, each reading held for
    its own step (the collector holds 15 s scrapes up to two minutes)."""
    if samples is None:
        samples = [Sample(t.time, endpoint, "ready_replicas", float(t.ready)) for t in ticks]
        samples += [
            Sample(t.time, endpoint, "ready_replica_seconds", t.ready * t.step.total_seconds()) for t in ticks
        ]
    hours: dict[datetime, list[Sample]] = {}
    for sample in samples:
        hours.setdefault(sample.time.replace(minute=0), []).append(sample)
    rows: list[CostRow] = []
    for hour, readings in sorted(hours.items()):
        previous = hours.get(hour - timedelta(hours=1), [])  # a reading before may hold into it
        held = [s for s in previous if s.time >= hour - OLD_STEP] + readings
        rows += estimate_costs(endpoint, price, held, hour, min(hour + timedelta(hours=1), end), OLD_STEP)
    return rows


def _billed(store: Any, endpoint: str, service: str, end: datetime, rng: random.Random) -> list[CostRow]:
    """Daily billed rows as Azure Cost Management gives them: up to yesterday, a few
    percent above the estimate (disks, network, the hours estimates cannot see)."""
    today = end.replace(hour=0, minute=0)
    rows = []
    for cost in store.read_costs(today - timedelta(days=400), today, endpoint, "estimated"):
        day = cost.period_start.replace(hour=0, minute=0)
        rows.append((day, cost.amount))
    daily: dict[datetime, float] = {}
    for day, amount in rows:
        daily[day] = daily.get(day, 0.0) + amount
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


def _write_scaling(store: Any, profile: Profile, ticks: list[Tick]) -> None:
    """Every action, and a hold an hour over the last 14 days (the engine records one
    every poll; retention deletes holds older than that)."""
    usd = profile.replica_usd_per_hour
    holds_from = ticks[-1].time - timedelta(days=14)
    for tick in ticks:
        if tick.change is not None:
            before, reason = tick.change
            line = f"{before} -> {tick.replicas}: {reason}"
        elif tick.time.minute == 0 and tick.replicas and tick.time >= holds_from:
            before, line = tick.replicas, f"hold: GPU {tick.values[0]:.0%} within thresholds"
        else:
            continue
        inputs = {
            "replicas": before,
            "ready_replicas": tick.ready,
            "utilization_out": tick.values[0] if tick.ready else None,
            "requests_waiting": tick.values[2] if tick.ready else None,
            "requests_running": tick.values[1] if tick.ready else None,
            "floor": 1 if profile.is_open(tick.time) else 0,
            "ceiling": profile.max_replicas,
            "off_hours": not profile.is_open(tick.time),
            "cost_before_usd_per_hour": before * usd,
            "cost_after_usd_per_hour": tick.replicas * usd,
        }
        reason = f"{line} (${before * usd:,.2f}/h -> ${tick.replicas * usd:,.2f}/h)"
        store.write_scaling_event(
            tick.time, profile.name, before, tick.replicas, reason, applied=True, dry_run=False, inputs=inputs
        )


def _streaks(ticks: list[Tick], bad: Callable[[Tick], bool]) -> Iterator[tuple[Tick, Tick, list[Tick]]]:
    """(first bad tick, first good tick after, the bad ticks) of every run of ``bad`` ticks."""
    run: list[Tick] = []
    for tick in ticks:
        if bad(tick):
            run.append(tick)
        elif run:
            yield run[0], tick, run
            run = []


def _write_alerts(store: Any, profile: Profile, ticks: list[Tick]) -> None:
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
    store: Any,
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
    for status, at in (("firing", fires), ("resolved", resolves)):
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


def write_spend_alert(store: Any, endpoint: str, end: datetime) -> float:
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
