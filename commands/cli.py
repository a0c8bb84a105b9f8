"""The ``inferplane`` command line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from commands.cli_alerts import alerts_app
from commands.cli_autoscaler import autoscaler_app, scale
from commands.cli_bench_dashboard import bench_dashboard
from commands.cli_bench_replay import bench_replay
from commands.cli_common import (
    CONFIG_HELP,
    TRACE_FORMATS,
    ConfigOption,
    StoreOption,
    check_writable,
    fail,
    log_config,
    open_config_and_store,
    resolve_config,
)
from commands.cli_config_reference import config_reference
from commands.cli_control_plane import control_plane
from commands.cli_costs import costs
from commands.cli_dashboard import dashboard
from commands.cli_export import export_app
from commands.cli_logging import LogFormatOption, LogLevelOption, start_logging
from commands.cli_profile import profile
from commands.cli_replay import replay
from commands.cli_router import router
from commands.cli_up import catchers, demo, up

__all__ = ["app"]

app = typer.Typer(
    help="inferplane: a cost-and-observability control plane for AI inference.",
    no_args_is_help=True,
    add_completion=False,
)
model_app = typer.Typer(help="Fetch and list models in the local model cache.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures, not pass/fail tests).", no_args_is_help=True)
config_app = typer.Typer(help="Check and print the inferplane.yaml configuration.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
app.add_typer(alerts_app, name="alerts")
app.add_typer(export_app, name="export")
app.add_typer(autoscaler_app, name="autoscaler")
app.command("scale")(scale)
app.command("costs")(costs)
app.command("replay")(replay)
app.command("profile")(profile)
app.command("router")(router)
config_app.command("reference")(config_reference)
app.command("dashboard")(dashboard)
app.command("up")(up)
app.command("demo")(demo)
app.command("catchers")(catchers)
app.command("control-plane")(control_plane)
bench_app.command("dashboard")(bench_dashboard)
bench_app.command("replay")(bench_replay)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 to serve other hosts.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[str | None, typer.Option(help="Known model name, local directory or HF id.")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Sequences per forward pass (1 = no batching).")
    ] = None,
    engine: Annotated[str | None, typer.Option(help="Batching engine: dynamic or continuous.")] = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Start the bundled inference service (OpenAI-compatible API, /metrics, /ready)."""
    from pydantic import ValidationError

    from inference.server import serve as run_server
    from inference.settings import ServiceSettings, describe_settings_error

    start_logging(log_level, log_format)
    overrides = {
        k: v
        for k, v in {"model": model, "max_batch_size": max_batch_size, "engine": engine}.items()
        if v is not None
    }
    try:
        settings = ServiceSettings.model_validate(overrides)
    except ValidationError as error:
        fail(describe_settings_error(error))
    typer.echo(
        f"inferplane inference service: http://{host}:{port}  (model {settings.served_name}; "
        f"OpenAI API at http://{host}:{port}/v1, metrics at /metrics)",
        err=True,
    )
    run_server(settings, host=host, port=port, log_level=log_level)


@app.command()
def collect(
    config: ConfigOption = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="One cycle, print what was stored, exit (1 if every source failed)."),
    ] = False,
    store: StoreOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Collect metrics and costs from every configured source into the store."""
    from collector.build import build_collector
    from collector.jobs import add_collect_jobs
    from commands.control import run_until_stopped
    from commands.control_plane import alert_jobs as build_alert_jobs
    from inferplane.config import ConfigError

    start_logging(log_level, log_format)
    settings, opened = open_config_and_store(log_config(config), store)
    try:
        collector, plan, retention = build_collector(settings, opened)
    except ConfigError as error:
        opened.close()
        fail(str(error))
    if not once:
        try:
            alert_jobs, alert_closers = build_alert_jobs(settings, opened)
        except ConfigError as error:
            collector.close()
            opened.close()
            fail(str(error))
        typer.echo(
            f"collecting from {len(plan.metric_sources) + len(plan.cost_sources)} sources"
            f"{', evaluating alerts' if alert_jobs else ''}; Ctrl-C stops"
        )
        collect_jobs = [lambda scheduler: add_collect_jobs(scheduler, collector, plan, retention)]
        # The store last: the collector and the alert engine were handed it, not given it.
        run_until_stopped([*collect_jobs, *alert_jobs], [collector.close, *alert_closers, opened.close])
        return
    try:
        reports = collector.run_once()
    finally:
        collector.close()
        opened.close()
    for report in reports:
        typer.echo(report.line())
    # The estimate (last) prices what is stored, and succeeds with every source down.
    sources = reports[: len(collector.metric_sources) + len(collector.cost_sources)]
    if sources and all(r.error for r in sources):
        raise typer.Exit(code=1)


@config_app.command("check")
def config_check(
    path: Annotated[
        Path | None,
        typer.Argument(help=CONFIG_HELP),
    ] = None,
) -> None:
    """Validate a configuration file; every problem is named with its file, line and field."""
    from inferplane.config import check_config

    path = resolve_config(path)
    problems = check_config(path)
    if problems:
        for problem in problems:
            typer.secho(problem, fg=typer.colors.RED, err=True)
        typer.secho(f"{len(problems)} problem(s) in {path}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{path}: OK")


@config_app.command("example")
def config_example() -> None:
    """Print the annotated example configuration (redirect it into inferplane.yaml)."""
    from inferplane.config import example_config_text

    typer.echo(example_config_text(), nl=False)


@model_app.command("pull")
def model_pull(name: Annotated[str, typer.Argument(help="Known model name.")] = "") -> None:
    """Download and convert a model into the local cache (default: SmolLM2-135M-Instruct)."""
    from inference.model_store import DEFAULT_MODEL, ModelPullError, pull

    try:
        pull(name or DEFAULT_MODEL)
    except ModelPullError as error:
        fail(str(error))


@model_app.command("list")
def model_list() -> None:
    """List known and cached models."""
    from inference.model_store import cache_dir, list_models

    typer.echo(f"model cache: {cache_dir()}")
    for name, description, pulled in list_models():
        typer.echo(f"  {'*' if pulled else ' '} {name:28} {description}{'' if pulled else '  (not pulled)'}")


@bench_app.command("inference")
def bench_inference(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    model: Annotated[str | None, typer.Option(help="Model to serve.")] = None,
    concurrency: Annotated[str, typer.Option(help="Comma-separated client counts.")] = "1,8,32",
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate per request.")] = 64,
    requests_per_client: Annotated[int, typer.Option(help="Requests each client sends.")] = 1,
    engines: Annotated[str, typer.Option(help="Engines to compare, first is the main one.")] = "dynamic",
    cold_starts: Annotated[int, typer.Option(help="Cold starts to time (median reported).")] = 5,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Batched service vs. batching off vs. the raw model; tokens/s, latency, TTFT, cold start."""
    from commands.bench_inference import BenchOptions, run_benchmark
    from inference.model_store import DEFAULT_MODEL

    check_writable(output, "--output")
    try:
        levels = [int(c) for c in concurrency.split(",")]
    except ValueError:
        fail(f"--concurrency must be comma-separated integers, got {concurrency!r}")
    options = BenchOptions(
        model=model or DEFAULT_MODEL,
        concurrency=levels,
        max_tokens=max_tokens,
        requests_per_client=requests_per_client,
        engines=engines.split(","),
        cold_starts=cold_starts,
    )
    results = run_benchmark(options, progress=lambda m: typer.echo(m, err=True))
    text = json.dumps(results, indent=2)
    if output:
        output.write_text(text + "\n")
    if as_json:
        typer.echo(text)
    else:
        from commands.bench_inference import summary

        typer.echo(summary(results))


@bench_app.command("store")
def bench_store(
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    postgres: Annotated[
        str | None, typer.Option(help="Also measure this PostgreSQL URL (its tables are created if missing).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Store ingest rate, the 30-day dashboard query, and one collect cycle's CPU cost."""
    import tempfile

    from commands.bench_collect import run_collect_benchmark
    from commands.bench_store import run_store_benchmark
    from inferplane.store import StoreError

    check_writable(output, "--output")
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="inferplane-bench-") as scratch:
        typer.echo("SQLite ...", err=True)
        results["sqlite"] = run_store_benchmark(f"sqlite:///{Path(scratch) / 'bench.db'}")
    if postgres:
        typer.echo("PostgreSQL ...", err=True)
        try:
            results["postgresql"] = run_store_benchmark(postgres)
        except StoreError as error:
            fail(str(error))
    typer.echo("collect cycle ...", err=True)
    results["collect_cycle"] = run_collect_benchmark()
    text = json.dumps(results, indent=2, default=str)
    if output:
        output.write_text(text + "\n")
    typer.echo(text)


@bench_app.command("alerts")
def bench_alerts(
    trace: Annotated[
        Path | None,
        typer.Option(help=f"Trace file ({TRACE_FORMATS}); default: the packaged code trace."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    seeds: Annotated[int, typer.Option(help="Replayed days, each with its own random spikes.")] = 10,
    spikes: Annotated[int, typer.Option(help="Spikes injected per day.")] = 20,
    spike_factor: Annotated[float, typer.Option(help="Spike height, as a multiple of the tokens.")] = 3.0,
    spike_minutes: Annotated[int, typer.Option(help="Spike length in minutes.")] = 5,
    injection: Annotated[
        str, typer.Option(help="scale: multiply the traffic; surge: add (factor-1) x the mean on top.")
    ] = "scale",
    workload: Annotated[
        str,
        typer.Option(help="trace: days of the trace's rotated copies; daily: generated days, daily cycle."),
    ] = "trace",
    seed: Annotated[int, typer.Option(help="The first seed (seeds seed .. seed + seeds - 1).")] = 7,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Token-spike rule on a replayed trace with injected spikes: precision, recall, delay."""
    from commands.bench_alerts import run_alert_benchmark

    if trace is not None and not trace.is_file():
        fail(f"--trace {trace}: no such file")
    for name, value in (("--seeds", seeds), ("--spikes", spikes), ("--spike-minutes", spike_minutes)):
        if value < 1:
            fail(f"{name} must be at least 1, got {value}")
    if not (math.isfinite(spike_factor) and spike_factor > 1):
        fail(f"--spike-factor must be a finite number above 1 (a spike rises), got {spike_factor}")
    check_writable(output, "--output")
    if injection not in ("scale", "surge"):
        fail(f"--injection must be scale or surge, got {injection!r}")
    if workload not in ("trace", "daily"):
        fail(f"--workload must be trace or daily, got {workload!r}")
    try:
        report = run_alert_benchmark(
            str(trace) if trace else None,
            seed=seed,
            seeds=seeds,
            workload=workload,  # type: ignore[arg-type]
            spikes=spikes,
            spike_factor=spike_factor,
            spike_minutes=spike_minutes,
            injection=injection,  # type: ignore[arg-type]
        )
    except ValueError as error:
        fail(str(error))
    text = json.dumps(report, indent=2)
    if output:
        output.write_text(text + "\n")
    if as_json:
        typer.echo(text)
    else:
        delay = report["median_detection_delay_seconds"]
        ceiling = report["window_mean_ceiling_recall"]
        typer.echo(
            f"precision {report['precision']:.3f}  recall {report['recall']:.3f}  "
            f"median delay {'-' if delay is None else f'{delay:.0f} s'}  "
            f"missed {report['missed']}  alerts without injection {report['alerts_without_injection']}  "
            f"ceiling (window-mean rules, <=120 s) {ceiling['within_3_minutes']:.3f}"
            f"\n{report['method']}"
        )


def main() -> None:
    app(prog_name="inferplane")


if __name__ == "__main__":
    main()
