"""What every ``inferplane`` command shares: how a command fails, how it reads a duration,
which configuration it uses, and how it loads that configuration and opens its store
(once per process: every room is handed the same two)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from inferplane.config import InferplaneConfig
    from inferplane.store import Store

__all__ = [
    "CONFIG_HELP",
    "LOCAL_CONFIG",
    "TRACE_FORMATS",
    "ConfigOption",
    "StoreOption",
    "built_in_config",
    "choose_config",
    "close_room",
    "fail",
    "log_config",
    "log_config_line",
    "open_config_and_store",
    "parse_duration",
    "resolve_config",
]

log = logging.getLogger("inferplane.config")

LOCAL_CONFIG = Path("inferplane.yaml")
CONFIG_HELP = "The configuration file; default: ./inferplane.yaml, else the built-in one."
STORE_HELP = "Store URL (default: the config's, else SQLite)."
# What inference.trace.load_trace reads, for every --trace option's help.
TRACE_FORMATS = "an Azure LLM trace CSV, a BurstGPT CSV or Mooncake JSON lines"
ConfigOption = Annotated[Path | None, typer.Option("--config", help=CONFIG_HELP)]
StoreOption = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST_S = 3650 * 86400  # ten years


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1.5h``, ``1d`` or a sum such as ``1h30m``, positive; ValueError
    naming the format otherwise."""
    spec = text.strip().lower()
    parts = _DURATION_PART.findall(spec)
    seconds = sum(float(number) * _SECONDS[unit] for number, unit in parts)
    if not parts or "".join(n + u for n, u in parts) != spec or seconds <= 0:
        raise ValueError(
            f"duration {text!r} does not parse; expected a positive number with s, m, h or d "
            "(e.g. 30m, 2h) or a sum such as 1h30m"
        )
    if seconds > _LONGEST_S:  # an override or a silence ends at now + this: a date must hold it
        raise ValueError(f"duration {text!r} is longer than {_LONGEST_S // 86400} days")
    return timedelta(seconds=seconds)


def check_writable(path: Path | None, option: str) -> None:
    """Exit 2 naming ``option`` unless ``path`` can be written (the OS decides: a missing
    folder, a folder, no permission): before work that may take minutes, not after it.
    Leaves no file behind that was not there. No path (the option not given): nothing."""
    if path is None:
        return
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        fail(f"{option} {path}: {error.strerror or error}")
    if not existed:
        path.unlink()


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with status 2 (bad input)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def built_in_config() -> Path:
    """The built-in configuration (``inferplane config example``) as a file: the one
    ``inferplane up`` writes and runs on, under ``$INFERPLANE_HOME/run/``, so every command
    run after it reads the same endpoints and the same store."""
    from commands.up_plan import inferplane_home
    from inferplane.config import example_config_text

    path = inferplane_home() / "run" / "inferplane.yaml"
    text = example_config_text()
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


def choose_config(path: Path | None) -> tuple[Path, str]:
    """The configuration a command uses and the line that says so: ``path`` when given,
    else ``./inferplane.yaml`` when there is one, else the built-in one."""
    if path is not None:
        return path, f"configuration: {path}"
    if LOCAL_CONFIG.is_file():
        return LOCAL_CONFIG, f"configuration: {LOCAL_CONFIG} (found here)"
    built_in = built_in_config()
    return built_in, (
        f"configuration: the built-in one ({built_in}); --config FILE or an inferplane.yaml here uses yours"
    )


def resolve_config(path: Path | None) -> Path:
    """``choose_config``, saying which as a line on stderr. Commands that log (and may log
    JSON, one object a line) use ``log_config`` after setting up logging instead."""
    chosen, line = choose_config(path)
    typer.echo(line, err=True)
    return chosen


def log_config(path: Path | None) -> Path:
    """``choose_config``, saying which through the log (call it after ``start_logging``)."""
    chosen, line = choose_config(path)
    log.info("%s", line)
    return chosen


def log_config_line(line: str) -> None:
    """Log ``choose_config``'s line (for commands that need the file before logging starts)."""
    log.info("%s", line)


def open_config_and_store(
    config: Path, store: str | None, *, existing: bool = False
) -> tuple[InferplaneConfig, Store]:
    """Load ``config`` and open the store it names (``store`` overrides), once for every
    room the command builds; a bad file or an unreachable store fails the command.
    ``existing``: a command that only reads needs a SQLite store that is there already."""
    from inferplane.config import ConfigError, load_config
    from inferplane.store import StoreError, open_configured_store

    try:
        settings = load_config(config)
        return settings, open_configured_store(settings, store, existing=existing)
    except (ConfigError, StoreError) as error:
        fail(str(error))


def close_room(room: Any, opened: Any) -> None:
    """A room the command built (its sources, targets or channels), then the store the
    command opened for it: a room does not close the store it was handed."""
    try:
        room.close()
    finally:
        opened.close()
