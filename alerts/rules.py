"""The alert rules: pure functions from plain readings to ``Finding``s.

Each rule takes the readings it needs (series as ``(time, value)`` pairs, spend figures,
prices, scaling events) and ``now``; it reads no store and no clock, and returns a list of
findings, empty when all is well::

    findings = idle_gpu_rule("chat-small", util, ready, 1.20, 1, now)

Shared conventions, chosen so that "no data" never looks like a problem or like health:

* a series is judged by its **trailing streak**: the run of newest points that all meet the
  condition. A gap longer than ``max_gap`` between two points breaks the streak, and a
  newest point older than ``max_gap`` (stale data) means no streak at all;
* a streak's length is measured from its first to its last point (the evidence in hand),
  not up to ``now``; so one point is never enough to fire a duration rule;
* thresholds are strict: utilization exactly at the floor is not idle, latency exactly at
  the target is not a breach; a streak exactly ``for`` long fires;
* points after ``now`` are ignored (``now`` is the moment judged, replays included).

The token-spike rule lives in ``alerts.spike``.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.model import Finding, signed_dollars_per_hour
from inferplane.vocabulary import METRICS

__all__ = [
    "ScalingEvent",
    "cost_reconciliation_rule",
    "idle_gpu_rule",
    "latency_slo_rule",
    "scaling_failure_rule",
    "scaling_notice_rule",
    "spend_rule",
]

Series = Sequence[tuple[datetime, float]]
_HOUR = timedelta(hours=1)


# --- streaks ------------------------------------------------------------------------------


def _streak(
    series: Series, now: datetime, holds: Callable[[float], bool], max_gap: timedelta
) -> list[tuple[datetime, float]]:
    """The newest run of points for which ``holds`` is true, unbroken by gaps; [] if none."""
    points = sorted(p for p in series if p[0] <= now)
    if not points or now - points[-1][0] > max_gap:
        return []  # stale: unknown is not a streak
    run: list[tuple[datetime, float]] = []
    for point in reversed(points):
        if not holds(point[1]) or (run and run[-1][0] - point[0] > max_gap):
            break
        run.append(point)
    return run[::-1]


def _span(run: list[tuple[datetime, float]]) -> timedelta:
    return run[-1][0] - run[0][0] if run else timedelta(0)


def _latest(series: Series, now: datetime, max_gap: timedelta) -> float | None:
    """The newest value at or before ``now`` if it is fresh, else None (no data)."""
    points = sorted(p for p in series if p[0] <= now)
    return points[-1][1] if points and now - points[-1][0] <= max_gap else None


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC)


# --- spend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Period:
    name: str
    start: Callable[[datetime], datetime]
    length: Callable[[datetime], timedelta]
    # Before this much of the period has passed, a projection is mostly noise (one dollar
    # at 00:01 projects to $1440), so only money already spent counts.
    min_elapsed: timedelta


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_length(now: datetime) -> timedelta:
    return timedelta(days=calendar.monthrange(now.year, now.month)[1])


_PERIODS = (
    _Period("daily", _day_start, lambda _now: timedelta(days=1), timedelta(hours=1)),
    _Period("monthly", lambda now: _day_start(now).replace(day=1), _month_length, timedelta(days=1)),
)


def spend_rule(
    endpoint: str,
    spent_today_usd: float,
    spent_month_usd: float,
    now: datetime,
    daily_budget_usd: float | None = None,
    monthly_budget_usd: float | None = None,
    burn_usd_per_hour: float | None = None,
) -> list[Finding]:
    """Fire when spend, projected to the end of the UTC day or month, exceeds its budget
    (a budget of None is not checked). Critical once the budget is already spent.

    With ``burn_usd_per_hour`` (the recent run rate) the projection is what is spent plus
    that rate for the rest of the period; without it, spend so far stretched linearly
    over the period. ``cost_per_hour_usd`` is the run rate, else today's average."""
    now = _utc(now)
    elapsed_today = (now - _day_start(now)) / _HOUR
    burn = burn_usd_per_hour
    if burn is None:
        burn = spent_today_usd / elapsed_today if elapsed_today > 0 else None
    checks = (
        (_PERIODS[0], spent_today_usd, daily_budget_usd),
        (_PERIODS[1], spent_month_usd, monthly_budget_usd),
    )
    findings = []
    for period, spent, budget in checks:
        if budget is None:
            continue
        projected = _project(period, spent, now, burn_usd_per_hour)
        if projected > budget:
            findings.append(_spend_finding(endpoint, period.name, spent, projected, budget, burn))
    return findings


def _project(period: _Period, spent: float, now: datetime, burn: float | None) -> float:
    elapsed = now - period.start(now)
    if burn is not None:
        return spent + burn * ((period.length(now) - elapsed) / _HOUR)
    return spent if elapsed < period.min_elapsed else spent * (period.length(now) / elapsed)


def cost_reconciliation_rule(
    endpoint: str,
    days: Mapping[Any, tuple[float | None, float | None]],
    max_difference: float = 0.1,
    min_usd: float = 1.0,
) -> list[Finding]:
    """Fire for each day whose estimated and billed cost (``days``: day -> (estimated,
    billed)) differ by more than ``max_difference`` of the larger. A day missing either
    figure is not judged (a bill lags a day; an endpoint may not be billed apart), nor
    one where both are under ``min_usd``."""
    findings = []
    for day, (estimated, billed) in sorted(days.items()):
        if estimated is None or billed is None or max(estimated, billed) < min_usd:
            continue
        share = abs(billed - estimated) / max(estimated, billed)
        if share <= max_difference:
            continue
        direction = "above" if billed > estimated else "below"
        findings.append(
            Finding(
                rule="cost_reconciliation",
                endpoint=endpoint,
                summary=f"{endpoint}: billed ${billed:,.2f} on {day} is {share:.0%} {direction} the "
                f"${estimated:,.2f} estimated (more than {max_difference:.0%}): check the price "
                "table and the cost sources",
                figures={"estimated_usd": estimated, "billed_usd": billed, "difference_share": share},
                labels={"day": str(day)},
            )
        )
    return findings


def _spend_finding(
    endpoint: str,
    period: str,
    spent: float,
    projected: float,
    budget: float,
    burn: float | None,
) -> Finding:
    rate = f", burning ${burn:,.2f}/h" if burn is not None else ""
    return Finding(
        rule="spend_budget",
        endpoint=endpoint,
        summary=f"{endpoint}: {period} spend ${spent:,.2f} projects to ${projected:,.2f}, "
        f"over the ${budget:,.2f} budget{rate}",
        severity="critical" if spent > budget else "warning",
        since=None,
        figures={"spent_usd": spent, "projected_usd": projected, "budget_usd": budget},
        cost_per_hour_usd=burn,
        labels={"period": period},
    )


# --- idle GPUs ----------------------------------------------------------------------------


def idle_gpu_rule(
    endpoint: str,
    utilization: Series,
    ready_replicas: Series,
    gpu_price_per_hour_usd: float,
    gpus_per_replica: int,
    now: datetime,
    floor: float = 0.1,
    for_hours: float = 2.0,
    max_gap: timedelta = timedelta(minutes=10),
) -> list[Finding]:
    """Fire when ready replicas have run below ``floor`` GPU utilization for ``for_hours``.

    Missing data is not idle: a gap over ``max_gap`` breaks the streak, stale or absent
    readings (utilization or replicas) give no finding, and zero ready replicas burn nothing.
    ``cost_per_hour_usd`` is replicas x GPUs per replica x the GPU price."""
    now = _utc(now)
    replicas = _latest(ready_replicas, now, max_gap)
    run = _streak(utilization, now, lambda u: u < floor, max_gap)
    hours = _span(run) / _HOUR
    if not run or not replicas or replicas <= 0 or hours < for_hours:
        return []
    mean = sum(v for _, v in run) / len(run)
    burn = replicas * gpus_per_replica * gpu_price_per_hour_usd
    return [
        Finding(
            rule="idle_gpu",
            endpoint=endpoint,
            summary=f"{endpoint}: {replicas:g} replicas idle below {floor:.0%} GPU (mean {mean:.0%}) "
            f"for {hours:.1f} h, burning ${burn:,.2f}/h",
            since=run[0][0],
            figures={"mean_utilization": mean, "replicas": replicas, "hours_idle": hours},
            cost_per_hour_usd=burn,
        )
    ]


# --- latency SLO --------------------------------------------------------------------------

_LATENCY_METRICS = frozenset(
    name for name, unit in METRICS.items() if name.endswith("_p95") and unit == "seconds"
)


def latency_slo_rule(
    endpoint: str,
    p95_series: Series,
    target_seconds: float,
    now: datetime,
    for_minutes: float = 5,
    metric: str = "request_latency_seconds_p95",
    max_gap: timedelta = timedelta(minutes=2),
) -> list[Finding]:
    """Fire when the p95 (of ``metric``: request latency or time to first token) has been
    above ``target_seconds`` for ``for_minutes``; a gap over ``max_gap`` breaks the streak."""
    if metric not in _LATENCY_METRICS:
        raise ValueError(f"metric {metric!r} is not a p95 latency; use one of {sorted(_LATENCY_METRICS)}")
    now = _utc(now)
    run = _streak(p95_series, now, lambda v: v > target_seconds, max_gap)
    minutes = _span(run) / timedelta(minutes=1)
    if not run or minutes < for_minutes:
        return []
    current = run[-1][1]
    return [
        Finding(
            rule="latency_slo",
            endpoint=endpoint,
            summary=f"{endpoint}: {metric} {current:.2f}s above the {target_seconds:.2f}s target "
            f"for {minutes:.1f} min",
            since=run[0][0],
            figures={"p95_seconds": current, "target_seconds": target_seconds, "minutes_breached": minutes},
            labels={"metric": metric},
        )
    ]


# --- scaling events -----------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingEvent:
    """One scaling decision as the engine recorded it (a store row or a dict converts)."""

    time: datetime
    from_replicas: int
    to_replicas: int
    reason: str = ""
    applied: bool = True
    error: str | None = None
    dry_run: bool = False

    @property
    def failed(self) -> bool:
        # Store rows carry no error text: a real (not dry-run) decision that was not
        # applied failed all the same.
        return bool(self.error) or (not self.applied and not self.dry_run)

    @classmethod
    def of(cls, event: Mapping[str, Any] | Any) -> ScalingEvent:
        """A ``ScalingEvent`` from a dict or any record with these attributes."""
        if isinstance(event, ScalingEvent):
            return event
        values = {k: _get(event, k) for k in ("time", "from_replicas", "to_replicas")}
        optional = {k: _get(event, k) for k in ("reason", "applied", "error", "dry_run")}
        return cls(**values, **{k: v for k, v in optional.items() if v is not None})


def _get(event: Mapping[str, Any] | Any, key: str) -> Any:
    return event.get(key) if isinstance(event, Mapping) else getattr(event, key, None)


def _events(events: Iterable[Mapping[str, Any] | Any]) -> list[ScalingEvent]:
    return sorted((ScalingEvent.of(e) for e in events), key=lambda e: e.time)


def scaling_failure_rule(
    endpoint: str,
    events: Iterable[Mapping[str, Any] | Any],
    price_per_replica_hour_usd: float | None = None,
) -> list[Finding]:
    """Fire while the newest scaling attempts failed; a later success resolves it.

    A failed scale-up is critical (users wait); a failed scale-down is a warning whose
    ``cost_per_hour_usd`` is the replicas it could not remove x the price."""
    ordered = _events(events)
    failures: list[ScalingEvent] = []
    for event in reversed(ordered):
        if not event.failed:
            break
        failures.append(event)
    if not failures:
        return []
    last = failures[0]
    stuck = max(last.from_replicas - last.to_replicas, 0)
    cost = stuck * price_per_replica_hour_usd if price_per_replica_hour_usd is not None and stuck else None
    money = f", ${cost:,.2f}/h not saved" if cost is not None else ""
    return [
        Finding(
            rule="scaling_failure",
            endpoint=endpoint,
            summary=f"{endpoint}: scaling {last.from_replicas}->{last.to_replicas} failed "
            f"{len(failures)}x in a row ({last.error or 'not applied'}){money}",
            severity="critical" if last.to_replicas > last.from_replicas else "warning",
            since=failures[-1].time,
            figures={
                "failures": len(failures),
                "from_replicas": last.from_replicas,
                "to_replicas": last.to_replicas,
            },
            cost_per_hour_usd=cost,
        )
    ]


def scaling_notice_rule(
    endpoint: str,
    events: Iterable[Mapping[str, Any] | Any],
    now: datetime,
    price_per_replica_hour_usd: float,
    window: timedelta = timedelta(minutes=15),
    scale_actions: bool = False,
    shutdowns: bool = True,
) -> list[Finding]:
    """Notices (events, never alerts: ``notice=True``), one per applied scaling event in
    ``(now - window, now]``: every replica change when ``scale_actions``, shutdowns to
    zero (off hours) when ``shutdowns``.

    ``figures["cost_change_per_hour_usd"]`` is replicas added x the price: positive when
    the change costs more, negative when it saves (the summary says ``+$2.40/h`` or
    ``−$2.40/h``); ``cost_per_hour_usd`` what the endpoint burns afterwards."""
    now = _utc(now)
    findings = []
    for event in _events(events):
        shutdown = event.to_replicas == 0 < event.from_replicas
        wanted = (scale_actions and event.to_replicas != event.from_replicas) or (shutdowns and shutdown)
        if wanted and event.applied and not event.failed and now - window < event.time <= now:
            findings.append(_notice(endpoint, event, shutdown, price_per_replica_hour_usd))
    return findings


def _notice(endpoint: str, event: ScalingEvent, shutdown: bool, price: float) -> Finding:
    change = (event.to_replicas - event.from_replicas) * price
    what = "shut down" if shutdown else "scaled"
    return Finding(
        rule="scaling_notice",
        endpoint=endpoint,
        summary=f"{endpoint}: {what} {event.from_replicas}->{event.to_replicas} replicas "
        f"({event.reason or 'no reason'}), {signed_dollars_per_hour(change)}",
        severity="info",
        since=event.time,
        figures={
            "from_replicas": event.from_replicas,
            "to_replicas": event.to_replicas,
            "cost_change_per_hour_usd": change,
        },
        cost_per_hour_usd=event.to_replicas * price,
        # One notice per event: two shutdowns are two notices.
        labels={"kind": "shutdown" if shutdown else "scale", "at": event.time.isoformat()},
        notice=True,
    )
