"""The store's exceptions, and the translation of database errors at its boundary.

Exception tree::

    StoreError                 anything the store could not do; the message names the
                               store URL (password hidden) and the fix; the database
                               driver's exception is chained as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc as sa_exc
from alembic.util import CommandError
from sqlalchemy.engine import URL, make_url

__all__ = ["URL_FIX", "StoreError", "first_line", "safe_url", "translate_errors"]


class StoreError(Exception):
    """The store could not be opened, migrated, read or written."""


def safe_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``, safe to log and show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return "<unparsable store URL>"


# Fixes by error kind: the first matching class wins, so subclasses come first.
_FIXES: tuple[tuple[type[BaseException], str], ...] = (
    (
        sa_exc.OperationalError,
        "check that the database server is running and reachable and that the store URL "
        "(host, port, database, user) is right; for SQLite, that the file's folder is writable",
    ),
    (sa_exc.IntegrityError, "the data breaks a constraint of the store schema; fix the input"),
    (
        sa_exc.ProgrammingError,
        "the schema may be out of date or foreign; run `inferplane` with a fresh store",
    ),
    (CommandError, "the store's migration history does not match this version of inferplane"),
    (sa_exc.ArgumentError, "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"),
    (sa_exc.NoSuchModuleError, "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"),
)
URL_FIX = "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"


def first_line(exc: BaseException, url: str | URL) -> str:
    """The first line of ``exc``'s message, with the password of ``url`` hidden."""
    return _first_line(exc, _password(url))


def _first_line(exc: BaseException, password: str | None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # Drivers do not echo passwords today; scrub anyway, a leaked secret is not recoverable.
    return line.replace(password, "***") if password else line


def _password(url: str | URL) -> str | None:
    try:
        return make_url(url).password  # type: ignore[return-value]
    except (sa_exc.ArgumentError, ValueError):
        return None


@contextmanager
def translate_errors(url: str | URL, action: str) -> Iterator[None]:
    """Turn SQLAlchemy and Alembic errors raised inside into ``StoreError`` (chained)."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, CommandError) as exc:
        fix = next((f for kind, f in _FIXES if isinstance(exc, kind)), "see the chained error")
        detail = _first_line(exc, _password(url))
        raise StoreError(f"store {safe_url(url)}: could not {action}: {detail}. Fix: {fix}") from exc
