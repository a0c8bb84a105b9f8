"""The replay simulator: capacity checks, one replica's timing, routing, draining, the
policies and the oracle on small synthetic traces, and the shipped example's goals."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.replay.capacity import Capacity, capacity_from_mapping
from autoscaler.replay.policies import ConfiguredPolicy, drive, static
from autoscaler.replay.report import ReplayRow, replay_rows, row_from
from autoscaler.replay.simulator import Routing, Simulation
from autoscaler.replay.workload import as_requests, scale_load, synthetic_trace
from inference.trace import TraceRequest, load_trace, scale_trace
from inferplane.config import load_config, parse_config
from inferplane.config.endpoints import Endpoint
from tests.test_trace import as_mooncake

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 23, 10, tzinfo=UTC)
# Round figures so that expected times are easy to read: a 500-token prompt takes 0.5 s.
CAP = Capacity(
    prefill_tokens_per_s=1000,
    decode_step_base_s=0.01,
    decode_step_per_sequence_s=0.001,
    max_concurrent_sequences=4,
    cold_start_s=30,
)


def endpoint(max_replicas: int = 6, ttft: float = 1.0, **policy: float) -> Endpoint:
    text = yaml.safe_dump(
        {
            "endpoints": [
                {
                    "name": "sim",
                    "target": {"kind": "local", "model": "m"},
                    "min_replicas": 1,
                    "max_replicas": max_replicas,
                    "price": {"gpu_per_hour_usd": 2.0},
                    "ttft_target_seconds": ttft,
                    "autoscaling": {"cold_start_s": 30, **policy},
                }
            ]
        }
    )
    return parse_config(text).endpoints[0]


def steady(
    rate: float, seconds: float, prompt: int = 400, generated: int = 5, at: float = 0.0
) -> list[TraceRequest]:
    return [TraceRequest(at + k / rate, prompt, generated) for k in range(int(rate * seconds))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"prefill_tokens_per_s": 1}, "missing key", id="missing"),
        pytest.param({**vars(CAP), "gpu": "a100"}, "unknown key", id="unknown"),
        pytest.param({**vars(CAP), "prefill_tokens_per_s": 0}, "prefill_tokens_per_s", id="zero-rate"),
        pytest.param({**vars(CAP), "cold_start_s": -1}, "cold_start_s", id="negative"),
        pytest.param({**vars(CAP), "max_concurrent_sequences": 2.5}, "whole number", id="fractional-slots"),
        pytest.param({**vars(CAP), "decode_step_base_s": math.nan}, "decode_step_base_s", id="nan"),
        pytest.param([1, 2], "mapping", id="not-a-mapping"),
    ],
)
def test_capacity_rejects_bad_figures(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        capacity_from_mapping(data)  # type: ignore[arg-type]


def test_example_capacity_loads() -> None:
    text = (ROOT / "examples/replay-a100.capacity.yaml").read_text()
    assert capacity_from_mapping(yaml.safe_load(text)).cold_start_s == 60


def test_one_request_ttft_is_prefill_plus_one_step() -> None:
    sim = Simulation(as_requests([TraceRequest(0.0, 500, 3)]), CAP, 1, tick_s=0.05)
    sim.run_until(5)
    assert sim.first_token[0] == pytest.approx(0.5 + CAP.decode_step_s(1))
    assert sim.done[0] == pytest.approx(sim.first_token[0] + 2 * CAP.decode_step_s(1), abs=0.02)


def test_ttft_grows_with_queueing() -> None:
    sim = Simulation(as_requests([TraceRequest(0.0, 500, 1)] * 6), CAP, 1, tick_s=0.05)
    sim.run_until(10)
    ttft = sim.first_token
    assert all(later > earlier + 0.45 for earlier, later in itertools.pairwise(ttft))
    assert sim.max_queue == 5  # the admitted head is prefilling, the others wait


@pytest.mark.parametrize(
    ("routing", "waits_behind_the_long_prompt"), [("fewest-requests", True), ("least-prefill", False)]
)
def test_routing_by_prefill_keeps_a_short_prompt_from_a_long_prefill(
    routing: Routing, waits_behind_the_long_prompt: bool
) -> None:
    # Replica 0 decodes two short requests; replica 1 prefills one 20,000-token prompt
    # (20 s). A short prompt then goes to the replica with fewer requests (behind the 20 s
    # prefill) or to the one with less prompt left to prefill.
    short_decoding, long_prompt, short_question = (0.0, 100, 2000), (0.0, 20_000, 1), (1.0, 100, 1)
    requests = as_requests(
        [TraceRequest(*r) for r in (short_decoding, long_prompt, short_decoding, short_question)]
    )
    sim = Simulation(requests, CAP, 2, tick_s=0.05, routing=routing)
    sim.run_until(30)
    ttft = sim.first_token[3] - 1.0
    assert (ttft > 15) is waits_behind_the_long_prompt, ttft
    assert sim.first_token[1] == pytest.approx(20 + CAP.decode_step_s(1), abs=0.1)  # the long prompt alike


def test_every_row_replays_with_the_routing_asked_for() -> None:
    # The scenario above: the 20 s prompt cannot meet a 1 s target even alone (left out),
    # and the short question is in time on two replicas only when routed by prefill.
    short_decoding, long_prompt, short_question = (0.0, 100, 2000), (0.0, 20_000, 1), (1.0, 100, 1)
    requests = as_requests(
        [TraceRequest(*r) for r in (short_decoding, long_prompt, short_decoding, short_question)]
    )
    fleets = {
        routing: {
            row.policy: row.replicas
            for row in replay_rows(
                requests,
                CAP,
                endpoint(),
                start=START,
                only=["static_best", "clairvoyant", "oracle"],
                routing=routing,
            )
        }
        for routing in ("fewest-requests", "least-prefill")
    }
    assert fleets["fewest-requests"] == {"static_best": "3", "clairvoyant": "0-3", "oracle": "0-3"}
    assert fleets["least-prefill"] == {"static_best": "2", "clairvoyant": "0-2", "oracle": "0-2"}


def test_routing_must_be_known() -> None:
    with pytest.raises(ValueError, match="routing must be one of fewest-requests, least-prefill"):
        Simulation(as_requests(steady(1, 10)), CAP, 1, routing="random")  # type: ignore[arg-type]


def test_utilization_is_the_busy_fraction_of_a_scrape() -> None:
    # 3 s of prefill in the first 15 s scrape, nothing in the next.
    sim = Simulation(as_requests([TraceRequest(1.0, 3000, 1)]), CAP, 1, tick_s=0.05, scrape_s=15)
    sim.run_until(30)
    assert [s.time_s for s in sim.scrapes] == pytest.approx([15, 30])
    assert sim.scrapes[0].utilization == pytest.approx((3.0 + CAP.decode_step_s(1)) / 15, abs=0.01)
    assert sim.scrapes[1].utilization == 0


def test_scale_in_drains_and_loses_no_request() -> None:
    requests = as_requests(steady(rate=6, seconds=60, generated=200))
    sim = Simulation(requests, CAP, 3)
    sim.run_until(30)
    sim.set_replicas(1, 30)
    assert sim.target == 1 and len(sim.replicas) == 3  # two drain, still billed
    sim.run_until(400)
    assert sim.finished() and all(math.isfinite(d) for d in sim.done)
    assert len(sim.replicas) == 1
    assert 30 * 3 < sim.billed_replica_s() < 400 + 2 * 60


def test_a_scrape_tells_the_replicas_being_drained_from_those_serving() -> None:
    # Answers of 2,000 tokens keep the two replicas a scale-in drains busy past a scrape.
    requests = as_requests(steady(rate=6, seconds=60, generated=2000))
    sim = Simulation(requests, CAP, 3)
    sim.run_until(30)
    sim.set_replicas(1, 30)
    sim.run_until(46)
    newest = sim.scrapes[-1]
    assert newest.draining >= 1 and newest.ready == newest.draining + 1 and newest.serving == 1
    assert newest.kept_utilization is not None and newest.serving_utilization == newest.kept_utilization
    before = sim.scrapes[-3]  # the scrape before the scale-in: nothing drained
    assert before.draining == 0 and before.serving_utilization == before.utilization


def test_scale_out_bills_at_once_and_serves_after_the_cold_start() -> None:
    sim = Simulation(as_requests([TraceRequest(50.0, 100, 1)]), CAP, 0)
    sim.set_replicas(1, 0.0)
    sim.run_until(40)
    assert sim.ready == 1 and sim.billed_replica_s() == pytest.approx(40)
    sim2 = Simulation(as_requests([TraceRequest(0.0, 100, 1)]), CAP, 0)
    sim2.set_replicas(1, 0.0)
    sim2.run_until(60)
    assert sim2.first_token[0] == pytest.approx(
        30 + 0.1 + CAP.decode_step_s(1), abs=0.11
    )  # held at the router


@pytest.mark.parametrize(
    ("rate", "replicas"),
    [
        pytest.param(1.0, 1, id="light"),
        pytest.param(4.0, 2, id="1.6 replicas of prefill"),
        pytest.param(9.0, 4, id="3.6 replicas of prefill"),
    ],
)
def test_static_peak_is_the_fewest_that_meet_the_slo(rate: float, replicas: int) -> None:
    rows = replay_rows(as_requests(steady(rate, 300)), CAP, endpoint(), start=START)
    peak = next(r for r in rows if r.policy == "static_best")
    assert peak.replicas == str(replicas) and peak.slo_attainment >= 0.99


def test_step_load_makes_the_configured_policy_scale_out() -> None:
    trace = steady(0.5, 300) + steady(8.0, 600, at=300)
    sim = drive(as_requests(trace), CAP, ConfiguredPolicy(endpoint(), START), initial=1, poll_s=15)
    assert sim.most >= 4 and sim.finished()


def test_oracle_is_the_lower_bound() -> None:
    trace = synthetic_trace(
        1200, 2.0, period_s=600, burst_every_s=300, burst_requests=20, prompt_tokens=(100, 800)
    )
    rows = {r.policy: r for r in replay_rows(as_requests(trace), CAP, endpoint(), start=START)}
    oracle = rows.pop("oracle")
    assert oracle.slo_attainment >= 0.99
    assert all(oracle.gpu_hours <= r.gpu_hours + 1e-9 for r in rows.values() if r.slo_attainment >= 0.99)
    assert oracle.gpu_hours <= rows["static_best"].gpu_hours


def test_long_replays_report_progress_by_tenths() -> None:
    lines: list[str] = []
    replay_rows(as_requests(steady(2.0, 300)), CAP, endpoint(), start=START, progress=lines.append)
    for name in ("oracle", "configured", "threshold_80_30", "static_mean (1)"):
        mine = [line for line in lines if line.startswith(f"{name}: ")]
        assert mine == [f"{name}: {k * 10}% of the trace" for k in range(1, 11)], lines
    assert any(line.startswith("static_best (trying ") for line in lines)


def test_the_cli_reports_progress_only_for_long_traces() -> None:
    from commands.cli_replay import PROGRESS_AFTER_S, progress_for

    assert progress_for(as_requests(steady(1.0, 3600))) is None
    assert progress_for(as_requests(steady(0.01, PROGRESS_AFTER_S + 200))) is not None


def test_a_clone_runs_on_without_touching_its_parent() -> None:
    sim = Simulation(as_requests(steady(1.0, 20)), CAP, 1, tick_s=0.05)
    sim.run_until(10)
    served = [t for t in sim.first_token if math.isfinite(t)]
    trial = sim.clone()
    trial.run_until(30)
    assert trial.finished() and all(math.isfinite(t) for t in trial.first_token)
    assert list(trial.first_token)[: len(served)] == served  # the parent's times, shared
    assert [t for t in sim.first_token if math.isfinite(t)] == served  # the trial's stayed its own
    assert [s.time_s for s in trial.scrapes] == [15, 30] and sim.scrapes == []  # its own scrapes only
    sim.run_until(30)
    assert list(sim.first_token) == list(trial.first_token)  # the same inputs, the same run


def test_static_runs_hold_their_count() -> None:
    sim = drive(as_requests(steady(2.0, 60)), CAP, static(3), initial=3, poll_s=15)
    assert sim.scale_actions == 0 and sim.fewest == sim.most == 3


@pytest.mark.parametrize(("factor", "expected"), [(1.0, 100), (2.0, 200), (3.0, 300)])
def test_load_scaling_multiplies_requests(factor: float, expected: int) -> None:
    scaled = scale_load(steady(10, 10), factor)
    assert len(scaled) == expected and scaled == sorted(scaled, key=lambda r: r.offset_s)


def test_load_scaling_halves_about_half_and_time_scaling_compresses() -> None:
    assert 400 <= len(scale_load(steady(100, 10), 0.5)) <= 600
    fast = scale_trace(steady(1, 100), time_scale=2)
    assert fast[-1].offset_s == pytest.approx(49.5)


def test_replay_cli_prints_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from commands.cli import app

    trace = tmp_path / "t.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,500,5\n2023-11-16 18:00:01,700,5\n"
    )
    result = CliRunner().invoke(
        app, ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace), "--json"]
    )
    assert result.exit_code == 0, result.output
    import json

    rows = json.loads(result.output)["rows"]
    assert [r["policy"] for r in rows] == [
        "configured",
        "static_best",
        "static_mean",
        "threshold_80_30",
        "hpa",
        "keda",
        "knative",
        "clairvoyant",
        "oracle",
    ]


def test_replay_cli_routes_as_asked_and_says_so(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from commands.cli import app

    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,500,5\n")
    args = ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(app, [*args, "--row", "static_best", "--routing", "least-prefill", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["routing"] == "least-prefill"
    result = CliRunner().invoke(app, [*args, "--routing", "round-robin"])
    assert result.exit_code == 2
    assert "--routing must be one of fewest-requests, least-prefill, got 'round-robin'" in result.output


def test_replay_cli_reads_a_mooncake_trace_as_the_same_requests_in_csv(tmp_path: Path) -> None:
    """The same 300 requests as Azure CSV and as Mooncake JSON lines replay to the same
    rows; a file in neither format exits 2 naming the formats."""
    import json

    from typer.testing import CliRunner

    from commands.cli import app

    requests = load_trace()[:300]
    start = datetime(2023, 11, 16, 18, tzinfo=UTC)
    azure = tmp_path / "t.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(
            f"{start + timedelta(milliseconds=round(r.offset_s * 1000)):%Y-%m-%d %H:%M:%S.%f},"
            f"{r.prompt_tokens},{r.generated_tokens}\n"
            for r in requests
        )
    )
    mooncake = tmp_path / "t.jsonl"
    mooncake.write_text(as_mooncake(requests))
    args = ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--row", "configured"]
    args += ["--row", "static_best", "--json", "--trace"]
    rows = []
    for trace in (azure, mooncake):
        result = CliRunner().invoke(app, [*args, str(trace)])
        assert result.exit_code == 0, result.output
        rows.append(json.loads(result.output)["rows"])
    assert rows[0] == rows[1]
    assert rows[0][0]["gpu_hours"] > 0
    other = tmp_path / "other.csv"
    other.write_text("time,prompt,output\n1,2,3\n")
    result = CliRunner().invoke(app, [*args, str(other)])
    assert result.exit_code == 2
    assert "is none of the formats read" in result.output


def example() -> tuple[Capacity, Endpoint]:
    cap = capacity_from_mapping(yaml.safe_load((ROOT / "examples/replay-a100.capacity.yaml").read_text()))
    return cap, load_config(ROOT / "examples/replay-a100.yaml").endpoints[0]


def test_example_sizes_decode_heavy_traffic_by_token_demand() -> None:
    # Chat-like traffic (long answers): continuous batching keeps every replica's GPU
    # ~100% busy, so a policy that reads only the busy fraction scales out and never in;
    # the example's capacity model sizes it by its token rates.
    trace = synthetic_trace(
        1800, 5.0, period_s=1200, swing=0.5, prompt_tokens=(300, 3000), generated_tokens=(50, 800)
    )
    cap, ep = example()
    assert ep.autoscaling is not None and ep.autoscaling.capacity_file is not None
    busy_only = ep.model_copy(
        update={"autoscaling": ep.autoscaling.model_copy(update={"capacity_file": None})}
    )
    rows = {r.policy: r for r in replay_rows(as_requests(trace), cap, ep, start=START)}
    mine, peak, plain = rows["configured"], rows["static_best"], rows["threshold_80_30"]
    assert mine.slo_attainment >= 0.99
    assert mine.gpu_hours <= 1.2 * peak.gpu_hours
    assert mine.gpu_hours < 0.7 * plain.gpu_hours and plain.slo_attainment <= mine.slo_attainment
    blind = next(r for r in replay_rows(as_requests(trace), cap, busy_only, start=START, only=["configured"]))
    assert blind.gpu_hours > 3 * peak.gpu_hours


def test_dynamic_policies_start_sized_for_the_opening_traffic() -> None:
    # Three replicas' worth of traffic from the first second: a replay that started
    # every dynamic policy at one replica would charge them a cold start of misses.
    requests, ep = as_requests(steady(9.0, 300)), endpoint()
    rows = {r.policy: r for r in replay_rows(requests, CAP, ep, start=START)}
    assert rows["configured"].slo_attainment >= 0.99
    assert rows["threshold_80_30"].slo_attainment >= 0.99  # the baseline starts the same way
    from_one = drive(requests, CAP, ConfiguredPolicy(ep, START), initial=1, poll_s=15)
    assert row_from("one", from_one, ep, 1.0, "").slo_attainment < 0.9


def shared_rows(**options: Any) -> dict[str, ReplayRow]:
    """Every row on the packaged Azure code trace (the shared one, byte for byte)."""
    requests = as_requests(load_trace(None))
    cap, ep = example()
    return {r.policy: r for r in replay_rows(requests, cap, ep, start=START, **options)}


def test_example_beats_the_plain_threshold_rule_on_latency_for_less_than_static_best() -> None:
    rows = shared_rows()
    mine, best, plain = rows["configured"], rows["static_best"], rows["threshold_80_30"]
    # 0.936 at 7.5 GPU-h: the opening's burst and one-second bursts of ~13 replica-seconds
    # of prefill, over before any replica started for them is ready (the README's table).
    assert mine.slo_attainment > 0.93 and mine.slo_attainment > plain.slo_attainment
    assert (mine.p95_ttft_seconds or math.inf) < (plain.p95_ttft_seconds or math.inf) / 10
    assert mine.gpu_hours < 0.9 * best.gpu_hours


@pytest.mark.xfail(
    reason="not met on this trace (measured: 0.936 at 7.5 GPU-h against static_best's 0.993 at 8.6 and "
    "the clairvoyant's 3.2): most misses are a burst in minute 3 that nothing before it foretells "
    "(test_the_shared_traces_misses_are_its_opening), and one-second bursts of ~13 replica-seconds of "
    "prefill end long before a replica started for them is ready (60 s), so a causal policy meets 0.99 "
    "only by holding about static_best's fleet",
    strict=True,
)
def test_example_meets_its_goals_on_the_shared_trace() -> None:
    rows = shared_rows()
    mine, best, clairvoyant = rows["configured"], rows["static_best"], rows["clairvoyant"]
    assert mine.slo_attainment >= 0.99
    assert mine.gpu_hours <= best.gpu_hours
    assert mine.gpu_hours <= 1.3 * clairvoyant.gpu_hours


def test_the_shared_traces_misses_are_its_opening() -> None:
    # The README's account of the miss above: minute 3 brings 531 requests after a
    # minute of 63 and two of none; starting with the replicas the opening needs, the
    # configured row has two serving then, and that minute alone is over the 1 % of
    # requests the goal allows. static_best holds the fleet that minute needs from the start.
    # With the bench's allowance of 0.1 s per 1,000 prompt tokens, as the README's figures.
    rows = shared_rows(only=["configured", "static_best"], timeline_step_s=60.0, per_1k_prompt_s=0.1)
    mine, best = rows["configured"].timeline, rows["static_best"].timeline
    assert [b.requests for b in mine[:4]] == [63, 0, 0, 531]
    judged = sum(b.requests for b in mine)
    late = sum(b.missed for b in mine)
    opening = sum(b.missed for b in mine[:15])
    assert mine[3].missed > 0.01 * judged and mine[3].ready_max is not None and mine[3].ready_max <= 2
    assert opening > 0.8 * late
    assert best[3].missed == 0 and best[3].ready_min == int(rows["static_best"].replicas)
    after = sum(b.requests for b in mine[15:])
    assert 1 - (late - opening) / after > 0.98  # what it misses once past the opening


def test_the_second_day_starts_replicas_before_a_step_the_first_day_had() -> None:
    # Two days of the same step: nothing, then from 11:00 to 11:10 six 400-token prompts a
    # second (2.4 replicas of prefill, 4 at the 60 % target). The first day the policy
    # sees the step once it has come and its first requests wait out a cold start; the
    # second, the daily forecast starts replicas a cold start before it. It reads what
    # was served the day before, which the first day's late start held down: it starts
    # fewer than the step needs, and fewer requests are late, not none.
    day, step_at = 86_400.0, 3600.0
    trace = [r for d in range(2) for r in steady(6.0, 600, at=step_at + d * day)]
    requests = as_requests(trace)
    policy = ConfiguredPolicy(endpoint(max_step=10, scale_out_cooldown_s=0), START, CAP)
    sim = drive(requests, CAP, policy, initial=1, poll_s=15)

    def late(first_day: bool) -> int:
        pairs = zip(requests.arrival_s, sim.first_token, strict=True)
        return sum(1 for arrival, first in pairs if (arrival < day) == first_day and first - arrival > 1.0)

    assert late(first_day=False) < 0.8 * late(first_day=True)
    first_out, why = next((t, why) for t, why in policy.reasons if t >= day)
    assert day + step_at - 45 <= first_out < day + step_at  # a cold start and a poll ahead
    assert "a day ago it rose" in why


def test_billing_ends_with_the_work_whatever_the_poll_interval() -> None:
    # One replica throughout, driven by controllers polled every 15 s and every 2 s: the
    # same work, the same bill. (Billed up to the next poll instead, the 15 s one paid up
    # to 13 s more, which made a peer polled every 2 s look cheaper at equal attainment.)
    requests = as_requests(steady(1.0, 20))

    class EveryTwoSeconds:
        poll_s = 2.0

        def __call__(self, _now_s: float, _view: object) -> int:
            return 1

    slow = drive(requests, CAP, static(1), initial=1, poll_s=15)
    fast = drive(requests, CAP, EveryTwoSeconds(), initial=1, poll_s=15)
    last_done = max(slow.done)
    assert slow.billed_replica_s() == pytest.approx(fast.billed_replica_s())
    assert slow.billed_replica_s() == pytest.approx(last_done, abs=CAP.decode_step_s(1) + 0.1)
