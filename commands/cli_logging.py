"""The ``--log-level`` and ``--log-format`` options every long-running command takes.

Both also read the environment (``INFERPLANE_LOG_LEVEL``, ``INFERPLANE_LOG_FORMAT``), so
``inferplane up`` hands its choice down to the processes it starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from commands.cli_common import fail

__all__ = ["LogFormatOption", "LogLevelOption", "start_logging"]

LogLevelOption = Annotated[
    str, typer.Option(envvar="INFERPLANE_LOG_LEVEL", help="debug, info, warning or error.")
]
LogFormatOption = Annotated[
    str,
    typer.Option(envvar="INFERPLANE_LOG_FORMAT", help="text, or json: one JSON object a line."),
]


def start_logging(level: str, log_format: str, secret_names: Iterable[str] = ()) -> None:
    """Set up logging (``inference.logs.setup_logging``); a bad option exits 2 naming it."""
    from inference.logs import setup_logging

    try:
        setup_logging(level, log_format, secret_names=secret_names)
    except ValueError as error:
        fail(str(error))
