"""Which rule runs on which endpoint, with which readings: the configured rules as pure
calls, from ``Readings`` (what the store holds for an endpoint) to ``Finding``s.

::

    findings, problems = evaluate_rules(config, {"chat": Readings(...)}, now)

No I/O and no clock: ``alerts.readings`` fills the readings, ``alerts.engine`` does the
rest. A rule that raises on odd readings becomes a line in ``problems``; the other rules
and endpoints are still evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alerts.model import Finding
from alerts.rules import (
    ScalingEvent,
    cost_reconciliation_rule,
    idle_gpu_rule,
    latency_slo_rule,
    scaling_failure_rule,
    scaling_notice_rule,
    spend_rule,
)
from alerts.spike import SpikeSettings, detect_spike
from inferplane.config import Endpoint, GpuHourPrice, InferplaneConfig, TokenPrice
from inferplane.config import alerts as rules_config

__all__ = ["Readings", "evaluate_rules", "history_needed", "spike_settings", "watched_endpoints"]

Series = Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class Readings:
    """What the rules read for one endpoint at one moment. Token series are tokens per
    minute, one point per complete minute; ``ready_replicas`` is summed over replicas;
    ``latency_p95`` maps a p95 metric name to its series. None or empty means no data."""

    prompt_tokens_per_minute: Series = ()
    generated_tokens_per_minute: Series = ()
    requests_per_minute: Series = ()
    gpu_utilization: Series = ()
    ready_replicas: Series = ()
    latency_p95: Mapping[str, Series] = field(default_factory=dict)
    spent_today_usd: float | None = None
    spent_month_usd: float | None = None
    spend_rate_usd_per_hour: float | None = None  # estimated, over the recent hours
    daily_costs: Mapping[Any, tuple[float | None, float | None]] = field(default_factory=dict)
    scaling_events: Sequence[ScalingEvent] = ()

    def tokens_per_minute(self, which: str) -> list[tuple[datetime, float]]:
        """Prompt, generated or both (summed per minute; a minute either side knows counts)."""
        if which == "prompt":
            return list(self.prompt_tokens_per_minute)
        if which == "generated":
            return list(self.generated_tokens_per_minute)
        totals: dict[datetime, float] = {}
        for at, tokens in (*self.prompt_tokens_per_minute, *self.generated_tokens_per_minute):
            totals[at] = totals.get(at, 0.0) + tokens
        return sorted(totals.items())


def spike_settings(rule: rules_config.TokenSpikeRule) -> SpikeSettings:
    """The spike detector's settings for a configured token-spike rule."""
    return SpikeSettings(
        factor=rule.factor,
        margin=rule.margin,
        size_factor=rule.size_factor,
        floor_per_minute=rule.floor_per_minute,
        for_minutes=rule.for_minutes,
        baseline_minutes=rule.baseline_minutes,
        weekly=rule.weekly,
        rate_minutes=rule.rate_minutes,
        mad_k=rule.mad_k,
        min_baseline_minutes=30,
    )


def watched_endpoints(rule: Any, config: InferplaneConfig) -> list[Endpoint]:
    """The endpoints a rule applies to: those it lists, else every endpoint."""
    if rule.endpoints is None:
        return list(config.endpoints)
    return [config.endpoint(name) for name in rule.endpoints]


def evaluate_rules(
    config: InferplaneConfig, readings: Mapping[str, Readings], now: datetime
) -> tuple[list[Finding], list[str]]:
    """Every configured rule on every endpoint it watches: (findings, problems)."""
    findings: list[Finding] = []
    problems: list[str] = []
    for rule in config.alerts.rules if config.alerts else []:
        for endpoint in watched_endpoints(rule, config):
            try:
                findings += _RULES[rule.kind](rule, endpoint, readings.get(endpoint.name, Readings()), now)
            except (ValueError, ArithmeticError, TypeError) as error:
                problems.append(f"rule {rule.kind} on endpoint {endpoint.name}: {error}")
    return findings, problems


def _replica_price(endpoint: Endpoint) -> float | None:
    price = endpoint.price
    return price.replica_hour_usd if isinstance(price, GpuHourPrice) else None


def _latest(series: Series) -> float | None:
    return max(series)[1] if series else None


def _token_spike(
    rule: rules_config.TokenSpikeRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    # Minutes are labelled by their start, and the newest complete one started a minute
    # before now: judge the series as of then.
    series = readings.tokens_per_minute(rule.tokens)
    found = detect_spike(
        series, now - timedelta(minutes=1), spike_settings(rule), requests=readings.requests_per_minute
    )
    if found is None:
        return []
    cost = _spike_cost(rule.tokens, found.rate_per_minute, endpoint, readings)
    ratio = "no baseline" if math.isinf(found.ratio) else f"{found.ratio:.1f}x the baseline"
    money = f", ${cost:,.2f}/h at this rate" if cost is not None else ""
    what = "tokens" if rule.tokens == "both" else f"{rule.tokens} tokens"
    figures = {
        "tokens_per_minute": round(found.rate_per_minute, 1),
        "baseline_per_minute": round(found.baseline_per_minute, 1),
    }
    if math.isfinite(found.ratio):
        figures["ratio"] = round(found.ratio, 2)
    size = ""
    if found.tokens_per_request is not None and found.baseline_tokens_per_request:
        figures["tokens_per_request"] = round(found.tokens_per_request, 1)
        figures["baseline_tokens_per_request"] = round(found.baseline_tokens_per_request, 1)
        usual = found.baseline_tokens_per_request
        size = f", {found.tokens_per_request:,.0f} per request (usually {usual:,.0f})"
    return [
        Finding(
            rule="token_spike",
            endpoint=endpoint.name,
            summary=f"{endpoint.name}: {found.rate_per_minute:,.0f} {what}/min, {ratio} "
            f"({found.baseline_per_minute:,.0f}/min){size} since {found.since:%Y-%m-%d %H:%M} UTC{money}",
            since=found.since,
            figures=figures,
            cost_per_hour_usd=cost,
            labels={"tokens": rule.tokens},
        )
    ]


def _spike_cost(which: str, rate: float, endpoint: Endpoint, readings: Readings) -> float | None:
    """$ per hour at ``rate`` tokens a minute: the token price, or the replicas' GPU burn."""
    price = endpoint.price
    if isinstance(price, TokenPrice):
        prompt = _latest(readings.prompt_tokens_per_minute) or 0.0
        generated = _latest(readings.generated_tokens_per_minute) or 0.0
        share = {"prompt": 1.0, "generated": 0.0}.get(which)
        if share is None:  # both: split as the newest minute split them
            share = prompt / (prompt + generated) if prompt + generated > 0 else 0.5
        per_1k = share * price.input_per_1k_usd + (1 - share) * price.output_per_1k_usd
        return rate * 60 / 1000 * per_1k
    replicas = _latest(readings.ready_replicas)
    per_replica = _replica_price(endpoint)
    return replicas * per_replica if replicas is not None and per_replica is not None else None


def _spend(
    rule: rules_config.SpendRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    if readings.spent_today_usd is None or readings.spent_month_usd is None:
        return []  # no cost data: nothing to project, and no reason to assume zero
    return spend_rule(
        endpoint.name,
        readings.spent_today_usd,
        readings.spent_month_usd,
        now,
        daily_budget_usd=rule.daily_budget_usd,
        monthly_budget_usd=rule.monthly_budget_usd,
        burn_usd_per_hour=readings.spend_rate_usd_per_hour,
    )


def _cost_reconciliation(
    rule: rules_config.CostReconciliationRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    first = now.date() - timedelta(days=rule.days)
    days = {d: v for d, v in readings.daily_costs.items() if first <= d < now.date()}  # whole days
    return cost_reconciliation_rule(endpoint.name, days, rule.max_difference, rule.min_usd)


def _idle_gpu(
    rule: rules_config.IdleGpuRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    price = endpoint.price
    if not isinstance(price, GpuHourPrice):
        return []  # a token-priced endpoint has no GPU of its own to idle
    return idle_gpu_rule(
        endpoint.name,
        readings.gpu_utilization,
        readings.ready_replicas,
        price.gpu_per_hour_usd,
        price.gpus_per_replica,
        now,
        floor=rule.floor,
        for_hours=rule.for_hours,
    )


def _latency_slo(
    rule: rules_config.LatencySloRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    ttft = rule.metric.startswith("time_to_first_token")
    target = endpoint.ttft_target_seconds if ttft else endpoint.latency_target_seconds
    if target is None:
        return []  # the endpoint sets no target for this metric
    series = readings.latency_p95.get(rule.metric, ())
    return latency_slo_rule(
        endpoint.name, series, target, now, for_minutes=rule.for_minutes, metric=rule.metric
    )


def _scaling(
    rule: rules_config.ScalingRule, endpoint: Endpoint, readings: Readings, now: datetime
) -> list[Finding]:
    price = _replica_price(endpoint)
    findings = scaling_failure_rule(endpoint.name, readings.scaling_events, price)
    if rule.notify_actions:
        findings += scaling_notice_rule(
            endpoint.name, readings.scaling_events, now, price or 0.0, scale_actions=True, shutdowns=True
        )
    return findings


_RULES: dict[str, Callable[[Any, Endpoint, Readings, datetime], list[Finding]]] = {
    "token_spike": _token_spike,
    "spend": _spend,
    "cost_reconciliation": _cost_reconciliation,
    "idle_gpu": _idle_gpu,
    "latency_slo": _latency_slo,
    "scaling": _scaling,
}


def history_needed(config: InferplaneConfig) -> dict[str, timedelta]:
    """How far back each kind of reading must go for the configured rules (for the reader)."""
    needed = {"tokens": timedelta(0), "gpu": timedelta(0), "latency": timedelta(0)}
    for rule in config.alerts.rules if config.alerts else []:
        if isinstance(rule, rules_config.TokenSpikeRule):
            minutes = rule.baseline_minutes + rule.rate_minutes + rule.for_minutes + 30
            span = timedelta(days=7, minutes=minutes) if rule.weekly else timedelta(minutes=2 * minutes)
            needed["tokens"] = max(needed["tokens"], span)
        elif isinstance(rule, rules_config.IdleGpuRule):
            needed["gpu"] = max(needed["gpu"], timedelta(hours=rule.for_hours, minutes=15))
        elif isinstance(rule, rules_config.LatencySloRule):
            needed["latency"] = max(needed["latency"], timedelta(minutes=rule.for_minutes + 5))
    return needed
