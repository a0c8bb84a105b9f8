"""Live, the capacity-aware policy: the router with real replicas of the default model,
the capacity file measured from them by ``inferplane profile``, the collector's direct
scrape (token counters as rates) and the autoscaler on one scheduler. A load that rises
steadily makes the policy start a replica for the demand its trend foresees a cold start
ahead, before the present demand needs it."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.demo import LoadDriver
from inference.trace import TraceRequest
from tests.local_servers import wait_for
from tests.test_live_autoscaling import (  # noqa: F401 - the router fixture
    POLICY,
    Router,
    _events,
    control_loop,
    router,
    write_config,
)

pytestmark = pytest.mark.slow

FORECAST = """\
    autoscaling:
      poll_interval_s: 1
      scale_out_window_s: 3
      scale_in_window_s: 6
      stale_after_s: 5
      cold_start_s: 10
      capacity_file: {path}
      forecast_window_s: 20
      max_step: 3
      scale_out_cooldown_s: 0
      scale_down_stabilization_s: 120
"""


def ramp(seconds: float, start_rate: float, end_rate: float, prompt: int) -> list[TraceRequest]:
    """Requests whose rate rises linearly from ``start_rate`` to ``end_rate`` per second."""
    out, t = [], 0.0
    while t < seconds:
        out.append(TraceRequest(t, prompt, 4))
        rate = start_rate + (end_rate - start_rate) * t / seconds
        t += 1.0 / rate
    return out


def test_a_rising_demand_starts_a_replica_ahead_of_need(
    router: tuple[Router, tuple[int, int]],  # noqa: F811
    tmp_path: Path,
) -> None:
    live, ports = router
    capacity = tmp_path / "live.capacity.yaml"
    profiled = CliRunner().invoke(
        app,
        [
            *("profile", "--url", live.url, "--output", str(capacity), "--model", "smollm2-135m-instruct"),
            *("--prompt-tokens", "16", "--prompt-tokens", "300", "--repeats", "2", "--decode-tokens", "8"),
            *("--batch", "1", "--batch", "4", "--cold-start", "10"),
        ],
    )
    assert profiled.exit_code == 0, profiled.output
    store = tmp_path / "store.db"
    config = write_config(tmp_path / "inferplane.yaml", store, live.url, ports)
    config.write_text(config.read_text().replace(POLICY, FORECAST.format(path=capacity)), encoding="utf-8")
    with control_loop(config):
        load = LoadDriver(live.url, temperature=0)
        sender = threading.Thread(target=load.replay, args=(ramp(60, 0.5, 6.0, 300),))
        sender.start()

        def started_ahead() -> bool:
            return any(_ahead(e) for e in _events(store))

        try:
            wait_for(started_ahead, 120, "a scale-out for the demand the trend foresees")
        except AssertionError as timed_out:  # say what the policy did decide instead
            events = [e for e in _events(store) if e["from_replicas"] != e["to_replicas"]]
            decided = [f"{e['time']:%H:%M:%S} {e['reason']} {e['inputs']}" for e in events]
            raise AssertionError("\n".join([str(timed_out), *decided])) from None
        finally:  # a failed wait must not leave the driver's sockets to a later test
            sender.join()
            answered = load.join(300)
            load.close()
        assert answered, "answers still out after 300 s"
        assert load.stats.outcomes and all(o == 200 for o in load.stats.outcomes), load.stats.outcomes
    for event in _events(store):
        if event["from_replicas"] != event["to_replicas"]:
            print(f"{event['time']:%H:%M:%S} {event['reason']}")


def _ahead(event: dict[str, Any]) -> bool:
    """A scale-out to more replicas than the present demand needs, for the trend's."""
    inputs = event["inputs"]
    work, ahead = inputs.get("demand_work"), inputs.get("demand_work_ahead")
    return (
        event["applied"]
        and event["to_replicas"] > event["from_replicas"]
        and work is not None
        and ahead is not None
        and "trend" in event["reason"]
        and event["to_replicas"] > math.ceil(work - 1e-9)
    )
