"""The replay's timeline: where a run missed its SLO, and what the fleet was doing then."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.replay.policies import drive, following, static
from autoscaler.replay.report import COLUMNS, Slo, replay_rows, row_from
from autoscaler.replay.timeline import timeline
from autoscaler.replay.workload import as_requests
from commands.cli import app
from commands.cli_replay import TIMELINE_COLUMNS
from inference.trace import TraceRequest
from tests.test_replay import CAP, ROOT, START, endpoint, steady


def burst_at(at: float, count: int, prompt: int = 400) -> list[TraceRequest]:
    return [TraceRequest(at, prompt, 5) for _ in range(count)]


def test_a_burst_misses_in_its_own_bucket_only() -> None:
    # One replica prefills 1,000 tokens/s: ten 400-token prompts at once take 4 s, so all
    # but the first two wait past the 1 s target; the light traffic around them never does.
    trace = sorted(steady(0.5, 180) + burst_at(90.5, 10), key=lambda r: r.offset_s)
    requests = as_requests(trace)
    sim = drive(requests, CAP, static(1), initial=1, poll_s=15)
    excluded = [False] * len(trace)
    buckets = timeline(sim, Slo(1.0).limit, excluded, 60.0)

    assert [b.start_s for b in buckets] == [0.0, 60.0, 120.0]
    assert [b.requests for b in buckets] == [30, 40, 30]
    assert buckets[0].missed == 0 and buckets[2].missed == 0
    assert 8 <= buckets[1].missed <= 11  # the burst's eight, and the steady requests queued behind it
    row = row_from("static", sim, endpoint(ttft=1.0), 1.0, "1", excluded)
    assert row.slo_attainment == round(1 - buckets[1].missed / len(trace), 4)
    assert all(b.replicas == 1 and b.ready_min == b.ready_max == 1 for b in buckets)


def test_left_out_requests_are_not_counted() -> None:
    trace = steady(1.0, 60)
    sim = drive(as_requests(trace), CAP, static(1), initial=1, poll_s=15)
    excluded = [k % 2 == 0 for k in range(len(trace))]
    (bucket,) = timeline(sim, Slo(1.0).limit, excluded, 60.0)
    assert bucket.requests == 30


def test_a_bucket_without_a_poll_shows_the_fleet_of_the_poll_before() -> None:
    # Polls at 0, 15, 30 and 45 s set 1, 3, 2 and 2 replicas; 5-s buckets between polls
    # show the count of the poll before them, not the first poll's or the next one's.
    sim = drive(as_requests(steady(1.0, 60)), CAP, following([1, 3, 2], 15), initial=1, poll_s=15)
    buckets = timeline(sim, Slo(1.0).limit, [False] * 60, 5.0)
    assert len(buckets) == 12
    assert [b.replicas for b in buckets] == [1, 1, 1, 3, 3, 3, 2, 2, 2, 2, 2, 2]
    polled = {round(at): ready for at, _, ready in sim.polls}
    assert [b.ready_min for b in buckets[3:6]] == [polled[15]] * 3


@pytest.mark.parametrize("step", [0.0, -1.0, float("nan"), float("inf")])
def test_the_step_must_be_a_positive_number(step: float) -> None:
    sim = drive(as_requests(steady(1.0, 10)), CAP, static(1), initial=1, poll_s=15)
    with pytest.raises(ValueError, match="step_s must be a positive number"):
        timeline(sim, Slo(1.0).limit, [False] * 10, step)


def test_the_configured_rows_timeline_says_when_and_why_it_scaled() -> None:
    trace = steady(0.5, 300) + steady(8.0, 600, at=300)
    (row,) = replay_rows(
        as_requests(trace), CAP, endpoint(), start=START, only=["configured"], timeline_step_s=60.0
    )
    changes = [b for b in row.timeline if b.reason]
    assert changes, "the step in load made the policy scale, and each change says why"
    first = changes[0]
    assert first.start_s >= 300.0 and " -> " in first.reason and "$" in first.reason
    later = [b for b in row.timeline if b.start_s > first.start_s + 120]
    assert min(b.replicas or 0 for b in later) > row.timeline[0].replicas  # the fleet grew after it
    judged = sum(b.requests for b in row.timeline)
    missed = sum(b.missed for b in row.timeline)
    assert judged == len(trace)
    assert row.slo_attainment == round(1 - missed / judged, 4)


def test_the_timeline_stays_out_of_the_rows_json() -> None:
    (row,) = replay_rows(as_requests(steady(1.0, 60)), CAP, endpoint(), start=START, only=["static_best"])
    assert row.timeline == ()
    (timed,) = replay_rows(
        as_requests(steady(1.0, 60)), CAP, endpoint(), start=START, only=["static_best"], timeline_step_s=30.0
    )
    assert len(timed.timeline) == 2
    assert list(timed.as_json()) == list(COLUMNS) and timed.as_json() == row.as_json()


def test_the_cli_writes_every_rows_timeline_as_csv(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [f"2023-11-16 18:{k // 60:02d}:{k % 60:02d},800,5" for k in range(0, 180, 2)]
    lines += ["2023-11-16 18:01:30,9000,5"] * 40  # a burst one replica cannot serve in time
    trace.write_text("\n".join(lines) + "\n")
    out = tmp_path / "timeline.csv"
    args = ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(
        app, [*args, "--row", "configured", "--row", "static_best", "--timeline", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "timeline: 3 buckets per row written to" in result.stderr
    with out.open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == TIMELINE_COLUMNS
    for row in summary["rows"]:
        mine = [line for line in table if line["policy"] == row["policy"]]
        assert [line["start"] for line in mine] == [
            "2026-11-23T10:00:00+00:00",
            "2026-11-23T10:01:00+00:00",
            "2026-11-23T10:02:00+00:00",
        ]
        judged = sum(int(line["requests"]) for line in mine)
        missed = sum(int(line["missed"]) for line in mine)
        assert judged == summary["requests"] - summary["excluded_requests"]
        assert row["slo_attainment"] == round(1 - missed / judged, 4)
    configured = [line for line in table if line["policy"] == "configured"]
    assert int(configured[1]["missed"]) > 0 and configured[0]["missed"] == "0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--timeline-step", "0"], "--timeline-step must be a positive number of seconds, got 0.0"),
        (["--timeline-step", "nan"], "--timeline-step must be a positive number of seconds, got nan"),
        (["--tick", "0"], "--tick must be a positive number of seconds, got 0.0"),
        (["--tick", "-1"], "--tick must be a positive number of seconds, got -1.0"),
        (["--tick", "nan"], "--tick must be a positive number of seconds, got nan"),
        (["--slo-goal", "2"], "--slo-goal must be a share of requests above 0 and at most 1, got 2.0"),
        (["--start", "yesterday"], "--start 'yesterday': expected an ISO 8601 time"),
        (["--capacity", "none.yaml"], "capacity file none.yaml: No such file or directory"),
    ],
)
def test_the_cli_refuses_a_bad_step(tmp_path: Path, extra: list[str], message: str) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,500,5\n")
    args = ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(app, [*args, "--timeline", str(tmp_path / "t.csv.out"), *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "t.csv.out").exists()


def test_the_cli_names_a_timeline_it_cannot_write(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,500,5\n")
    target = tmp_path / "missing" / "timeline.csv"
    args = ["replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(app, [*args, "--row", "static_best", "--timeline", str(target)])
    assert result.exit_code == 2
    assert f"--timeline {target}: No such file or directory" in result.output
    assert "replayed in" not in result.output  # refused before the replay, not after it
