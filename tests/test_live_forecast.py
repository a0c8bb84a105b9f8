"""Live, the capacity-aware policy: the router with real replicas of the default model,
the capacity file measured from them by ``inferplane profile``, the collector's direct
scrape (token counters as rates) and the autoscaler on one scheduler. A load that rises
steadily makes the policy start a replica for the demand its trend foresees a cold start
ahead, before the present demand needs it.

The load is sized from the measured capacity, not fixed: on a loaded machine the profile
measures less, and a fixed ramp would then need the router's three replicas at once by
present demand alone, leaving the trend nothing to start ahead."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from autoscaler.capacity import load_capacity
from autoscaler.demand import token_work
from commands.cli import app
from commands.demo import LoadDriver
from inference.trace import TraceRequest
from inferplane.config.autoscaling import AutoscalingPolicy
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


PROMPT_TOKENS, GENERATED_TOKENS = 300, 4
# In replicas the policy needs (the router has three): a steady lead-in that fills the
# trend's window, then a ramp that crosses one and two replicas slowly enough for the
# trend to see each crossing a cold start early, and ends below the ceiling of three.
LEAD_IN_S, RAMP_S, START_NEED, END_NEED = 20.0, 60.0, 0.4, 2.8


def ramp(seconds: float, start_rate: float, end_rate: float, at: float = 0.0) -> list[TraceRequest]:
    """Requests from ``at`` whose rate rises linearly from ``start_rate`` to ``end_rate``
    per second."""
    out, t = [], 0.0
    while t < seconds:
        out.append(TraceRequest(at + t, PROMPT_TOKENS, GENERATED_TOKENS))
        rate = start_rate + (end_rate - start_rate) * t / seconds
        t += 1.0 / rate
    return out


def rising_load(capacity_file: Path) -> list[TraceRequest]:
    """The lead-in and the ramp, in requests per second for the measured capacity."""
    need_per_request_per_s = token_work(
        load_capacity(capacity_file),
        PROMPT_TOKENS,
        GENERATED_TOKENS,
        headroom=1.0,
        utilization=AutoscalingPolicy().target_utilization,
    )
    start, end = START_NEED / need_per_request_per_s, END_NEED / need_per_request_per_s
    return ramp(LEAD_IN_S, start, start) + ramp(RAMP_S, start, end, at=LEAD_IN_S)


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
    # Scraped every 3 s rather than every second: a second's reading holds one or two
    # 300-token prompts, a step of 0.7 replica, and that noise in the newest reading would
    # cross a replica before the trend through the window does.
    text = config.read_text().replace(POLICY, FORECAST.format(path=capacity))
    config.write_text(text.replace("    interval_s: 1\n", "    interval_s: 3\n"), encoding="utf-8")
    with control_loop(config):
        # The trend needs readings from the start of the load: wait for the first poll.
        wait_for(lambda: _events(store), 60, "the autoscaler's first decision")
        load = LoadDriver(live.url, temperature=0)
        sender = threading.Thread(target=load.replay, args=(rising_load(capacity),))
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
