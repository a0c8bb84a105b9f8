"""``inferplane bench replay``: the workloads it builds, the goals it judges, the command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoscaler.replay.report import ReplayRow
from autoscaler.replay.suite import WORKLOADS, build_workload, judge
from inference.trace import TraceRequest
from inferplane.cli import app

ROOT = Path(__file__).resolve().parent.parent
TRACE = [TraceRequest(k * 2.0, 1000 + k, 10) for k in range(100)]  # 198 s, one every 2 s


def test_halves_split_the_trace_and_start_at_zero() -> None:
    first, second = build_workload("first-half", TRACE), build_workload("second-half", TRACE)
    assert len(first) + len(second) == len(TRACE)
    assert first[0].offset_s == second[0].offset_s == 0.0
    assert second[0].prompt_tokens == TRACE[50].prompt_tokens


def test_diurnal_day_spans_six_copies_with_their_shares() -> None:
    day = build_workload("diurnal-6h", TRACE * 10)  # 1,000 requests an hour-copy
    span = 199.0  # the trace's last offset + 1 s
    per_copy = [sum(1 for r in day if k * span <= r.offset_s < (k + 1) * span) for k in range(6)]
    for count, share in zip(per_copy, (0.2, 0.5, 1.0, 1.0, 0.6, 0.3), strict=True):
        assert abs(count - 1000 * share) <= 60
    assert build_workload("diurnal-6h", TRACE * 10) == day  # seeded: the same every run


def test_chat_workloads_are_generated_the_same_every_run() -> None:
    chat = build_workload("chat-sine", [])
    assert chat == build_workload("chat-sine", [])
    assert 15_000 < len(chat) < 21_000 and max(r.generated_tokens for r in chat) <= 800


def test_unknown_workload_names_the_choices() -> None:
    with pytest.raises(ValueError, match="chat-sine"):
        build_workload("weekly", TRACE)


def row(policy: str, gpu_hours: float, attainment: float, p95: float | None) -> ReplayRow:
    return ReplayRow(policy, gpu_hours, round(gpu_hours * 3.0, 2), attainment, p95, 0, 0, "1")


@pytest.mark.parametrize(
    ("mine", "plain", "met"),
    [
        pytest.param(row("configured", 1.2, 0.995, 1.0), row("t", 2.0, 0.99, 1.0), True, id="cheaper"),
        pytest.param(row("configured", 2.0, 0.995, 1.0), row("t", 2.0, 0.99, 1.0), True, id="same-cost-slo"),
        pytest.param(row("configured", 2.0, 0.99, 0.8), row("t", 2.0, 0.99, 1.0), True, id="same-cost-p95"),
        pytest.param(row("configured", 1.2, 0.98, 1.0), row("t", 2.0, 0.99, 1.0), False, id="loses-slo"),
        pytest.param(row("configured", 1.2, 0.99, 1.1), row("t", 2.0, 0.99, 1.0), False, id="loses-p95"),
        pytest.param(row("configured", 2.5, 1.0, 0.5), row("t", 2.0, 0.4, None), False, id="dearer"),
        pytest.param(row("configured", 2.0, 0.99, 1.0), row("t", 2.0, 0.99, 1.0), False, id="equal"),
    ],
)
def test_judge_threshold_goal(mine: ReplayRow, plain: ReplayRow, met: bool) -> None:
    others = [row("oracle", 1.0, 1.0, 1.0), row("static_peak", 4.0, 0.99, 1.0)]
    check = judge("w", 10, [mine, *others, replace(plain, policy="threshold_80_30")])
    assert check.met["vs_threshold"] is met


def test_judge_ratios_and_other_goals() -> None:
    rows = [
        row("configured", 1.25, 0.991, 1.0),
        row("oracle", 1.0, 1.0, 1.0),
        row("static_peak", 2.0, 0.99, 1.0),
        row("threshold_80_30", 1.0, 0.5, 9.0),
    ]
    check = judge("w", 10, rows)
    assert (check.oracle_ratio, check.static_peak_ratio, check.threshold_cost_ratio) == (1.25, 0.625, 1.25)
    assert check.met == {
        "attainment": True,
        "vs_oracle": True,
        "vs_static_peak": False,
        "vs_threshold": False,
    }


def test_cli_runs_the_chosen_workloads(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    lines = [f"2023-11-16 18:00:{k:02d},{500 + 100 * k},5" for k in range(40)]
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(lines) + "\n")
    out = tmp_path / "bench.json"
    args = ["bench", "replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--trace", str(trace)]
    result = CliRunner().invoke(
        app, [*args, "--workload", "first-half", "--workload", "second-half", "--json", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(out.read_text())
    assert [w["workload"] for w in summary["workloads"]] == ["first-half", "second-half"]
    assert [w["requests"] for w in summary["workloads"]] == [20, 20]
    first = summary["workloads"][0]
    assert set(first["met"]) == set(summary["goals"]) and len(first["rows"]) == 9
    assert first["slo_attainment"] == first["rows"][0]["slo_attainment"]


def test_cli_refuses_an_unknown_workload() -> None:
    args = ["bench", "replay", "--config", str(ROOT / "examples/replay-a100.yaml"), "--workload", "weekly"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "unknown workload 'weekly'" in result.output and all(name in result.output for name in WORKLOADS)


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
    ],
)
def test_cli_bad_input_exits_2_naming_it(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", "replay", *args])
    assert result.exit_code == 2 and message in result.output, result.output
