"""``inferplane dashboard``: start the Streamlit dashboard over a store.

It runs ``python -m streamlit run dashboard/app.py`` as a child, bound to 127.0.0.1
unless ``--host`` says otherwise, and hands it the store URL and config path through
environment variables (``dashboard.data``): a PostgreSQL URL may hold a password, and
argv is visible to every user of the machine. It prints the dashboard's URL, never the
store's. ``--sample-data`` writes a sample store and config (``commands.sample``) into
a temporary folder, removed on exit, and opens the dashboard over it.

The store is only checked for reachability, never migrated: the dashboard reads. A
SQLite store must exist (opening a mistyped path would create an empty file there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from commands.cli_common import fail, resolve_config

__all__ = ["APP", "dashboard", "streamlit_argv"]

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
_STOP_GRACE_S = 10


def streamlit_argv(host: str, port: int) -> list[str]:
    """The child's command line: headless, no usage statistics, no file watcher (the
    dashboard's code does not change under a running server), and a toolbar without
    Streamlit's developer entries ("Deploy", rerun settings): the viewer sees the app."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


def dashboard(
    store: Annotated[
        str | None, typer.Option(help="store URL (default: the config's store, else the embedded SQLite)")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="inferplane.yaml: prices, latency targets and schedules; default: ./inferplane.yaml, "
            "else the built-in one"
        ),
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to serve on")] = 8501,
    host: Annotated[str, typer.Option(help="address to bind; only this machine by default")] = "127.0.0.1",
    sample_data: Annotated[
        bool, typer.Option("--sample-data", help="open the dashboard over a generated sample store")
    ] = False,
) -> None:
    """Start the dashboard (Streamlit) over a store; Ctrl-C stops it."""
    if sample_data and (store is not None or config is not None):
        fail("--sample-data brings its own store and config; leave out --store and --config")
    folder = tempfile.mkdtemp(prefix="inferplane-sample-") if sample_data else None
    try:
        if folder is not None:
            store_url, config = _sample(Path(folder))
        else:
            config = resolve_config(config)
            store_url = _store_url(store, config)
            _check_sqlite_file(store_url)
        _check_reachable(store_url)
        env = {**os.environ, "INFERPLANE_DASHBOARD_STORE": store_url}
        env.pop("INFERPLANE_DASHBOARD_NOW", None)  # a live dashboard reads the clock
        if config is not None:
            env["INFERPLANE_DASHBOARD_CONFIG"] = str(config.resolve())
        typer.echo(f"dashboard: http://{host}:{port}" + (f" (sample data in {folder})" if folder else ""))
        code = _run(streamlit_argv(host, port), env)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    raise typer.Exit(code)


def _sample(folder: Path) -> tuple[str, Path]:
    from commands.sample import write_sample

    typer.echo("writing 7 days of sample data for 4 endpoints...")
    sample = write_sample(folder, now=datetime.now(UTC), days=7, endpoints=4, seed=0)
    return sample.store_url, sample.config_path


def _store_url(store: str | None, config: Path | None) -> str:
    from inferplane.config import ConfigError, load_config
    from inferplane.store import resolve_store_url

    if config is None:
        return resolve_store_url(store)
    if not config.is_file():
        fail(f"--config {config}: no such file")
    try:
        settings = load_config(config)
    except ConfigError as error:
        fail(str(error))
    try:
        return resolve_store_url(store, settings.store.url, settings.store.url_env)
    except ConfigError as error:  # url_env names a variable that is not set
        fail(str(error))


def _check_sqlite_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist: connecting would create it empty."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return  # not a URL: _check_reachable names the problem
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return
    if not Path(database).is_file():
        fail(
            f"no store at {database}: the dashboard only reads a store, it creates none. Fill it "
            "first with `inferplane up --config inferplane.yaml` (or `inferplane collect`), check "
            "the path, or look around with `inferplane dashboard --sample-data`"
        )


def _check_reachable(url: str) -> None:
    """Connect once, so that a wrong URL fails here, named, rather than in the browser."""
    from inferplane.store import StoreError
    from inferplane.store.engine import create_store_engine
    from inferplane.store.errors import translate_errors

    try:
        with translate_errors(url, "connect to the store"):
            engine = create_store_engine(url)
            try:
                with engine.connect():
                    pass
            finally:
                engine.dispose()
    except StoreError as error:  # its message hides the password
        fail(str(error))


def _run(argv: list[str], env: dict[str, str]) -> int:
    """Run Streamlit until it exits; SIGTERM or Ctrl-C stop it (SIGTERM, then SIGKILL)."""
    child = subprocess.Popen(argv, env=env)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        try:
            child.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
