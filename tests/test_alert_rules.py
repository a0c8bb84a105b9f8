"""The alert rules, table-driven: each row names the edge it pins down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import (
    cost_reconciliation_rule,
    idle_gpu_rule,
    latency_slo_rule,
    scaling_failure_rule,
    scaling_notice_rule,
    spend_rule,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # noon on the 10th of a 31-day month


def every(minutes: float, count: int, value: float, end: datetime = NOW) -> list[tuple[datetime, float]]:
    """``count`` points ``minutes`` apart, the last at ``end``."""
    return [(end - timedelta(minutes=minutes * i), value) for i in reversed(range(count))]


# --- spend --------------------------------------------------------------------------------

SPEND = {
    # name: (today, month, now, daily budget, monthly budget, expected periods)
    "budgets None": (100.0, 1000.0, NOW, None, None, []),
    "on track": (40.0, 900.0, NOW, 100.0, 3000.0, []),
    "daily projection exactly at budget": (50.0, 0.0, NOW, 100.0, None, []),
    "daily projection just over": (50.01, 0.0, NOW, 100.0, None, ["daily"]),
    "monthly projection over": (0.0, 1000.0, NOW, None, 3000.0, ["monthly"]),
    "both over": (60.0, 1000.0, NOW, 100.0, 3000.0, ["daily", "monthly"]),
    "early in the day: no projection yet": (1.0, 0.0, NOW.replace(hour=0, minute=1), 100.0, None, []),
    "early in the day, already over": (101.0, 0.0, NOW.replace(hour=0, minute=1), 100.0, None, ["daily"]),
}


@pytest.mark.parametrize("row", SPEND.values(), ids=SPEND.keys())
def test_spend_rule(row: tuple) -> None:
    today, month, now, daily, monthly, expected = row
    findings = spend_rule("chat", today, month, now, daily_budget_usd=daily, monthly_budget_usd=monthly)
    assert [f.labels["period"] for f in findings] == expected


def test_spend_finding_figures_and_burn_rate() -> None:
    (finding,) = spend_rule("chat", 60.0, 0.0, NOW, daily_budget_usd=100.0)
    assert finding.figures == {"spent_usd": 60.0, "projected_usd": 120.0, "budget_usd": 100.0}
    assert finding.cost_per_hour_usd == pytest.approx(5.0)  # $60 over 12 hours
    assert finding.severity == "warning"
    assert "$120.00" in finding.summary and "$5.00/h" in finding.summary


def test_spend_already_over_is_critical() -> None:
    (finding,) = spend_rule("chat", 150.0, 0.0, NOW, daily_budget_usd=100.0)
    assert finding.severity == "critical"


def test_spend_rejects_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        spend_rule("chat", 1.0, 1.0, NOW.replace(tzinfo=None), daily_budget_usd=1.0)


# --- idle GPUs ----------------------------------------------------------------------------

READY = every(5, 40, 2.0)  # two ready replicas for the last ~3 h
IDLE = {
    # name: (utilization, ready replicas, expected hours idle or None)
    "empty series": ([], READY, None),
    "one point": ([(NOW, 0.0)], READY, None),
    "idle 3 h": (every(5, 37, 0.05), READY, 3.0),
    "idle exactly 2 h": (every(5, 25, 0.05), READY, 2.0),
    "idle just under 2 h": (every(5, 24, 0.05), READY, None),
    "exactly at the floor is not idle": (every(5, 37, 0.10), READY, None),
    "busy": (every(5, 37, 0.7), READY, None),
    "busy point ends the streak": ([*every(5, 37, 0.05)[:-1], (NOW, 0.5)], READY, None),
    "gap breaks the streak": (
        every(5, 13, 0.05, NOW - timedelta(hours=2)) + every(5, 13, 0.05),
        READY,
        None,
    ),
    "stale data is not idle": (every(5, 37, 0.05, NOW - timedelta(minutes=30)), READY, None),
    "no replica readings": (every(5, 37, 0.05), [], None),
    "zero replicas burn nothing": (every(5, 37, 0.05), every(5, 40, 0.0), None),
}


@pytest.mark.parametrize("row", IDLE.values(), ids=IDLE.keys())
def test_idle_gpu_rule(row: tuple) -> None:
    utilization, ready, hours = row
    findings = idle_gpu_rule("chat-small", utilization, ready, 1.20, 1, NOW)
    assert [f.figures["hours_idle"] for f in findings] == ([] if hours is None else [pytest.approx(hours)])


def test_idle_finding_cost_and_summary() -> None:
    (finding,) = idle_gpu_rule("chat-small", every(5, 37, 0.05), READY, 1.20, 1, NOW)
    assert finding.cost_per_hour_usd == pytest.approx(2.40)
    assert finding.figures["replicas"] == 2 and finding.figures["mean_utilization"] == pytest.approx(0.05)
    assert finding.since == NOW - timedelta(hours=3)
    assert finding.summary == (
        "chat-small: 2 replicas idle below 10% GPU (mean 5%) for 3.0 h, burning $2.40/h"
    )


# --- latency SLO --------------------------------------------------------------------------

LATENCY = {
    # name: (p95 series, expected minutes breached or None)
    "empty series": ([], None),
    "one point": ([(NOW, 9.0)], None),
    "breached 5 min": (every(1, 6, 2.5), 5.0),
    "breached just under 5 min": (every(1, 5, 2.5), None),
    "exactly at target is no breach": (every(1, 10, 2.0), None),
    "just over target": (every(1, 10, 2.001), 9.0),
    "missing points break the streak": (
        every(1, 4, 2.5, NOW - timedelta(minutes=6)) + every(1, 3, 2.5),
        None,
    ),
    "recovered now": ([*every(1, 10, 2.5)[:-1], (NOW, 1.0)], None),
    "future points ignored": ([*every(1, 6, 2.5), (NOW + timedelta(minutes=1), 0.5)], 5.0),
}


@pytest.mark.parametrize("row", LATENCY.values(), ids=LATENCY.keys())
def test_latency_slo_rule(row: tuple) -> None:
    series, minutes = row
    findings = latency_slo_rule("chat", series, 2.0, NOW)
    assert [f.figures["minutes_breached"] for f in findings] == ([] if minutes is None else [minutes])


def test_latency_ttft_metric_is_labelled_and_others_refused() -> None:
    (finding,) = latency_slo_rule(
        "chat", every(1, 6, 0.9), 0.5, NOW, metric="time_to_first_token_seconds_p95"
    )
    assert finding.labels == {"metric": "time_to_first_token_seconds_p95"}
    assert finding.figures == {"p95_seconds": 0.9, "target_seconds": 0.5, "minutes_breached": 5.0}
    with pytest.raises(ValueError, match="not a p95 latency"):
        latency_slo_rule("chat", [], 0.5, NOW, metric="gpu_utilization")


# --- scaling ------------------------------------------------------------------------------


@dataclass
class Row:
    """A record-like event, as a store row reads."""

    time: datetime
    from_replicas: int
    to_replicas: int
    reason: str
    applied: bool
    dry_run: bool = False


def event(minutes_ago: float, frm: int, to: int, applied: bool = True, error: str | None = None) -> dict:
    return {
        "time": NOW - timedelta(minutes=minutes_ago),
        "from_replicas": frm,
        "to_replicas": to,
        "reason": "load",
        "applied": applied,
        "error": error,
    }


FAILURES = {
    # name: (events, expected failures in a row or None)
    "no events": ([], None),
    "all applied": ([event(5, 1, 2)], None),
    "newest failed": ([event(10, 1, 2), event(5, 2, 1, False, "403 forbidden")], 1),
    "two failures in a row": ([event(10, 2, 1, False, "timeout"), event(5, 2, 1, False, "timeout")], 2),
    "failure then success": ([event(10, 2, 1, False, "timeout"), event(5, 2, 1)], None),
    "dry run is no failure": ([{**event(5, 2, 1, False), "dry_run": True}], None),
    "store row not applied": ([Row(NOW, 2, 1, "idle", applied=False)], 1),
}


@pytest.mark.parametrize("row", FAILURES.values(), ids=FAILURES.keys())
def test_scaling_failure_rule(row: tuple) -> None:
    events, failures = row
    findings = scaling_failure_rule("chat", events, price_per_replica_hour_usd=1.5)
    assert [f.figures["failures"] for f in findings] == ([] if failures is None else [failures])


def test_failed_scale_down_costs_and_failed_scale_up_is_critical() -> None:
    (down,) = scaling_failure_rule("chat", [event(5, 3, 1, False, "quota")], 1.5)
    assert down.cost_per_hour_usd == pytest.approx(3.0) and down.severity == "warning"
    assert "quota" in down.summary and "$3.00/h" in down.summary
    (up,) = scaling_failure_rule("chat", [event(5, 1, 3, False, "quota")], 1.5)
    assert up.cost_per_hour_usd is None and up.severity == "critical"


NOTICES = {
    # name: (events, scale_actions, shutdowns, expected changes of $/h: + costs more)
    "nothing asked": ([event(5, 2, 0)], False, False, []),
    "shutdown": ([event(5, 2, 0)], False, True, [-3.0]),
    "scale actions off": ([event(5, 3, 2)], False, True, []),
    "scale down and up": ([event(8, 3, 2), event(4, 2, 3)], True, False, [-1.5, 1.5]),
    "outside the window": ([event(20, 2, 0)], True, True, []),
    "failed shutdown is no notice": ([event(5, 2, 0, False, "boom")], True, True, []),
    "unchanged replicas": ([event(5, 2, 2)], True, True, []),
}


@pytest.mark.parametrize("row", NOTICES.values(), ids=NOTICES.keys())
def test_scaling_notice_rule(row: tuple) -> None:
    events, scale_actions, shutdowns, changes = row
    findings = scaling_notice_rule("chat", events, NOW, 1.5, scale_actions=scale_actions, shutdowns=shutdowns)
    assert [f.figures["cost_change_per_hour_usd"] for f in findings] == changes
    assert all(f.severity == "info" and f.notice for f in findings)
    assert len({f.fingerprint for f in findings}) == len(findings)


def test_spend_projects_at_the_run_rate_when_given() -> None:
    """$10 spent by noon, but burning $20/h now: the day projects to $10 + 12 h x $20 =
    $250 (over a $200 budget), where the day's average would say $20."""
    (finding,) = spend_rule("chat", 10.0, 10.0, NOW, daily_budget_usd=200.0, burn_usd_per_hour=20.0)
    assert finding.figures["projected_usd"] == pytest.approx(250.0)
    assert finding.cost_per_hour_usd == 20.0
    assert spend_rule("chat", 10.0, 10.0, NOW, daily_budget_usd=200.0) == []


@pytest.mark.parametrize(
    ("estimated", "billed", "fires"),
    [
        pytest.param(100.0, 105.0, False, id="within-10pct"),
        pytest.param(100.0, 125.0, True, id="billed-25pct-above"),
        pytest.param(100.0, 80.0, True, id="billed-20pct-below"),
        pytest.param(0.5, 0.9, False, id="both-under-min"),
        pytest.param(100.0, None, False, id="no-bill-yet"),
        pytest.param(None, 40.0, False, id="no-estimate"),
    ],
)
def test_cost_reconciliation(estimated: float | None, billed: float | None, fires: bool) -> None:
    day = NOW.date() - timedelta(days=1)
    findings = cost_reconciliation_rule("chat", {day: (estimated, billed)}, max_difference=0.1, min_usd=1.0)
    assert bool(findings) is fires
    if fires:
        assert findings[0].labels == {"day": str(day)}
        assert findings[0].rule == "cost_reconciliation"


def test_a_notice_signs_its_change_of_spend() -> None:
    # A scale-out that costs $2.40/h more says so with a plus; a scale-in that saves
    # $2.40/h with a minus sign (U+2212), never "saving $-2.40/h".
    out, back = scaling_notice_rule(
        "chat", [event(8, 1, 2), event(4, 2, 1)], NOW, 2.4, scale_actions=True, shutdowns=True
    )
    assert out.summary.endswith(", +$2.40/h") and "saving" not in out.summary
    assert back.summary.endswith(", \u2212$2.40/h")
    assert out.notice and back.notice
