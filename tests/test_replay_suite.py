"""``inferplane bench replay``: the workloads it builds, the goals it judges, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.replay.report import ReplayRow
from autoscaler.replay.suite import GENERATED, judge, workloads
from commands.cli import app
from inference.trace import TraceRequest

ROOT = Path(__file__).resolve().parent.parent
TRACE = [TraceRequest(k * 2.0, 1000 + k, 10) for k in range(100)]  # 198 s, one every 2 s


def test_recorded_traces_run_at_each_load_scale() -> None:
    built = list(workloads({"t": TRACE}, scales=(1, 3)))
    assert [w.name for w in built] == [
        "t-x1",
        "t-x3",
        "day-chat-x1",
        "day-chat-x3",
        "day-long-x1",
        "day-long-x3",
    ]
    assert [len(w.requests) for w in built[:2]] == [100, 300]
    assert not built[0].daily_cycle and built[2].daily_cycle


def test_a_generated_day_has_off_hours_and_a_working_peak() -> None:
    day = next(iter(workloads({}, bases=["day-chat"], scales=(1,)))).requests
    per_hour = [sum(1 for r in day if h * 3600 <= r.offset_s < (h + 1) * 3600) for h in range(24)]
    assert max(per_hour[0:5]) < 0.05 * max(per_hour) and per_hour[10] > 1500  # 0.5/s at the peak
    again = next(iter(workloads({}, bases=["day-chat"], scales=(1,)))).requests
    assert again == day  # seeded: the same every run
    tripled = next(iter(workloads({}, bases=["day-chat"], scales=(3,)))).requests
    assert 2.8 < len(tripled) / len(day) < 3.2


def test_generated_workloads_can_span_several_days() -> None:
    # Two days in a row, named for it: the daily forecast reads the first on the second.
    two = next(iter(workloads({"t": TRACE}, bases=["day-chat"], scales=(1,), days=2)))
    one = next(iter(workloads({}, bases=["day-chat"], scales=(1,))))
    assert two.name == "day-chat-2d-x1" and one.name == "day-chat-x1"
    second = [r for r in two.requests if r.offset_s >= 86_400]
    assert max(r.offset_s for r in two.requests) < 2 * 86_400
    assert 0.9 < len(second) / len(one.requests) < 1.1  # the same day again, a new draw
    recorded = next(iter(workloads({"t": TRACE}, bases=["t"], scales=(1,), days=2)))
    assert recorded.name == "t-x1" and len(recorded.requests) == len(TRACE)  # a trace is as recorded
    with pytest.raises(ValueError, match="days"):
        list(workloads({}, days=0))


def test_unknown_workload_names_the_choices() -> None:
    with pytest.raises(ValueError, match="day-chat"):
        list(workloads({"t": TRACE}, bases=["weekly"]))


def row(policy: str, gpu_hours: float, attainment: float, p95: float | None = 1.0) -> ReplayRow:
    return ReplayRow(policy, gpu_hours, round(gpu_hours * 3.0, 2), attainment, p95, 0, 0, "1")


BOUNDS = [row("static_best", 4.0, 0.99), row("clairvoyant", 2.0, 1.0), row("oracle", 1.0, 1.0)]


@pytest.mark.parametrize(
    ("peer", "dominated"),
    [
        pytest.param(row("hpa", 2.0, 0.995), ["hpa"], id="cheaper-and-as-good"),
        pytest.param(row("keda", 2.0, 0.98), [], id="cheaper-but-worse"),
        pytest.param(row("knative", 2.5, 1.0), [], id="dearer"),
        pytest.param(row("threshold_80_30", 2.4, 0.995), [], id="same-cost"),
    ],
)
def test_judge_undominated_goal(peer: ReplayRow, dominated: list[str]) -> None:
    check = judge("w", 10, [row("configured", 2.4, 0.995), *BOUNDS, peer])
    assert check.dominated_by == dominated and check.met["undominated"] is (not dominated)


def test_judge_ratios_and_the_bounds() -> None:
    check = judge("w", 10, [row("configured", 2.5, 0.991), *BOUNDS])
    assert (check.static_best_ratio, check.clairvoyant_ratio, check.oracle_ratio) == (0.625, 1.25, 2.5)
    assert check.met == {
        "attainment": True,
        "vs_static_best": True,
        "vs_clairvoyant": True,
        "undominated": True,
    }
    # On a day with a daily cycle the bar is 0.6 x static_best.
    assert (
        judge("w", 10, [row("configured", 2.5, 0.991), *BOUNDS], daily_cycle=True).met["vs_static_best"]
        is False
    )


def test_judge_attainment_applies_only_where_static_best_reaches_the_goal() -> None:
    rows = [row("configured", 2.0, 0.95), row("static_peak", 4.0, 0.97), *BOUNDS[1:]]
    assert judge("w", 10, rows).met["attainment"] is None
    rows[1] = row("static_peak", 4.0, 0.99)  # the old name still counts as static_best
    assert judge("w", 10, rows).met["attainment"] is False


def test_cli_runs_the_chosen_workloads(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    lines = [f"2023-11-16 18:00:{k:02d},{500 + 100 * k},5" for k in range(40)]
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(lines) + "\n")
    out = tmp_path / "bench.json"
    args = ["bench", "replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(
        app,
        [*args, "--workload", "t", "--load-scale", "1", "--load-scale", "2", "--json", "--output", str(out)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert [w["workload"] for w in summary["workloads"]] == ["t-x1", "t-x2"]
    assert [w["requests"] for w in summary["workloads"]] == [40, 80]
    first = summary["workloads"][0]
    assert set(first["met"]) == set(summary["goals"]) and len(first["rows"]) == 9
    assert first["slo_attainment"] == first["rows"][0]["slo_attainment"]


def test_cli_refuses_an_unknown_workload() -> None:
    args = ["bench", "replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--workload", "weekly"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "unknown workload 'weekly'" in result.output and all(name in result.output for name in GENERATED)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--config", "/nonexistent/inferplane.yaml"], "/nonexistent/inferplane.yaml", id="config"
        ),
        pytest.param(
            ["--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", "/nonexistent/t.csv"],
            "cannot read trace file /nonexistent/t.csv",
            id="trace",
        ),
        pytest.param(
            ["--config", str(ROOT / "examples/replay-a100.yaml"), "--endpoint", "nope"],
            "no endpoint named 'nope'",
            id="endpoint",
        ),
        pytest.param(
            ["--config", str(ROOT / "examples/replay-a100.yaml"), "--days", "0"],
            "days must be a positive finite number, got 0",
            id="days",
        ),
    ],
)
def test_cli_bad_input_exits_2_naming_it(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", *args])
    assert result.exit_code == 2 and message in result.output, result.output
