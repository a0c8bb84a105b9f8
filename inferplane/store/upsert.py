"""INSERT .. ON CONFLICT DO UPDATE for the dialects the store supports.

SQLite and PostgreSQL spell upsert the same way in SQLAlchemy, but through different
``insert`` constructs; this picks the right one from the dialect name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["upsert"]

_INSERTS: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def upsert(dialect: str, table: sa.Table, keys: Sequence[str], select: sa.Select[Any] | None = None) -> Any:
    """An insert into ``table`` that updates every non-key column when ``keys`` collide.

    With ``select`` the rows come from that query (INSERT .. SELECT), else from the
    parameters passed at execution (executemany).
    """
    try:
        insert = _INSERTS[dialect](table)
    except KeyError:
        raise ValueError(f"the store supports sqlite and postgresql, not {dialect}") from None
    if select is not None:
        insert = insert.from_select([c.name for c in select.selected_columns], select)
    updates = {
        c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys and not c.primary_key
    }
    return insert.on_conflict_do_update(index_elements=list(keys), set_=updates)
