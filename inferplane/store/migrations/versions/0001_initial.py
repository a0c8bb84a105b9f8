"""Initial tables: samples and rollups, costs, scaling and alert events, source gaps.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types: later edits to schema.py must not change history.
_TIME = sa.DateTime(timezone=True)


def _series_key(time_name: str) -> list[sa.Column[object]]:
    return [
        sa.Column("endpoint", sa.String(200), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("replica", sa.String(200), primary_key=True),
        sa.Column(time_name, _TIME, primary_key=True),
    ]


def _rollup(name: str) -> None:
    op.create_table(
        name,
        *_series_key("bucket"),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
    )
    op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def upgrade() -> None:
    op.create_table("samples", *_series_key("time"), sa.Column("value", sa.Float, nullable=False))
    op.create_index("ix_samples_time", "samples", ["time"])
    _rollup("samples_1m")
    _rollup("samples_1h")
    op.create_table(
        "rollup_state",
        sa.Column("resolution", sa.String(8), primary_key=True),
        sa.Column("pending_from", _TIME, nullable=True),
    )
    op.bulk_insert(
        sa.table("rollup_state", sa.column("resolution", sa.String)),
        [{"resolution": "1m"}, {"resolution": "1h"}],
    )
    op.create_table(
        "costs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("period_start", _TIME, nullable=False),
        sa.Column("period_end", _TIME, nullable=False),
        sa.Column("endpoint", sa.String(400), nullable=False),
        sa.Column("service", sa.String(200), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.UniqueConstraint(
            "period_start", "period_end", "endpoint", "service", "source", name="uq_costs_period"
        ),
        sa.CheckConstraint("source IN ('estimated', 'billed')", name="ck_costs_source"),
    )
    op.create_index("ix_costs_period_start", "costs", ["period_start"])
    _events()


def _events() -> None:
    op.create_table(
        "scaling_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("from_replicas", sa.Integer, nullable=False),
        sa.Column("to_replicas", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
    )
    op.create_index("ix_scaling_events_time", "scaling_events", ["time"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alert_events_status"),
    )
    op.create_index("ix_alert_events_time", "alert_events", ["time"])
    op.create_index("ix_alert_events_fingerprint", "alert_events", ["fingerprint"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("fingerprint", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_alert_deliveries_time", "alert_deliveries", ["time"])
    op.create_index("ix_alert_deliveries_fingerprint", "alert_deliveries", ["fingerprint"])
    op.create_table(
        "source_gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("start", _TIME, nullable=False),
        sa.Column("end", _TIME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_source_gaps_start", "source_gaps", ["start"])


def downgrade() -> None:
    for table in (
        "source_gaps",
        "alert_deliveries",
        "alert_events",
        "scaling_events",
        "costs",
        "rollup_state",
        "samples_1h",
        "samples_1m",
        "samples",
    ):
        op.drop_table(table)
