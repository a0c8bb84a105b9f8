"""Logging for every long-running command: ``--log-level`` and ``--log-format text|json``.

``json`` writes one JSON object a line (``time``, ``level``, ``logger``, ``message``, and
``exc_info`` with the traceback when there is one), for log shippers; ``text`` is for
people. Either way, values of secrets found in the environment (variables whose names
say key, token, secret, password or credential, and passwords inside ``*_URL`` values)
are replaced by ``***`` in the formatted line, whatever logged them::

    setup_logging("info", "json")        # ValueError naming the bad option otherwise

uvicorn configures its own loggers when a server starts; :func:`setup_logging` points its
default configuration at the root handler so that its lines come out in the same format.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any
from urllib.parse import urlsplit

from pythonjsonlogger.json import JsonFormatter

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "secret_values", "setup_logging"]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|CONNECTION_STRING", re.IGNORECASE)
# Shorter values would redact ordinary words and numbers all over the log.
_MIN_SECRET_LENGTH = 6
_MASK = "***"


def secret_values(environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> set[str]:
    """Secret values in ``environ``: variables named like secrets or listed in ``names``
    (comma-separated lists split, as ``INFERPLANE_API_KEYS``), and passwords in URLs."""
    env = os.environ if environ is None else environ
    extra = set(names)
    found: set[str] = set()
    for name, value in env.items():
        if name in extra or (_SECRET_NAME.search(name) and not name.endswith(("_FILE", "_ENV"))):
            found.add(value)
            found.update(part.strip() for part in value.split(","))
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.add(password)
    return {value for value in found if len(value) >= _MIN_SECRET_LENGTH}


class _Redacting(logging.Formatter):
    """Formats with ``inner``, then masks every secret value in the finished line."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        # The JSON form of a value differs when it holds quotes or backslashes.
        forms = {form for value in secrets for form in (value, json.dumps(value)[1:-1])}
        self.secrets = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, _MASK)
        return line


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes: a caller that swaps it
    (typer's test runner, a daemonizing wrapper) would otherwise leave us writing to a
    closed stream."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def _formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    return logging.Formatter(_TEXT_FORMAT)


def setup_logging(
    level: str = "info",
    log_format: str = "text",
    *,
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
    secret_names: Iterable[str] = (),
) -> logging.Handler:
    """Route every logger through one handler on ``stream`` (stderr) in ``log_format``.

    ``secret_names`` adds variables whose values are secrets although their names do not
    say so (a config's ``url_env``). Returns the handler. Raises ValueError naming the
    option when ``level`` or ``log_format`` is unknown.
    """
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    handler: logging.Handler = logging.StreamHandler(stream) if stream else _CurrentStderr()
    handler.setFormatter(_Redacting(_formatter(log_format), secret_values(environ, secret_names)))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request and probe
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # one line per job run
    _route_uvicorn_to_root()
    return handler


def _route_uvicorn_to_root() -> None:
    # uvicorn.Config's default log_config is this very dict (bound at definition time), so
    # it is changed in place: uvicorn's loggers then propagate to our handler instead of
    # installing their own text handlers.
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:
        return
    routed: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.access")},
    }
    LOGGING_CONFIG.clear()
    LOGGING_CONFIG.update(routed)
