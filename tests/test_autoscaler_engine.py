"""The autoscaler engine with a real SQLite store: readings in, decisions applied and
recorded, state kept across a restart, dry run, pause, override, and targets that
refuse, conflict, throttle or cannot be read. The target here is a scripted stand-in
for the outer boundary; the real targets have their own tests against local servers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.rules import scaling_failure_rule
from autoscaler.engine import AutoscalerEngine
from autoscaler.jobs import _poll
from autoscaler.targets import (
    ReplicaCount,
    TargetConflict,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
)
from collector.samples import Sample
from inferplane.config import parse_config
from inferplane.store import Store, StoreError, open_store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CONFIG = """
endpoints:
  - name: chat
    target: {kind: kubernetes, namespace: ml, deployment: chat}
    min_replicas: 1
    max_replicas: 6
    price: {gpu_per_hour_usd: 2.0}
    autoscaling: {poll_interval_s: 15, scale_out_cooldown_s: 120}
"""


@dataclass
class ScriptedTarget:
    replicas: int = 1
    errors: list[Exception] = field(default_factory=list)  # raised by the next calls, in order
    read_errors: list[Exception] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    closed: bool = False

    def current_replicas(self) -> ReplicaCount:
        if self.read_errors:
            raise self.read_errors.pop(0)
        return ReplicaCount(self.replicas, self.replicas)

    def scale_to(self, replicas: int) -> None:
        self.calls.append(replicas)
        if self.errors:
            raise self.errors.pop(0)
        self.replicas = replicas

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'inferplane.db'}")
    yield opened
    opened.close()


def engine_for(store: Store, target: ScriptedTarget, text: str = CONFIG, **kw: Any) -> AutoscalerEngine:
    return AutoscalerEngine(
        parse_config(text, "inferplane.yaml"), store, {"chat": target}, max_wait_s=0.01, **kw
    )


def load(store: Store, utilization: float, until: datetime, waiting: float = 0, span_s: int = 120) -> None:
    samples = []
    for seconds in range(span_s, -1, -15):
        at = until - timedelta(seconds=seconds)
        samples += [
            Sample(at, "chat", "gpu_utilization", utilization, "r1"),
            Sample(at, "chat", "requests_waiting", waiting, "r1"),
            Sample(at, "chat", "requests_running", 1, "r1"),
        ]
    store.write_samples(samples)


def events(store: Store) -> list[dict[str, Any]]:
    return store.read_scaling_events(T0 - timedelta(days=1), T0 + timedelta(days=1), "chat")


def test_hot_gpu_scales_out_and_the_decision_is_recorded_with_its_inputs(store: Store) -> None:
    target = ScriptedTarget(replicas=2)
    load(store, 0.95, T0)
    result = engine_for(store, target).poll("chat", T0)
    assert target.calls == [4] and result.applied and target.replicas == 4
    [event] = events(store)
    assert (event["from_replicas"], event["to_replicas"], event["applied"], event["dry_run"]) == (
        2,
        4,
        True,
        False,
    )
    assert "GPU 95% over 60 s > 80%" in event["reason"] and "($4.00/h -> $8.00/h)" in event["reason"]
    assert event["inputs"]["utilization_out"] == 0.95 and event["inputs"]["cost_after_usd_per_hour"] == 8.0


@pytest.mark.parametrize(
    ("policy", "expected", "reason"),
    [
        pytest.param("", 6, "4 -> 6: GPU 99% over 60 s > 80%", id="busy-fraction-alone"),
        pytest.param(
            ", target_concurrency: 8",
            2,  # at most max_step (2) per action
            "4 -> 2: concurrency: 1 requests in flight on 4 ready replicas, target 8",
            id="target-concurrency",
        ),
    ],
)
def test_a_saturated_gpu_defers_to_the_requests_in_flight_read_from_the_store(
    store: Store, policy: str, expected: int, reason: str
) -> None:
    # Continuous batching: one decoding sequence keeps the GPU ~100% busy. From the same
    # stored readings, the busy fraction alone scales out; target_concurrency scales in.
    load(store, 0.99, T0)
    target = ScriptedTarget(replicas=4)
    text = CONFIG.replace("scale_out_cooldown_s: 120}", f"scale_out_cooldown_s: 120{policy}}}")
    assert engine_for(store, target, text).poll("chat", T0).applied
    assert target.calls == [expected]
    assert reason in events(store)[-1]["reason"]


def test_a_restart_remembers_the_cooldown(store: Store) -> None:
    target = ScriptedTarget(replicas=2)
    load(store, 0.95, T0)
    engine_for(store, target).poll("chat", T0)
    load(store, 0.95, T0 + timedelta(seconds=60))
    restarted = engine_for(store, target)  # a new process: state comes from the store
    result = restarted.poll("chat", T0 + timedelta(seconds=60))
    assert result.to_replicas == 4 and "scale-out cooldown: 60 s of 120 s" in result.reason
    assert target.calls == [4]


def test_every_hold_is_recorded_too(store: Store) -> None:
    load(store, 0.5, T0)
    engine_for(store, ScriptedTarget(replicas=2)).poll("chat", T0)
    [event] = events(store)
    assert event["from_replicas"] == event["to_replicas"] == 2 and event["applied"]
    assert event["reason"].startswith("hold: GPU 50% within thresholds")


def test_dry_run_records_and_never_scales(store: Store) -> None:
    target = ScriptedTarget(replicas=2)
    load(store, 0.95, T0)
    result = engine_for(store, target, dry_run=True).poll("chat", T0)
    assert target.calls == [] and result.dry_run and not result.applied
    assert events(store)[0]["reason"].startswith("dry run: 2 -> 4")
    # A dry run does not start a cooldown that never happened.
    assert engine_for(store, target).controls("chat").policy.last_scale_out is None


def test_pause_resume_and_an_override_that_expires(store: Store) -> None:
    target = ScriptedTarget(replicas=2)
    engine = engine_for(store, target)
    load(store, 0.95, T0)
    engine.set_paused("chat", True, T0)
    assert engine.poll("chat", T0).reason.startswith("paused: 2 -> 4") and target.calls == []
    engine.set_paused("chat", False, T0)
    result = engine.override("chat", 5, T0 + timedelta(minutes=30), "load test", T0)
    assert (
        target.replicas == 5
        and "manual override to 5 until 2026-11-25 12:30 UTC (load test)" in result.reason
    )
    load(store, 0.5, T0 + timedelta(minutes=10))
    assert engine.poll("chat", T0 + timedelta(minutes=10)).to_replicas == 5  # held by the override
    load(store, 0.5, T0 + timedelta(minutes=31))
    after = engine.poll("chat", T0 + timedelta(minutes=31))
    assert "manual override to 5 expired" in after.reason
    assert engine.controls("chat").override is None
    with pytest.raises(ValueError, match=r"outside 0\.\.6"):
        engine.override("chat", 7, T0 + timedelta(hours=1), "", T0)


def test_conflicts_and_throttling_are_retried_then_applied(store: Store) -> None:
    target = ScriptedTarget(
        replicas=2, errors=[TargetConflict("409"), TargetThrottled("429", retry_after_s=30)]
    )
    load(store, 0.95, T0)
    result = engine_for(store, target).poll("chat", T0)
    assert target.calls == [4, 4, 4] and result.applied and target.replicas == 4


@pytest.mark.parametrize(
    "errors",
    [[TargetRefused("403 forbidden: patch deployments/scale")], [TargetUnavailable("timed out")] * 3],
    ids=["refused-is-not-retried", "unavailable-three-times"],
)
def test_a_failed_action_is_recorded_alerted_and_retried_on_the_next_poll(
    store: Store, errors: list[Exception]
) -> None:
    target = ScriptedTarget(replicas=2, errors=list(errors))
    engine = engine_for(store, target)
    load(store, 0.95, T0)
    result = engine.poll("chat", T0)
    assert not result.applied and target.replicas == 2 and len(target.calls) == len(errors)
    [event] = events(store)
    assert not event["applied"] and "FAILED: " in event["reason"] and str(errors[0]) in event["reason"]
    [finding] = scaling_failure_rule("chat", events(store))
    assert finding.severity == "critical"
    # No cooldown was started by an action that did not happen: the next poll retries.
    load(store, 0.95, T0 + timedelta(seconds=15))
    assert engine.poll("chat", T0 + timedelta(seconds=15)).applied and target.replicas == 4
    assert scaling_failure_rule("chat", events(store)) == []


def test_an_unreadable_target_holds_and_is_recorded(store: Store) -> None:
    target = ScriptedTarget(read_errors=[TargetRefused("404 deployment ml/chat not found")])
    result = engine_for(store, target).poll("chat", T0)
    assert not result.applied and "could not be read" in result.reason and target.calls == []
    assert "404 deployment ml/chat not found" in events(store)[0]["reason"]


def test_a_store_failure_skips_one_poll_and_the_job_survives(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(store, ScriptedTarget())
    with store._engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE control_state"))
    with pytest.raises(StoreError):
        engine.poll("chat", T0)
    with caplog.at_level(logging.ERROR):
        _poll(engine, "chat", lambda: T0)  # what the scheduler runs: logs, does not raise
    assert "poll skipped, the store failed" in caplog.text


def test_close_closes_the_targets(store: Store, tmp_path: Path) -> None:
    target = ScriptedTarget()
    own_store = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    engine_for(own_store, target).close()
    assert target.closed
