"""Off-hours set by hand (``inferplane autoscaler off-hours``, and the demo's act): the
one-off downtime in the core, the engine applying it from the store (an idle endpoint goes
to zero inside it, a waiting request still wakes it), the ``local`` time zone of the
built-in schedule, and the demo's act against a scripted stage."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.samples import Sample
from commands.demo_off_hours import OffHoursShown, show_off_hours
from inferplane.config import example_config_text, parse_config
from inferplane.config.autoscaling import AutoscalingPolicy, machine_zone, parse_window
from inferplane.schedule import OneOffDowntime, floor_at, with_downtime
from inferplane.store import Store
from tests.test_autoscaler_engine import ScriptedTarget, engine_for, events, store  # noqa: F401

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
IDLE_CONFIG = """
endpoints:
  - name: chat
    target: {kind: kubernetes, namespace: ml, deployment: chat}
    min_replicas: 1
    max_replicas: 3
    price: {gpu_per_hour_usd: 2.0}
    autoscaling: {poll_interval_s: 15, scale_in_window_s: 60, scale_out_window_s: 30,
                  scale_down_stabilization_s: 0, scale_in_cooldown_s: 0}
"""


def idle(opened: Store, until: datetime, waiting: float = 0) -> None:
    """Five minutes of an idle replica (nothing running), every 5 s, up to ``until``."""
    samples = []
    for seconds in range(300, -1, -5):
        at = until - timedelta(seconds=seconds)
        readings = {"gpu_utilization": 0.0, "requests_waiting": waiting, "requests_running": 0.0}
        samples += [Sample(at, "chat", metric, value, "r1") for metric, value in readings.items()]
    opened.write_samples(samples)


def test_a_one_off_downtime_is_a_downtime_window_while_open_only() -> None:
    downtime = OneOffDowntime(T0, T0 + timedelta(minutes=10), "inferplane demo")
    uptime = AutoscalingPolicy.model_validate({"schedules": [{"when": "Daily 00:00-24:00 UTC"}]})
    inside = floor_at(with_downtime(uptime, downtime, T0), 1, T0)
    assert (inside.floor, inside.off_hours) == (0, True)
    assert "off-hours 12:00:00-12:10:00 UTC (inferplane demo)" in inside.reason
    after = T0 + timedelta(minutes=10)
    assert with_downtime(uptime, downtime, after) is uptime
    assert with_downtime(uptime, downtime, T0 - timedelta(seconds=1)) is uptime
    assert OneOffDowntime.from_json(downtime.to_json()) == downtime
    assert OneOffDowntime.from_json(None) is None
    with pytest.raises(ValueError, match="must end after it starts"):
        OneOffDowntime(T0, T0)


def test_the_engine_takes_an_idle_endpoint_to_zero_inside_the_downtime_and_a_request_wakes_it(
    store: Store,  # noqa: F811 - the engine tests' store fixture
) -> None:
    target = ScriptedTarget(replicas=1)
    engine = engine_for(store, target, IDLE_CONFIG)
    idle(store, T0)
    assert engine.poll("chat", T0).to_replicas == 1  # the floor of 1 holds an idle endpoint
    engine.set_downtime("chat", OneOffDowntime(T0, T0 + timedelta(minutes=10), "test"), T0)
    at = T0 + timedelta(seconds=15)
    idle(store, at)
    result = engine.poll("chat", at)
    assert (result.from_replicas, result.to_replicas, result.applied) == (1, 0, True)
    assert "off-hours 12:00:00-12:10:00 UTC (test)" in result.reason
    later = at + timedelta(seconds=15)
    idle(store, later, waiting=3)
    woken = engine.poll("chat", later)
    assert (woken.from_replicas, woken.to_replicas) == (0, 1)
    assert "wake on demand" in woken.reason
    assert engine.downtime("chat") == OneOffDowntime(T0, T0 + timedelta(minutes=10), "test")
    assert [e["to_replicas"] for e in events(store)][-2:] == [0, 1]


@pytest.mark.parametrize(
    ("environ", "link", "zone"),
    [
        pytest.param({"TZ": "Europe/Berlin"}, None, "Europe/Berlin", id="TZ names a zone"),
        pytest.param({"TZ": ":America/New_York"}, None, "America/New_York", id="TZ with a colon"),
        pytest.param({"TZ": "nowhere"}, "Asia/Tokyo", "Asia/Tokyo", id="bad TZ: the link"),
        pytest.param({}, "Europe/Paris", "Europe/Paris", id="the link"),
        pytest.param({}, None, "UTC", id="neither: UTC"),
    ],
)
def test_the_machine_zone(tmp_path: Path, environ: dict[str, str], link: str | None, zone: str) -> None:
    localtime = tmp_path / "localtime"
    if link is not None:
        target = tmp_path / "zoneinfo" / link
        target.parent.mkdir(parents=True)
        target.write_bytes(b"TZif")
        localtime.symlink_to(target)
    assert machine_zone(environ, localtime) == zone


def test_local_in_a_window_is_the_machine_zone_resolved_at_load() -> None:
    spec = parse_window("Mon-Fri 08:00-20:00 local")
    assert spec.zone == machine_zone()
    assert spec.text == f"Mon-Fri 08:00-20:00 {machine_zone()}"


def test_the_built_in_config_scales_to_zero_off_hours_and_wakes_on_demand() -> None:
    (endpoint,) = parse_config(example_config_text()).endpoints
    policy = endpoint.autoscaling
    assert policy is not None and policy.wake_on_demand and policy.off_hours_replicas == 0
    (window,) = policy.schedules
    assert (window.kind, window.when.zone) == ("uptime", machine_zone())
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    from zoneinfo import ZoneInfo

    local_noon = monday_noon.replace(tzinfo=ZoneInfo(machine_zone()))
    assert floor_at(policy, endpoint.min_replicas, local_noon).floor == 1
    assert floor_at(policy, endpoint.min_replicas, local_noon + timedelta(hours=10)).off_hours


class ScriptedStage:
    """The act's stack: replicas fall by one a look once off-hours began."""

    def __init__(self, replicas: int) -> None:
        self.count = replicas
        self.log: list[str] = []

    def begin(self, longest_s: float) -> None:
        self.log.append("begin")

    def end(self) -> None:
        self.log.append("end")

    def replicas(self) -> int:
        self.count = max(0, self.count - 1)
        return self.count


def test_the_act_waits_for_zero_sends_one_request_and_ends_the_off_hours() -> None:
    stage, said = ScriptedStage(3), list[str]()
    shown = show_off_hours(stage, lambda: True, said.append, threading.Event(), 60, poll_s=0.01)
    assert shown.to_zero_s is not None and shown.answered and shown.wake_s is not None
    assert stage.log == ["begin", "end"]
    assert "at zero replicas after" in said[-1]
    assert "answered after" in shown.line()


def test_the_act_gives_up_at_its_timeout_and_still_ends_the_off_hours() -> None:
    stage = ScriptedStage(10**9)
    shown = show_off_hours(stage, lambda: True, lambda _: None, threading.Event(), 0.05, poll_s=0.01)
    assert shown == OffHoursShown(None)
    assert stage.log == ["begin", "end"]
    assert "did not reach zero" in shown.line()
