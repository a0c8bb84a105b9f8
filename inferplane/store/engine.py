"""Engines for the two backends, and schema migration with Alembic.

SQLite (the embedded default) runs in WAL mode so dashboards and the CLI read while
the collector writes; PostgreSQL serves a team. Both migrate from empty to head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Engine, make_url

__all__ = ["BUSY_TIMEOUT_MS", "create_store_engine", "migrate", "read_only", "sqlite_file"]

BUSY_TIMEOUT_MS = 5000
_MIGRATIONS = Path(__file__).parent / "migrations"


def create_store_engine(url: str | URL) -> Engine:
    """An engine for ``url``: SQLite files get WAL pragmas; other URLs pass through."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = 5  # an unreachable server fails fast, not after minutes
        # A UTC session hands back UTC datetimes, so reads need no per-row conversion.
        # connect_args replace the URL's own ``options`` (e.g. a search_path): merge them.
        options = parsed.query.get("options", "")
        connect_args["options"] = (
            f"{options if isinstance(options, str) else ' '.join(options)} -c timezone=UTC"
        )
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL keeps its store in; None for other backends, an in-memory
    database or a ``file:`` URI (which SQLite opens as it says)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _sqlite_engine(url: URL) -> Engine:
    if (path := sqlite_file(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take
        # control of it (the SQLAlchemy recipe) and let the "begin" hook emit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def read_only(engine: Engine) -> Engine:
    """``engine`` with every write refused by the database itself (the dashboard's: it
    only reads, and a bug there must not be able to change the store)."""
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _query_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA query_only=ON")  # after the WAL pragmas above

        return engine
    return engine.execution_options(postgresql_readonly=True)  # every transaction READ ONLY


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (head by default) inside one transaction."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
