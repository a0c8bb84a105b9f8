"""The capacity-aware policy in the live engine's path: token rates written to a real
SQLite store per replica, read back summed by ``read_window``, the capacity file loaded by
``build_autoscaler``, and a target whose new replicas serve a cold start later. The engine
starts replicas a cold start ahead of a rising demand, and ahead of a step it saw the day
before at the same time, and records why."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autoscaler.build import build_autoscaler
from autoscaler.capacity import Capacity, load_capacity
from autoscaler.demand import token_work
from autoscaler.engine import AutoscalerEngine
from autoscaler.profile import render_capacity
from autoscaler.targets import ReplicaCount
from collector.samples import Sample
from inferplane.config import ConfigError, load_config, parse_config
from inferplane.store import Store, open_store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CAP = Capacity(
    prefill_tokens_per_s=10_000,
    decode_step_base_s=0.01,
    decode_step_per_sequence_s=0.001,
    max_concurrent_sequences=10,
    cold_start_s=60,
)
CONFIG = """
endpoints:
  - name: chat
    target: {{kind: kubernetes, namespace: ml, deployment: chat}}
    min_replicas: 1
    max_replicas: 40
    price: {{gpu_per_hour_usd: 2.0}}
    autoscaling: {{poll_interval_s: 15, cold_start_s: 60, capacity_file: {path}, max_step: 40,
                  scale_out_cooldown_s: 0}}
"""


@dataclass
class ColdStartTarget:
    """Replicas set now serve ``cold_start_s`` later (the clock is the test's)."""

    now: datetime
    ready_at: list[datetime] = field(default_factory=lambda: [T0 - timedelta(hours=1)])
    cold_start_s: float = 60.0

    def current_replicas(self) -> ReplicaCount:
        return ReplicaCount(len(self.ready_at), sum(1 for t in self.ready_at if t <= self.now))

    def scale_to(self, replicas: int) -> None:
        started = self.now + timedelta(seconds=self.cold_start_s)
        self.ready_at = self.ready_at[:replicas] + [started] * (replicas - len(self.ready_at))

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'inferplane.db'}")
    yield opened
    opened.close()


def capacity_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.capacity.yaml"
    path.write_text(render_capacity(CAP, ["test replica"]), encoding="utf-8")
    return path


def demand_engine(store: Store, tmp_path: Path, target: ColdStartTarget) -> AutoscalerEngine:
    """The engine on the capacity-aware config, scaling ``target``."""
    config = parse_config(CONFIG.format(path=capacity_file(tmp_path)), "inferplane.yaml")
    return AutoscalerEngine(
        config,
        store,
        {"chat": target},
        max_wait_s=0.01,
        capacities={"chat": load_capacity(capacity_file(tmp_path))},
    )


def write_rates(store: Store, at: datetime, prompt_total: float) -> None:
    # Two replicas report half each: the policy must sum them, not average them.
    store.write_samples(
        [
            Sample(at, "chat", metric, value, replica)
            for replica in ("r1", "r2")
            for metric, value in (
                ("prompt_tokens_per_second", prompt_total / 2),
                ("generated_tokens_per_second", 0.0),
                ("requests_waiting", 0.0),
                ("requests_running", 0.0),
                ("gpu_utilization", 1.0),
            )
        ]
    )


def test_the_engine_starts_replicas_a_cold_start_ahead_of_a_rising_demand(
    store: Store, tmp_path: Path
) -> None:
    target = ColdStartTarget(T0)
    engine = demand_engine(store, tmp_path, target)
    # 600 prompt tokens/s more every 15 s: 0.1 replica of demand per poll at 60 %.
    rate = lambda k: 600.0 * k  # noqa: E731
    counts, needs = [], []
    for k in range(40):
        now = T0 + timedelta(seconds=15 * k)
        target.now = now
        write_rates(store, now, rate(k))
        engine.poll("chat", now)
        counts.append(len(target.ready_at))
        needs.append(token_work(CAP, rate(k), 0, headroom=1.0, utilization=0.6))
    # Once the trend is established (half the 300 s forecast window), every count set
    # covers the demand 75 s (a cold start and a poll) later: the replicas are ready
    # when it arrives. Sized on the present alone, it would lag by 0.5 replica.
    for k in range(12, 34):
        assert counts[k] >= needs[k + 5] - 1e-9, (k, counts[k], needs[k + 5])
    events = store.read_scaling_events(T0, T0 + timedelta(hours=1), "chat")
    out = [e for e in events if e["to_replicas"] > e["from_replicas"]]
    assert out and all("capacity:" in e["reason"] and "$" in e["reason"] for e in out)
    late = out[-1]
    assert "trend" in late["reason"]
    assert late["inputs"]["demand_work_ahead"] > late["inputs"]["demand_work"]


def test_the_engine_starts_replicas_a_cold_start_before_yesterdays_step(store: Store, tmp_path: Path) -> None:
    # Two days of the same working-day start: nothing until 09:00, then 48,000 prompt
    # tokens/s (8 replicas at 60 %). The engine polls every 15 s from 08:50 to 09:10 on
    # both days, reading what the store holds; the second day it has the first to read.
    long_ago = datetime(2026, 11, 24, tzinfo=UTC)
    target = ColdStartTarget(T0, ready_at=[long_ago])
    engine = demand_engine(store, tmp_path, target)
    need = math.ceil(token_work(CAP, 48_000.0, 0, headroom=1.0, utilization=0.6))
    ready_at_nine = []
    for day in range(2):
        nine = datetime(2026, 11, 25, 9, 0, tzinfo=UTC) + timedelta(days=day)
        for k in range(-40, 41):
            now = nine + timedelta(seconds=15 * k)
            target.now = now
            write_rates(store, now, 48_000.0 if now >= nine else 0.0)
            engine.poll("chat", now)
            if now == nine:
                ready_at_nine.append(target.current_replicas().ready)
        target.now = nine + timedelta(hours=12)  # a quiet night: back to one replica
        target.ready_at = [long_ago]
    # The first day the step is seen only once it has come: one replica serves it. The
    # second, the replicas started a cold start before are ready when it comes.
    assert ready_at_nine == [1, need]
    events = store.read_scaling_events(T0 + timedelta(hours=12), T0 + timedelta(days=2), "chat")
    ahead = next(e for e in events if e["to_replicas"] > e["from_replicas"])
    assert "a day ago it rose" in ahead["reason"]
    assert ahead["inputs"]["demand_daily_rise"] > need - 2


def test_build_autoscaler_loads_the_capacity_file_and_names_a_bad_one(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'inferplane.db'}"
    local = CONFIG.replace(
        "{{kind: kubernetes, namespace: ml, deployment: chat}}", "{{kind: local, model: m}}"
    )
    good = tmp_path / "good.yaml"
    good.write_text(local.format(path=capacity_file(tmp_path)), encoding="utf-8")
    store = open_store(store_url)
    try:
        engine = build_autoscaler(load_config(good), store, source=str(good))
        try:
            assert engine._capacities["chat"] == CAP
        finally:
            engine.close()
        bad = tmp_path / "bad.yaml"
        bad.write_text(local.format(path=tmp_path / "missing.capacity.yaml"), encoding="utf-8")
        with pytest.raises(ConfigError) as raised:
            build_autoscaler(load_config(bad), store, source=str(bad))
    finally:
        store.close()
    message: Any = str(raised.value)
    assert "endpoints.chat.autoscaling.capacity_file" in message and "missing.capacity.yaml" in message
    assert str(bad) in message
