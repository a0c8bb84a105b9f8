"""One cost row per period: the key no longer includes ``period_end``.

Before, each estimate of the current hour (21:00-21:05, 21:00-21:10, ...) was a row of
its own and every reader summed them all, so an hour was counted about six times. The
key is now (period_start, endpoint, service, source): a period's estimate replaces its
earlier self as it grows, and a restated billed day replaces the day. Duplicates already
stored are collapsed to the longest row of each period (the latest estimate; for equal
ends, the newest row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY = ("period_start", "endpoint", "service", "source")


def upgrade() -> None:
    costs = sa.table(
        "costs",
        sa.column("id", sa.Integer),
        sa.column("period_start", sa.DateTime(timezone=True)),
        sa.column("period_end", sa.DateTime(timezone=True)),
        sa.column("endpoint", sa.String),
        sa.column("service", sa.String),
        sa.column("source", sa.String),
    )
    other = costs.alias("other")
    same_period = sa.and_(*(other.c[name] == costs.c[name] for name in _KEY))
    # A row is dropped when another row of its period is longer, or as long and newer.
    better = sa.exists().where(
        same_period,
        sa.or_(
            other.c.period_end > costs.c.period_end,
            sa.and_(other.c.period_end == costs.c.period_end, other.c.id > costs.c.id),
        ),
    )
    op.execute(sa.delete(costs).where(better))
    with op.batch_alter_table("costs") as batch:
        batch.drop_constraint("uq_costs_period", type_="unique")
        batch.create_unique_constraint("uq_costs_period", list(_KEY))


def downgrade() -> None:
    with op.batch_alter_table("costs") as batch:
        batch.drop_constraint("uq_costs_period", type_="unique")
        batch.create_unique_constraint(
            "uq_costs_period", ["period_start", "period_end", "endpoint", "service", "source"]
        )
