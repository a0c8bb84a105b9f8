"""The store's tables as SQLAlchemy Core objects, used by queries.

The migrations in ``migrations/versions`` create these tables; they are frozen copies,
so a change here needs a new migration as well.
"""

from __future__ import annotations

import sqlalchemy as sa

from inferplane.store.coltypes import UTCDateTime

__all__ = [
    "ROLLUP_TABLES",
    "alert_deliveries",
    "alert_events",
    "alert_silences",
    "control_state",
    "costs",
    "costs_1d",
    "metadata",
    "rollup_state",
    "samples",
    "samples_1d",
    "samples_1h",
    "samples_1m",
    "scaling_events",
    "source_gaps",
]

metadata = sa.MetaData()

# The natural key is the primary key: re-writing a reading updates it in place.
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("endpoint", sa.String(200), primary_key=True),
    sa.Column("metric", sa.String(100), primary_key=True),
    sa.Column("replica", sa.String(200), primary_key=True),
    sa.Column("time", UTCDateTime(), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_samples_time", "time"),
    # Reads of recent readings of given series (the primary key has the replica third,
    # so through it a range of times walks every replica's whole retention).
    sa.Index("ix_samples_series", "endpoint", "metric", "time"),
)


def _rollup_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("endpoint", sa.String(200), primary_key=True),
        sa.Column("metric", sa.String(100), primary_key=True),
        sa.Column("replica", sa.String(200), primary_key=True),
        sa.Column("bucket", UTCDateTime(), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Index(f"ix_{name}_bucket", "bucket"),
        # What series reads match on (as ix_samples_series for raw samples).
        sa.Index(f"ix_{name}_series", "endpoint", "metric", "bucket"),
    )


samples_1m = _rollup_table("samples_1m")
samples_1h = _rollup_table("samples_1h")
# Rolled up from the hourly buckets: what a month-long overview reads (30 rows a series).
samples_1d = _rollup_table("samples_1d")
ROLLUP_TABLES = {"1m": samples_1m, "1h": samples_1h, "1d": samples_1d}

# Per resolution, the earliest time whose bucket may need (re)computing: raised by
# rollup(), lowered by writes of late samples.
rollup_state = sa.Table(
    "rollup_state",
    metadata,
    sa.Column("resolution", sa.String(8), primary_key=True),
    sa.Column("pending_from", UTCDateTime(), nullable=True),
)

costs = sa.Table(
    "costs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("period_start", UTCDateTime(), nullable=False),
    sa.Column("period_end", UTCDateTime(), nullable=False),
    sa.Column("endpoint", sa.String(400), nullable=False),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    # One row per period: a growing estimate (or a restated bill) replaces its earlier self.
    sa.UniqueConstraint("period_start", "endpoint", "service", "source", name="uq_costs_period"),
    sa.CheckConstraint("source IN ('estimated', 'billed')", name="ck_costs_source"),
    sa.Index("ix_costs_period_start", "period_start"),
)

# Per (UTC day, endpoint, source): the sum of that day's cost rows (every service) and the
# latest end among them. Kept by ``Store.write_costs`` in the same transaction, from the
# cost rows themselves, so it always equals their sum: a month of spend is read as 30
# rows an endpoint instead of 720.
costs_1d = sa.Table(
    "costs_1d",
    metadata,
    sa.Column("period_start", UTCDateTime(), primary_key=True),
    sa.Column("endpoint", sa.String(400), primary_key=True),
    sa.Column("source", sa.String(16), primary_key=True),
    sa.Column("period_end", UTCDateTime(), nullable=False),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Index("ix_costs_1d_endpoint", "endpoint"),  # the endpoints with costs, one seek each
)

scaling_events = sa.Table(
    "scaling_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime(), nullable=False, index=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("from_replicas", sa.Integer, nullable=False),
    sa.Column("to_replicas", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("applied", sa.Boolean, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime(), nullable=False, index=True),
    sa.Column("fingerprint", sa.String(200), nullable=False, index=True),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alert_events_status"),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", UTCDateTime(), nullable=False, index=True),
    sa.Column("fingerprint", sa.String(200), nullable=False, index=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

source_gaps = sa.Table(
    "source_gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("endpoint", sa.String(200), nullable=False),
    sa.Column("start", UTCDateTime(), nullable=False, index=True),
    sa.Column("end", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

# Small JSON documents the control plane keeps across restarts (the alert engine's
# firing/resolved state), one row per key, replaced whole on each save.
control_state = sa.Table(
    "control_state",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("comment", sa.Text, nullable=False),
)
