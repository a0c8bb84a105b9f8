"""``inferplane bench dashboard``: how long every dashboard page takes to render.

It writes a sample store (``commands.sample``, 30 days of 20 endpoints by default) in
a temporary folder, or uses ``--store`` and ``--config``, then renders each page with
Streamlit's ``AppTest`` (as the page tests do) over the sidebar's time range that covers
the data (``--range-days``, by default ``--days``: the 30-day view of 30 days). It
prints the median of each, the machine and the data size. The issue's goal: with 30
days x 20 endpoints, every page within 2 s.

``COLD`` and ``WARM`` say what each figure measures: a run renders the page once
uncounted in a fresh ``AppTest`` (Streamlit's start-up work, paid once by a real server),
clears every cache, then times a render (cold: every store read and the engine afresh)
and one more (warm: the reads cached, as for a second viewer within the TTL).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from commands.cli_common import fail

__all__ = [
    "COLD",
    "GOAL_SECONDS",
    "WARM",
    "PageError",
    "bench_dashboard",
    "measure_pages",
    "range_label",
    "summarize",
]

GOAL_SECONDS = 2.0
COLD = (
    "cold: a page's first render after every st.cache_data and st.cache_resource cache was "
    "cleared (store reads and the engine afresh), in an AppTest that had rendered it once "
    "uncounted (Streamlit's one-off start-up work, which a server pays once when it starts)"
)
WARM = "warm: the same page rendered again right after, its store reads cached (30 s TTL)"
_DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"


class PageError(Exception):
    """A page raised while rendering: there is no render time to report."""


def bench_dashboard(
    days: Annotated[int, typer.Option(min=1, help="days of sample data")] = 30,
    endpoints: Annotated[int, typer.Option(min=1, help="endpoints in the sample")] = 20,
    runs: Annotated[int, typer.Option(min=1, help="cold and warm renders per page")] = 5,
    range_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="days the pages show: the shortest sidebar range that covers them (default: --days)"
        ),
    ] = None,
    store: Annotated[str | None, typer.Option(help="a store URL instead of a sample (with --config)")] = None,
    config: Annotated[Path | None, typer.Option(help="the inferplane.yaml of --store")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Render every dashboard page cold and warm; print median seconds per page."""
    if (store is None) != (config is None):
        fail("--store and --config go together (or leave both out for a generated sample)")
    if config is not None and not config.is_file():
        fail(f"--config {config}: no such file")
    shown = range_label(range_days or days)
    with tempfile.TemporaryDirectory(prefix="inferplane-bench-") as folder:
        generated_s = None
        if store is None or config is None:
            from commands.sample import write_sample

            clock = time.perf_counter()
            sample = write_sample(Path(folder), now=datetime.now(UTC), days=days, endpoints=endpoints)
            store, config, generated_s = sample.store_url, sample.config_path, time.perf_counter() - clock
        try:
            timings = measure_pages(store, config, runs, shown)
        except PageError as error:
            typer.secho(f"error: {error}", err=True)
            raise typer.Exit(1) from error
        data = _data_size(store)
    settings = {"days": days, "endpoints": endpoints, "runs": runs, "range": shown}
    report = summarize(timings, data, generated_s, settings)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def page_scripts() -> list[Path]:
    """Every page script, in name order (the entry script runs first in each render)."""
    return sorted((_DASHBOARD / "views").glob("*.py"))


def range_label(days: int) -> str:
    """The sidebar's shortest time range of at least ``days`` days (its longest beyond)."""
    with _no_warnings():  # importing cached functions outside a server warns "no runtime"
        from dashboard.filters import RANGES

    fitting = [label for label, span in RANGES.items() if span >= timedelta(days=days)]
    return min(fitting, key=RANGES.__getitem__) if fitting else max(RANGES, key=RANGES.__getitem__)


def measure_pages(
    store_url: str, config: Path, runs: int, shown: str = "Last 30 days"
) -> dict[str, dict[str, list[float]]]:
    """Seconds per page and run over the time range ``shown`` (a sidebar label):
    ``{"page": {"cold": [...], "warm": [...]}}``."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    with _no_warnings():  # importing cached functions outside a server warns "no runtime"
        from dashboard.data import CONFIG_ENV, STORE_ENV

    entry = _DASHBOARD / "app.py"
    timings: dict[str, dict[str, list[float]]] = {}
    with _environment({STORE_ENV: store_url, CONFIG_ENV: str(config)}):
        # One render first, not counted: importing pandas, plotly and the pages is a cost
        # of the process starting, not of any page.
        with _no_warnings():  # AppTest itself warns "missing ScriptRunContext" when made
            warm_up = AppTest.from_file(str(entry), default_timeout=120)
        warm_up.run()
        for page in page_scripts():
            seen = timings.setdefault(page.stem, {"cold": [], "warm": []})
            for _ in range(runs):
                with _no_warnings():  # AppTest warns when made, clearing caches too
                    app = AppTest.from_file(str(entry), default_timeout=120)
                    app.switch_page(str(page.relative_to(_DASHBOARD)))
                    # A first render of each fresh AppTest is not counted: it pays
                    # Streamlit's one-off component scan (0.5-1.9 s), which a real
                    # server pays once when it starts, never per page view.
                    app.run()
                    app.session_state["range"] = shown  # as the sidebar sets it
                    st.cache_data.clear()
                    st.cache_resource.clear()
                for kind in ("cold", "warm"):
                    clock = time.perf_counter()
                    app.run()
                    seen[kind].append(time.perf_counter() - clock)
                    if app.exception:
                        raise PageError(f"page {page.name} raised: {app.exception[0].value}")
    return timings


def summarize(
    timings: Mapping[str, Mapping[str, list[float]]],
    data: Mapping[str, Any],
    generated_s: float | None,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The report: median cold and warm seconds per page, whether each meets the goal,
    the machine and the data (pure)."""
    pages = {
        page: {
            "cold_median_s": round(statistics.median(runs["cold"]), 3),
            "warm_median_s": round(statistics.median(runs["warm"]), 3),
            "cold_max_s": round(max(runs["cold"]), 3),
        }
        for page, runs in timings.items()
    }
    for figures in pages.values():
        figures["within_goal"] = figures["cold_median_s"] <= GOAL_SECONDS
    return {
        "goal_seconds": GOAL_SECONDS,
        "cold": COLD,
        "warm": WARM,
        "pages": pages,
        "all_within_goal": all(p["within_goal"] for p in pages.values()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cores": os.cpu_count(),
        },
        "data": dict(data),
        "sample_generation_s": None if generated_s is None else round(generated_s, 1),
        "settings": dict(settings),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table and a few lines."""
    lines = [
        "| page | cold median s | warm median s | cold max s | within 2 s |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for page, p in report["pages"].items():
        mark = "yes" if p["within_goal"] else "NO"
        lines.append(
            f"| {page} | {p['cold_median_s']:.3f} | {p['warm_median_s']:.3f} "
            f"| {p['cold_max_s']:.3f} | {mark} |"
        )
    machine, data, settings = report["machine"], report["data"], report["settings"]
    lines.append(f"time range shown: {settings.get('range', '?')}")
    lines.append(f"machine: {machine['platform']}, {machine['cores']} cores, Python {machine['python']}")
    rows = ", ".join(f"{table} {count:,}" for table, count in data.get("rows", {}).items())
    lines.append(f"data: {data.get('megabytes', '?')} MB; rows: {rows}")
    lines += [COLD, WARM]
    if report["sample_generation_s"] is not None:
        lines.append(
            f"sample: {settings['days']} days x {settings['endpoints']} endpoints, "
            f"written in {report['sample_generation_s']} s; {settings['runs']} runs per page"
        )
    return "\n".join(lines)


def _data_size(store_url: str) -> dict[str, Any]:
    """Rows per table (and the file size of a SQLite store)."""
    import sqlalchemy as sa

    from inferplane.store.engine import create_store_engine
    from inferplane.store.schema import metadata

    engine = create_store_engine(store_url)
    try:
        with engine.connect() as connection:
            rows = {
                name: int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()
    size: dict[str, Any] = {"rows": rows}
    if store_url.startswith("sqlite:///"):
        size["megabytes"] = round(Path(store_url.removeprefix("sqlite:///")).stat().st_size / 1e6, 1)
    return size


@contextmanager
def _no_warnings() -> Iterator[None]:
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
