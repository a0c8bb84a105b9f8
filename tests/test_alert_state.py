"""Scenario tests: the noise-control state machine walked through time by a fake clock."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alerts.model import Finding, Notification
from alerts.state import AlertState, NoiseSettings, Silence, from_records, step, to_records

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = NoiseSettings(group_wait_s=30, group_interval_s=300, repeat_interval_s=14400)


def finding(
    rule: str, endpoint: str = "chat", cost: float | None = 2.4, severity: str = "warning"
) -> Finding:
    return Finding(
        rule=rule,
        endpoint=endpoint,
        summary=f"{endpoint}: {rule}",
        severity=severity,  # type: ignore[arg-type]
        figures={"value": 1.0},
        cost_per_hour_usd=cost,
    )


IDLE, SLOW, SPEND = finding("idle_gpu"), finding("latency_slo"), finding("spend_budget")


class Walk:
    """Holds the state and a fake clock; ``at`` steps the machine at T0 + seconds."""

    def __init__(self, silences: list[Silence] | None = None) -> None:
        self.state = AlertState()
        self.silences = silences or []

    def at(self, seconds: float, *findings: Finding) -> list[Notification]:
        self.state, notices = step(
            self.state, list(findings), T0 + timedelta(seconds=seconds), SETTINGS, self.silences
        )
        return notices

    def sent(self, steps: Sequence[tuple[float, list[Finding]]]) -> list[tuple[float, list[str]]]:
        """Step through many moments; return (time, alert rules with status) per notification."""
        out = []
        for seconds, findings in steps:
            for notice in self.at(seconds, *findings):
                out.append((seconds, [f"{a.finding.rule}:{a.status}" for a in notice.alerts]))
        return out


def test_group_wait_batches_alerts_arriving_together() -> None:
    walk = Walk()
    assert walk.at(0, IDLE) == []
    assert walk.at(10, IDLE, SLOW) == []  # still inside group_wait
    (notice,) = walk.at(30, IDLE, SLOW)
    assert notice.group == "chat" and notice.sent_at == T0 + timedelta(seconds=30)
    assert [a.finding.rule for a in notice.alerts] == ["idle_gpu", "latency_slo"]
    assert notice.alerts[0].starts_at == T0 and notice.alerts[0].finding.cost_per_hour_usd == 2.4


def test_one_notification_per_endpoint_group() -> None:
    walk = Walk()
    walk.at(0, IDLE, finding("idle_gpu", "embed"))
    notices = walk.at(30, IDLE, finding("idle_gpu", "embed"))
    assert [n.group for n in notices] == ["chat", "embed"]


def test_added_alert_waits_for_group_interval() -> None:
    walk = Walk()
    steps = [(0, [IDLE]), (30, [IDLE]), (60, [IDLE, SLOW]), (200, [IDLE, SLOW]), (330, [IDLE, SLOW])]
    assert walk.sent(steps) == [
        (30, ["idle_gpu:firing"]),
        (330, ["idle_gpu:firing", "latency_slo:firing"]),  # 300 s after the last notification
    ]


def test_repeat_interval_renotifies_and_nothing_before_it() -> None:
    walk = Walk()
    steps = [(s, [IDLE]) for s in (0, 30, 330, 3600, 14429)]
    assert walk.sent(steps) == [(30, ["idle_gpu:firing"])]
    assert walk.sent([(14430, [IDLE]), (14500, [IDLE])]) == [(14430, ["idle_gpu:firing"])]


def test_resolve_is_notified_exactly_once() -> None:
    walk = Walk()
    walk.sent([(0, [IDLE]), (30, [IDLE])])
    (notice,) = walk.at(400)
    (alert,) = notice.alerts
    assert alert.status == "resolved" and alert.ends_at == T0 + timedelta(seconds=400)
    assert alert.starts_at == T0 and notice.status == "resolved"
    assert walk.sent([(s, []) for s in (700, 1000, 20000)]) == []
    assert walk.state == AlertState()  # nothing left once told


def test_resolve_waits_for_group_interval() -> None:
    walk = Walk()
    steps = [(0, [IDLE]), (30, [IDLE]), (100, []), (200, []), (330, [])]
    assert walk.sent(steps) == [(30, ["idle_gpu:firing"]), (330, ["idle_gpu:resolved"])]


def test_alert_resolved_before_first_notification_is_never_told() -> None:
    walk = Walk()
    assert walk.sent([(0, [IDLE]), (10, []), (40, []), (400, [])]) == []


def test_flapping_within_group_interval_does_not_spam() -> None:
    walk = Walk()
    flaps = [(30 + 20 * i, [IDLE] if i % 2 else []) for i in range(1, 14)]  # 50..290 s
    sent = walk.sent([(0, [IDLE]), (30, [IDLE]), *flaps, (330, [IDLE]), (600, [IDLE])])
    # Told firing once; it fired again before its resolve went out, so that was taken back.
    assert sent == [(30, ["idle_gpu:firing"])]
    assert walk.state.firing[IDLE.fingerprint].starts_at == T0


def test_silence_suppresses_until_it_expires() -> None:
    silence = Silence({"rule": "idle_gpu", "endpoint": "chat"}, T0, T0 + timedelta(hours=1), "planned idle")
    walk = Walk([silence])
    steps = [(0, [IDLE, SLOW]), (30, [IDLE, SLOW]), (1800, [IDLE, SLOW]), (3599, [IDLE, SLOW])]
    assert walk.sent(steps) == [(30, ["latency_slo:firing"])]
    assert walk.sent([(3600, [IDLE, SLOW])]) == [(3600, ["idle_gpu:firing", "latency_slo:firing"])]


def test_silence_on_a_label_and_resolve_of_a_told_alert_still_goes_out() -> None:
    walk = Walk()
    walk.sent([(0, [IDLE]), (30, [IDLE])])
    walk.silences = [Silence({"severity": "warning"}, T0, T0 + timedelta(days=1))]
    assert walk.sent([(14430, [IDLE])]) == []  # the repeat is muted
    assert walk.sent([(15000, [])]) == [(15000, ["idle_gpu:resolved"])]


def test_info_notices_resolve_silently() -> None:
    walk = Walk()
    notice = finding("scaling_notice", severity="info")
    assert walk.sent([(0, [notice]), (30, [notice]), (400, []), (800, [])]) == [
        (30, ["scaling_notice:firing"])
    ]


def test_state_survives_a_json_round_trip() -> None:
    walk = Walk()
    walk.sent([(0, [IDLE, SPEND]), (30, [IDLE, SPEND]), (100, [IDLE])])  # SPEND's resolve is pending
    text = json.dumps(to_records(walk.state))
    restored = from_records(json.loads(text))
    assert restored == walk.state
    walk.state = restored  # a restart: the pending resolve still goes out, once
    assert walk.sent([(330, [IDLE]), (700, [IDLE])]) == [(330, ["idle_gpu:firing", "spend_budget:resolved"])]
