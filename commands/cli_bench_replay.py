"""``inferplane bench replay``: the replay on every workload and load scale, and the goals.

``inferplane replay`` answers for one trace; a policy tuned to one hour of bursts can
look better or worse than it is. This runs every row of the replay on each workload of
``autoscaler.replay.suite`` (the recorded traces given, or the packaged code hour, and two
generated days with a daily cycle, each at load x1, x3 and x10) with one configuration,
and prints, per workload, the configured policy's figures, its ratios to static_best,
the clairvoyant and the oracle, and which goals it meets or misses.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from autoscaler.replay import replay_rows
from autoscaler.replay.report import Slo, aligned, infeasible
from autoscaler.replay.suite import GENERATED, GOALS, LOAD_SCALES, GoalCheck, judge, workloads
from autoscaler.replay.workload import as_requests
from commands.cli_common import TRACE_FORMATS, check_writable, fail
from commands.cli_replay import REPLAY_START, ROUTING_HELP, progress_for, replay_inputs, routing_option
from inference.trace import TraceRequest, load_trace
from inferplane.config import ConfigError

__all__ = ["bench_replay", "format_checks"]

_START = datetime.fromisoformat(REPLAY_START)


def bench_replay(
    config: Annotated[Path, typer.Option("--config", help="inferplane.yaml with the endpoint")],
    trace: Annotated[
        list[Path] | None,
        typer.Option(
            help=f"recorded trace ({TRACE_FORMATS}), named by its file's stem "
            "(repeatable; default: packaged code)"
        ),
    ] = None,
    capacity: Annotated[
        Path | None, typer.Option(help="capacity file (default: CONFIG.capacity.yaml)")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="endpoint name (default: as replay)")] = None,
    workload: Annotated[
        list[str] | None,
        typer.Option(help=f"run only these (repeatable): a trace's name, {', '.join(GENERATED)}"),
    ] = None,
    load_scale: Annotated[
        list[float] | None, typer.Option(help="load scales (repeatable; default 1, 3, 10)")
    ] = None,
    days: Annotated[
        float, typer.Option(help="days each generated workload lasts (the daily forecast reads yesterday)")
    ] = 1.0,
    ttft_per_1k_prompt: Annotated[
        float, typer.Option(help="SLO allowance: seconds of TTFT added per 1,000 prompt tokens")
    ] = 0.0,
    workers: Annotated[int, typer.Option(help="processes the rows run in (default: up to 2 cores)")] = min(
        2, os.cpu_count() or 1
    ),
    routing: Annotated[str, typer.Option(help=ROUTING_HELP)] = "fewest-requests",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (every row of every workload)")] = False,
    output: Annotated[Path | None, typer.Option(help="also write the JSON here")] = None,
) -> None:
    """The replay on every workload and load scale: the configured policy against the goals."""
    if workers < 1:
        fail(f"--workers must be at least 1, got {workers}")
    if not (math.isfinite(ttft_per_1k_prompt) and ttft_per_1k_prompt >= 0):
        fail(f"--ttft-per-1k-prompt must be a finite number >= 0, got {ttft_per_1k_prompt}")
    chosen_routing = routing_option(routing)
    check_writable(output, "--output")
    scales = load_scale or list(LOAD_SCALES)
    bad = [s for s in scales if not (math.isfinite(s) and s > 0)]
    if bad:
        fail(f"--load-scale must be a positive finite number, got {bad[0]}")
    try:
        _cfg, chosen, cap = replay_inputs(config, capacity, endpoint)
        recorded: dict[str, list[TraceRequest]] = (
            {p.stem: load_trace(p) for p in trace} if trace else {"code": load_trace(None)}
        )
        plan = list(workloads(recorded, bases=workload, scales=scales, days=days))
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as error:
        fail(str(error))
    slo = Slo(chosen.ttft_target_seconds or 0.0, ttft_per_1k_prompt)
    runs: list[dict[str, Any]] = []
    checks: list[GoalCheck] = []
    for item in plan:
        clock = time.perf_counter()
        try:
            simulated = as_requests(item.requests)
            rows = replay_rows(
                simulated,
                cap,
                chosen,
                start=_START,
                per_1k_prompt_s=ttft_per_1k_prompt,
                workers=workers,
                progress=progress_for(simulated),
                routing=chosen_routing,
            )
        except ValueError as error:
            fail(str(error))
        seconds = time.perf_counter() - clock
        excluded = sum(infeasible(simulated, cap, slo))
        check = judge(item.name, len(item.requests), rows, daily_cycle=item.daily_cycle, excluded=excluded)
        checks.append(check)
        runs.append(
            {
                **check.as_json(),
                "load_scale": item.load_scale,
                "daily_cycle": item.daily_cycle,
                "runtime_seconds": round(seconds, 2),
                "rows": [r.as_json() for r in rows],
            }
        )
        missed = [goal for goal, ok in check.met.items() if ok is False]
        typer.echo(
            f"{item.name}: {len(item.requests)} requests in {seconds:.1f} s; missed: {missed or 'none'}",
            err=True,
        )
    summary = {
        "endpoint": chosen.name,
        "traces": {name: str(p) for name, p in zip(recorded, trace or [Path("packaged")], strict=False)},
        "ttft_target_seconds": chosen.ttft_target_seconds,
        "ttft_per_1k_prompt_seconds": ttft_per_1k_prompt,
        "routing": chosen_routing,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "goals": GOALS,
        "workloads": runs,
    }
    text = json.dumps(summary, indent=2)
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    typer.echo(text if as_json else format_checks(checks))


def format_checks(checks: list[GoalCheck]) -> str:
    """One line per workload: the configured policy's figures, ratios and goals missed."""
    header = (
        "workload",
        "requests",
        "excluded",
        "slo",
        "p95_s",
        "gpu_h",
        "x_static_best",
        "x_clairvoyant",
        "x_oracle",
        "dominated_by",
    )
    cells = [[*header, "goals missed"]]
    for c in checks:
        missed = ", ".join(goal for goal, ok in c.met.items() if ok is False) or "none"
        cells.append(
            [
                c.workload,
                str(c.requests),
                str(c.excluded_requests),
                f"{c.slo_attainment:.4f}",
                _cell(c.p95_ttft_seconds),
                f"{c.gpu_hours:.2f}",
                _cell(c.static_best_ratio),
                _cell(c.clairvoyant_ratio),
                _cell(c.oracle_ratio),
                ",".join(c.dominated_by) or "-",
                missed,
            ]
        )
    return aligned(cells, free_text_last=True)


def _cell(value: float | None) -> str:
    """A ratio or seconds to two places; "-" where there is none."""
    return "-" if value is None else f"{value:.2f}"
