"""Daily rollups: ``samples_1d`` (from the hourly buckets) and ``costs_1d`` (the cost
rows summed per UTC day, endpoint and source), so a 30-day overview reads 30 rows a
series instead of 720; and an (endpoint, metric, time) index on the raw samples and
every rollup table, which series reads match on.

Existing data is carried over: ``costs_1d`` is filled from the cost rows here, and the
daily sample rollup is marked pending from the oldest hourly bucket, so the next rollup
computes every day (until then readers fold the hourly buckets into days themselves).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)
_ROLLUPS = ("samples_1m", "samples_1h", "samples_1d")


def _day(dialect: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # The store's own day bucket (inferplane.store.rollup.bucket_expression, frozen here):
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" text, PostgreSQL timestamptz.
    if dialect == "sqlite":
        return sa.func.substr(column, 1, 10, type_=sa.String) + " 00:00:00.000000"
    return sa.func.date_trunc("day", column, "UTC", type_=_TIME)


def upgrade() -> None:
    op.create_table(
        "samples_1d",
        sa.Column("endpoint", sa.String(200), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("replica", sa.String(200), primary_key=True),
        sa.Column("bucket", _TIME, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
    )
    op.create_index("ix_samples_1d_bucket", "samples_1d", ["bucket"])
    # Series reads give endpoints, metrics and a range of buckets; the primary key has
    # the replica third, so without this a range walks every replica's whole retention.
    for name in _ROLLUPS:
        op.create_index(f"ix_{name}_series", name, ["endpoint", "metric", "bucket"])
    op.create_index("ix_samples_series", "samples", ["endpoint", "metric", "time"])
    op.create_table(
        "costs_1d",
        sa.Column("period_start", _TIME, primary_key=True),
        sa.Column("endpoint", sa.String(400), primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("period_end", _TIME, nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
    )
    op.create_index("ix_costs_1d_endpoint", "costs_1d", ["endpoint"])
    hourly = sa.table("samples_1h", sa.column("bucket", _TIME))
    op.bulk_insert(sa.table("rollup_state", sa.column("resolution", sa.String)), [{"resolution": "1d"}])
    state = sa.table("rollup_state", sa.column("resolution", sa.String), sa.column("pending_from", _TIME))
    oldest = sa.select(sa.func.min(hourly.c.bucket)).scalar_subquery()
    op.execute(sa.update(state).where(state.c.resolution == "1d").values(pending_from=oldest))
    costs = sa.table(
        "costs",
        sa.column("period_start", _TIME),
        sa.column("period_end", _TIME),
        sa.column("endpoint", sa.String),
        sa.column("source", sa.String),
        sa.column("amount", sa.Float),
    )
    day = _day(op.get_bind().dialect.name, costs.c.period_start)
    daily = sa.select(
        day, costs.c.endpoint, costs.c.source, sa.func.max(costs.c.period_end), sa.func.sum(costs.c.amount)
    ).group_by(day, costs.c.endpoint, costs.c.source)
    columns = ("period_start", "endpoint", "source", "period_end", "amount")
    target = sa.table("costs_1d", *(sa.column(name) for name in columns))
    op.execute(sa.insert(target).from_select(list(target.c.keys()), daily))


def downgrade() -> None:
    op.drop_index("ix_samples_series", "samples")
    for name in _ROLLUPS:
        op.drop_index(f"ix_{name}_series", name)
    op.drop_table("costs_1d")
    op.execute("DELETE FROM rollup_state WHERE resolution = '1d'")
    op.drop_index("ix_samples_1d_bucket", "samples_1d")
    op.drop_table("samples_1d")
