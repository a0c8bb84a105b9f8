"""``inferplane bench dashboard``: how long every dashboard page takes to render.

It writes a sample store (``dashboard.sample``, 30 days of 20 endpoints by default) in
a temporary folder, or uses ``--store`` and ``--config``, then renders each page with
Streamlit's ``AppTest`` (as the page tests do): per run, once with every cache cleared
(cold) and once more (warm). It prints the median of each, the machine and the data
size. The issue's goal: every page within 2 s.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from inferplane.cli_common import fail

__all__ = ["GOAL_SECONDS", "bench_dashboard", "summarize"]

GOAL_SECONDS = 2.0
_DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
# How the app learns its store and config (what ``inferplane dashboard`` hands it).
_STORE_ENV, _CONFIG_ENV = "INFERPLANE_DASHBOARD_STORE", "INFERPLANE_DASHBOARD_CONFIG"


def bench_dashboard(
    days: Annotated[int, typer.Option(min=1, help="days of sample data")] = 30,
    endpoints: Annotated[int, typer.Option(min=1, help="endpoints in the sample")] = 20,
    runs: Annotated[int, typer.Option(min=1, help="cold and warm renders per page")] = 5,
    store: Annotated[str | None, typer.Option(help="a store URL instead of a sample (with --config)")] = None,
    config: Annotated[Path | None, typer.Option(help="the inferplane.yaml of --store")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Render every dashboard page cold and warm; print median seconds per page."""
    if (store is None) != (config is None):
        fail("--store and --config go together (or leave both out for a generated sample)")
    if config is not None and not config.is_file():
        fail(f"--config {config}: no such file")
    with tempfile.TemporaryDirectory(prefix="inferplane-bench-") as folder:
        generated_s = None
        if store is None or config is None:
            from dashboard.sample import write_sample

            clock = time.perf_counter()
            sample = write_sample(Path(folder), now=datetime.now(UTC), days=days, endpoints=endpoints)
            store, config, generated_s = sample.store_url, sample.config_path, time.perf_counter() - clock
        timings = measure_pages(store, config, runs)
        data = _data_size(store)
    report = summarize(timings, data, generated_s, {"days": days, "endpoints": endpoints, "runs": runs})
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def page_scripts() -> list[Path]:
    """The entry script first, then every page, in name order."""
    return [_DASHBOARD / "app.py", *sorted((_DASHBOARD / "pages").glob("*.py"))]


def measure_pages(store_url: str, config: Path, runs: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per page and run: ``{"page": {"cold": [...], "warm": [...]}}``."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    entry, *pages = page_scripts()
    timings: dict[str, dict[str, list[float]]] = {}
    with _environment({_STORE_ENV: store_url, _CONFIG_ENV: str(config)}):
        for page in [entry, *pages]:
            seen = timings.setdefault(page.stem, {"cold": [], "warm": []})
            for _ in range(runs):
                app = AppTest.from_file(str(entry), default_timeout=120)
                if page != entry:
                    app.switch_page(str(page.relative_to(_DASHBOARD)))
                st.cache_data.clear()
                st.cache_resource.clear()
                for kind in ("cold", "warm"):
                    clock = time.perf_counter()
                    app.run()
                    seen[kind].append(time.perf_counter() - clock)
                    if app.exception:
                        raise RuntimeError(f"{page.name}: {app.exception[0].value}")
    return timings


def summarize(
    timings: Mapping[str, Mapping[str, list[float]]],
    data: Mapping[str, Any],
    generated_s: float | None,
    settings: Mapping[str, int],
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
    machine, data = report["machine"], report["data"]
    lines.append(f"machine: {machine['platform']}, {machine['cores']} cores, Python {machine['python']}")
    rows = ", ".join(f"{table} {count:,}" for table, count in data.get("rows", {}).items())
    lines.append(f"data: {data.get('megabytes', '?')} MB; rows: {rows}")
    if report["sample_generation_s"] is not None:
        settings = report["settings"]
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
