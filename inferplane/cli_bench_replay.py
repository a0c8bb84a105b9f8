"""``inferplane bench replay``: the replay on several workloads, and the goals on each.

``inferplane replay`` answers for one trace; a policy tuned to one hour of bursts can
look better or worse than it is. This runs the same five-policy replay on each workload
of ``autoscaler.replay.suite`` (the trace, its halves, a six-hour day built from it and
two generated chat-like workloads) and prints, per workload, the configured policy's
ratios to the oracle, static_peak and threshold_80_30, and which goals it meets.
"""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from autoscaler.replay import replay_rows
from autoscaler.replay.report import aligned
from autoscaler.replay.suite import GOALS, WORKLOADS, GoalCheck, build_workload, judge
from autoscaler.replay.workload import as_requests
from inference.trace import load_trace
from inferplane.cli_common import fail
from inferplane.cli_replay import REPLAY_START, progress_for, replay_inputs
from inferplane.config import ConfigError

__all__ = ["bench_replay", "format_checks"]

_START = datetime.fromisoformat(REPLAY_START)


def bench_replay(
    config: Annotated[Path, typer.Option("--config", help="inferplane.yaml with the endpoint")],
    trace: Annotated[
        Path | None, typer.Option(help="CSV the trace-based workloads start from (default: packaged)")
    ] = None,
    capacity: Annotated[
        Path | None, typer.Option(help="capacity file (default: CONFIG.capacity.yaml)")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="endpoint name (default: as replay)")] = None,
    workload: Annotated[
        list[str] | None, typer.Option(help=f"run only these (repeatable): {', '.join(WORKLOADS)}")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (every row of every workload)")] = False,
    output: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
) -> None:
    """The replay on every workload: the configured policy against the goals on each."""
    names = workload or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        fail(f"unknown workload {unknown[0]!r}; choose from {', '.join(WORKLOADS)}")
    try:
        _cfg, chosen, cap = replay_inputs(config, capacity, endpoint)
        base = load_trace(trace)
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as error:
        fail(str(error))
    runs: list[dict[str, Any]] = []
    checks: list[GoalCheck] = []
    for name in names:
        requests = build_workload(name, base)
        clock = time.perf_counter()
        try:
            simulated = as_requests(requests)
            rows = replay_rows(simulated, cap, chosen, start=_START, progress=progress_for(simulated))
        except ValueError as error:
            fail(str(error))
        seconds = time.perf_counter() - clock
        check = judge(name, len(requests), rows)
        checks.append(check)
        runs.append(
            {**check.as_json(), "runtime_seconds": round(seconds, 2), "rows": [r.as_json() for r in rows]}
        )
        met = [goal for goal, ok in check.met.items() if ok]
        typer.echo(
            f"{name}: {len(requests)} requests in {seconds:.1f} s; goals met: {met or 'none'}", err=True
        )
    summary = {
        "endpoint": chosen.name,
        "trace": str(trace or "packaged azure_llm_2023_code.csv"),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "goals": GOALS,
        "workloads": runs,
    }
    text = json.dumps(summary, indent=2)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text if as_json else format_checks(checks))


def format_checks(checks: list[GoalCheck]) -> str:
    """One line per workload: the configured policy's figures, ratios and goals met."""
    header = (
        "workload",
        "requests",
        "slo",
        "p95_s",
        "gpu_h",
        "x_oracle",
        "x_static_peak",
        "x_threshold_cost",
        "threshold_slo",
        "threshold_p95_s",
    )
    cells = [[*header, "goals met"]]
    for c in checks:
        met = ", ".join(goal for goal, ok in c.met.items() if ok) or "none"
        cells.append(
            [
                c.workload,
                str(c.requests),
                f"{c.slo_attainment:.4f}",
                _cell(c.p95_ttft_seconds),
                f"{c.gpu_hours:.2f}",
                _cell(c.oracle_ratio),
                _cell(c.static_peak_ratio),
                _cell(c.threshold_cost_ratio),
                f"{c.threshold_slo_attainment:.4f}",
                _cell(c.threshold_p95_ttft_seconds),
                met,
            ]
        )
    return aligned(cells, free_text_last=True)


def _cell(value: float | None) -> str:
    """A ratio or seconds to two places; "-" where there is none."""
    return "-" if value is None else f"{value:.2f}"
