"""The telemetry store: samples, rollups, costs, scaling and alert events.

SQLite in WAL mode is the embedded default (one file, many readers, one writer); a
``postgresql+psycopg://`` URL selects PostgreSQL. ``open_store`` migrates the schema to
the newest revision (Alembic, kept in ``migrations/``) before returning the store::

    store = open_store(default_store_url())
    store.write_samples(samples)
    store.rollup(now)
    points = store.read_series("chat", "gpu_utilization", start, end)

Errors: every database failure surfaces as ``StoreError`` (see ``errors``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from inferplane.store.engine import create_store_engine, migrate, sqlite_file
from inferplane.store.errors import URL_FIX, StoreError, first_line, safe_url, translate_errors
from inferplane.store.store import Store

if TYPE_CHECKING:
    from inferplane.config import InferplaneConfig

__all__ = [
    "STORE_URL_ENV",
    "Store",
    "StoreError",
    "default_store_url",
    "open_configured_store",
    "open_store",
    "resolve_store_url",
]

# A store URL in the environment beats the config's: how `inferplane up` hands its
# --store to the processes it starts without a password ever reaching their argv.
STORE_URL_ENV = "INFERPLANE_STORE_URL"


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    """``sqlite:///`` URL of ``inferplane.db`` in ``$INFERPLANE_HOME`` (default
    ``~/.local/share/inferplane``); creates the folder."""
    env = os.environ if environ is None else environ
    home = env.get("INFERPLANE_HOME")
    if home:
        folder = Path(home).expanduser()
    else:
        base = Path(env["HOME"]) if env.get("HOME") else Path.home()
        folder = base / ".local" / "share" / "inferplane"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'inferplane.db'}"


def resolve_store_url(
    override: str | None,
    url: str | None = None,
    url_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The store to open: ``override`` (a ``--store`` option), else ``$INFERPLANE_STORE_URL``,
    else the config's ``url``, else the variable its ``url_env`` names, else the embedded
    SQLite default."""
    from inferplane.config import resolve_secret

    env = os.environ if environ is None else environ
    return (
        override
        or env.get(STORE_URL_ENV)
        or url
        or resolve_secret(url_env, None, environ)
        or default_store_url(environ)
    )


def open_configured_store(
    config: InferplaneConfig | None,
    override: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    existing: bool = False,
) -> Store:
    """Open the store a configuration names (``resolve_store_url`` decides which; no
    config means the override, the environment or the embedded default)."""
    if config is None:
        return open_store(resolve_store_url(override, environ=environ), existing=existing)
    section = config.store
    return open_store(resolve_store_url(override, section.url, section.url_env, environ), existing=existing)


def open_store(url: str, *, existing: bool = False) -> Store:
    """Open the store at ``url``, upgrade its schema to head, and return it. ``existing``:
    a SQLite file must be there already (a command that only reads would otherwise make
    an empty store at a mistyped path and report it as one with nothing in it).

    Raises ``StoreError`` when the URL is malformed, its driver missing, or the database
    cannot be reached or migrated.
    """
    if existing:
        _require_file(url)
    with translate_errors(url, "open and migrate the store"):
        try:
            engine = create_store_engine(url)
        except ImportError as error:  # mysql://, postgresql+psycopg2://: not a driver we ship
            raise StoreError(
                f"store {safe_url(url)}: unsupported database driver ({first_line(error, url)}). "
                f"Fix: {URL_FIX}"
            ) from error
        except ValueError as error:  # a port that is not a number
            raise StoreError(
                f"store {safe_url(url)}: malformed URL: {first_line(error, url)}. Fix: {URL_FIX}"
            ) from error
        except OSError as error:  # the SQLite file's folder cannot be made
            raise StoreError(
                f"store {safe_url(url)}: could not create its folder: {first_line(error, url)}. "
                "Fix: a path in a folder you can write to"
            ) from error
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
    return Store(engine)


def _require_file(url: str) -> None:
    try:
        path = sqlite_file(make_url(url))
    except (ArgumentError, ValueError):
        return  # reported, with its fix, where the store is opened
    if path is not None and not path.is_file():
        raise StoreError(
            f"store {safe_url(url)}: no store at {path}. Fix: check the path (--store, "
            f"{STORE_URL_ENV}, store.url in the config), or collect into it first "
            "(inferplane up, inferplane collect)"
        )
