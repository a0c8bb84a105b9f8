"""The dashboard's figures (dashboard.figures), pure: frames in, frames out."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboard import figures
from inferplane.config.endpoints import GpuHourPrice, TokenPrice

NOW = datetime(2026, 11, 18, 12, 30, tzinfo=UTC)  # a Wednesday; November has 720 hours
HOUR = timedelta(hours=1)


def _costs(rows: list[tuple[datetime, timedelta, str, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "period_start": s,
                "period_end": s + d,
                "endpoint": e,
                "service": "gpu",
                "amount": a,
                "source": src,
            }
            for s, d, e, a, src in rows
        ],
        columns=["period_start", "period_end", "endpoint", "service", "amount", "source"],
    )
    for column in ("period_start", "period_end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _hourly(
    endpoint: str, day: datetime, hours: range, amount: float
) -> list[tuple[datetime, timedelta, str, float, str]]:
    return [(day + h * HOUR, HOUR, endpoint, amount, "estimated") for h in hours]


TODAY = NOW.replace(hour=0, minute=0)
YESTERDAY = TODAY - timedelta(days=1)
COSTS = _costs(
    _hourly("alpha", TODAY, range(12), 2.0)
    + _hourly("alpha", YESTERDAY, range(24), 2.0)
    + _hourly("beta", TODAY, range(12), 8.0)
    + [(YESTERDAY, timedelta(days=1), "alpha", 50.0, "billed")]
    # Last month: outside every figure of this month.
    + [(datetime(2026, 10, 31, 23, tzinfo=UTC), HOUR, "alpha", 1000.0, "estimated")]
)


def test_spend_today_month_and_projection_per_endpoint_and_total() -> None:
    spend = figures.spend_summary(COSTS, NOW)
    assert spend.loc["alpha", "today_estimated"] == pytest.approx(24.0)
    assert spend.loc["beta", "today_estimated"] == pytest.approx(96.0)
    assert spend.loc[figures.TOTAL, "today_estimated"] == pytest.approx(120.0)
    assert spend.loc[figures.TOTAL, "month_estimated"] == pytest.approx(168.0)
    # Month to date plus the last six hours' rate (06:00-12:30: six hours of rows, $60 in
    # all) for the 299.5 hours left in the month.
    left = 720 - (17 * 24 + 12.5)
    assert spend.loc[figures.TOTAL, "projected_estimated"] == pytest.approx(168.0 + 60 / 6.5 * left)


def test_a_store_ten_minutes_old_projects_from_those_ten_minutes() -> None:
    """Ten minutes at $3.60/h: the month projects at $3.60/h for the hours left, not from
    month to date spread over the days before the store existed."""
    began = NOW - timedelta(minutes=10)
    costs = _costs([(NOW.replace(minute=0), timedelta(minutes=30), "alpha", 0.60, "estimated")])
    spend = figures.spend_summary(costs, NOW, data_since=began)
    left = 720 - (17 * 24 + 12.5)
    assert spend.loc["alpha", "projected_estimated"] == pytest.approx(0.60 + 3.60 * left)
    assert figures.run_rate_label(NOW, began) == "at the rate since readings began (10 min)"
    assert figures.run_rate_label(NOW, NOW - timedelta(days=3)) == "at the last 6 hours' rate"


def test_billed_is_compared_with_the_estimate_over_the_billed_days_only() -> None:
    spend = figures.spend_summary(COSTS, NOW)
    # Billed covers yesterday: $50 against yesterday's $48 estimate (not today's too).
    assert spend.loc["alpha", "month_billed"] == pytest.approx(50.0)
    assert spend.loc["alpha", "billed_minus_estimated"] == pytest.approx(2.0)
    # Projected from the 17 billed days (up to today's midnight), not from now.
    assert spend.loc["alpha", "projected_billed"] == pytest.approx(50.0 * 720 / (17 * 24))
    # beta has no bill: unknown, not zero.
    assert math.isnan(spend.loc["beta", "month_billed"])
    assert spend.loc[figures.TOTAL, "month_billed"] == pytest.approx(50.0)


def test_spend_of_an_empty_store_is_zero_estimated_and_unknown_billed() -> None:
    spend = figures.spend_summary(_costs([]), NOW)
    assert spend.loc[figures.TOTAL, "today_estimated"] == 0.0
    assert math.isnan(spend.loc[figures.TOTAL, "month_billed"])


def test_spend_without_any_bill_leaves_billed_unknown() -> None:
    spend = figures.spend_summary(COSTS[COSTS["endpoint"] == "beta"], NOW)
    assert spend.loc["beta", "today_estimated"] == pytest.approx(96.0)
    assert math.isnan(spend.loc[figures.TOTAL, "billed_minus_estimated"])


def test_month_hours_handles_december() -> None:
    assert figures.month_hours(datetime(2026, 12, 5, tzinfo=UTC)) == 31 * 24
    assert figures.month_hours(datetime(2027, 2, 5, tzinfo=UTC)) == 28 * 24


def _series(rows: list[tuple[str, str, datetime, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["endpoint", "metric", "time", "value"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def test_tokens_are_the_counted_buckets_summed_and_cost_per_1k_divides_by_them() -> None:
    series = _series(
        [
            ("alpha", "prompt_tokens", TODAY, 360_000.0),
            ("alpha", "prompt_tokens", TODAY + HOUR, 360_000.0),
            ("alpha", "generated_tokens", TODAY, 180_000.0),
            ("alpha", "prompt_tokens_per_second", TODAY, 100.0),  # a rate: never summed
            ("beta", "gpu_utilization", TODAY, 0.5),  # not a token metric
        ]
    )
    tokens = figures.tokens_served(series)
    assert tokens.loc["alpha", "prompt"] == pytest.approx(720_000)
    assert tokens.loc["alpha", "generated"] == pytest.approx(180_000)
    per_1k = figures.cost_per_1k_tokens(pd.Series({"alpha": 9.0, "beta": 4.0}), tokens.sum(axis=1))
    assert per_1k["alpha"] == pytest.approx(9.0 / 900_000 * 1000)
    assert math.isnan(per_1k["beta"])  # cost but no tokens: undefined
    by_hour = figures.tokens_per_hour(series)  # every endpoint together, per hour
    assert by_hour.tolist() == [540_000, 360_000] and by_hour.index[1] == TODAY + HOUR


def test_idle_hours_are_up_and_under_the_floor_with_their_cost() -> None:
    hourly = pd.DataFrame(
        {
            "endpoint": ["a", "a", "b", "c"],
            "time": pd.to_datetime([TODAY, TODAY + HOUR, TODAY, TODAY], utc=True),
            "gpu_utilization": [0.05, 0.5, 0.02, 0.0],
            "replicas": [2.0, 2.0, 1.0, 0.0],  # c is at zero: not idle, just off
        }
    )
    cost = figures.hourly_cost(_costs(_hourly("a", TODAY, range(2), 8.0)))
    idle = figures.idle_hours(hourly, cost, floor=0.1)
    assert list(zip(idle["endpoint"], idle["usd"], strict=True)) == [("a", 8.0), ("b", 0.0)]


def test_off_hours_savings_count_the_replicas_the_uptime_floor_would_have_kept() -> None:
    replicas = pd.DataFrame(
        {
            "endpoint": ["a", "a", "a", "b"],
            "time": pd.to_datetime([TODAY, TODAY + HOUR, TODAY.replace(hour=10), TODAY], utc=True),
            "replicas": [0.0, 0.5, 3.0, 0.0],
        }
    )

    def off(endpoint: str, at: datetime) -> bool:
        return at.hour < 8

    saved = figures.off_hours_savings(replicas, off, {"a": 2}, {"a": 3.0}).set_index("endpoint")
    # Off-hours hours 00 and 01: (2 - 0) + (2 - 0.5) replica-hours at $3; 10:00 is uptime; b has no schedule.
    assert saved.loc["a", "off_hours"] == 2
    assert saved.loc["a", "replica_hours_saved"] == pytest.approx(3.5)
    assert saved.loc["a", "usd_saved"] == pytest.approx(10.5)
    assert "b" not in saved.index


def test_firing_now_is_the_newest_transition_of_each_alert() -> None:
    events = pd.DataFrame(
        {
            "time": pd.to_datetime([TODAY, TODAY + HOUR, TODAY + 2 * HOUR], utc=True),
            "fingerprint": ["x", "y", "x"],
            "endpoint": ["a", "b", "a"],
            "rule": ["idle_gpu", "latency_slo", "idle_gpu"],
            "status": ["firing", "firing", "resolved"],
            "summary": ["", "", ""],
        }
    )
    assert figures.firing_now(events)["fingerprint"].tolist() == ["y"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(999_999, "999,999"), (1_224_000, "1.22 M"), (4_359_436_676, "4.36 B"), (0, "0")],
)
def test_counts_stay_short_enough_for_a_metric_card(value: float, shown: str) -> None:
    from dashboard.ui import count

    assert count(value) == shown


def test_csv_downloads_keep_iso_times_and_empty_cells_and_leave_out_trend_lines() -> None:
    from dashboard.ui import csv_bytes

    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([NOW, NOW + HOUR], utc=True),
            "endpoint": ["alpha", "beta"],
            "billed": [50.0, float("nan")],
            "problem": [None, "HTTP 503"],
            "cost_trend": [[1.0, 2.0], [3.0]],
        }
    )
    assert csv_bytes(frame).decode().splitlines() == [
        "time,endpoint,billed,problem",
        "2026-11-18T12:30:00Z,alpha,50.0,",
        "2026-11-18T13:30:00Z,beta,,HTTP 503",
    ]


def test_the_current_hour_is_partial_with_its_rate_so_far() -> None:
    # 12:00-12:20 of the current hour estimated at $0.40: a third of an hour, $1.20/h so far.
    partial = (TODAY + 2 * HOUR, timedelta(minutes=20), "a", 0.40, "estimated")
    rows = [*_hourly("a", TODAY, range(2), 1.2), partial]
    cost = figures.hourly_cost(_costs(rows)).set_index("time")
    assert cost["partial"].tolist() == [False, False, True]
    assert cost["usd"].tolist() == pytest.approx([1.2, 1.2, 0.4])
    assert cost["usd_per_hour"].tolist() == pytest.approx([1.2, 1.2, 1.2])


def _counts(rows: list[tuple[str, str, datetime, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["endpoint", "metric", "time", "value"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


MINUTE = timedelta(minutes=1)
GPU = GpuHourPrice(gpu_per_hour_usd=3.0, gpus_per_replica=2)
TOKENS = TokenPrice(input_per_1k_usd=0.5, output_per_1k_usd=1.5)
HOUR_START = NOW.replace(minute=0)


@pytest.mark.parametrize(
    ("name", "price", "rows", "expected"),
    [
        # 90 replica-seconds x 2 GPUs x $3/GPU-hour / 3600 = $0.15; as $/h: x 60.
        ("gpu", GPU, [("a", "ready_replica_seconds", HOUR_START, 90.0)], [(HOUR_START, 0.15)]),
        # 2,000 prompt tokens at $0.5/1K + 1,000 generated at $1.5/1K = $2.50.
        (
            "tokens",
            TOKENS,
            [("a", "prompt_tokens", HOUR_START, 2000.0), ("a", "generated_tokens", HOUR_START, 1000.0)],
            [(HOUR_START, 2.5)],
        ),
        # A count not read in a bucket added nothing there (the other count still costs).
        (
            "one count in a bucket",
            TOKENS,
            [
                ("a", "prompt_tokens", HOUR_START, 2000.0),
                ("a", "generated_tokens", HOUR_START, 0.0),
                ("a", "generated_tokens", HOUR_START + MINUTE, 1000.0),
            ],
            [(HOUR_START, 1.0), (HOUR_START + MINUTE, 1.5)],
        ),
        # A minute without a reading has no point: unknown, not $0.
        (
            "gap",
            GPU,
            [
                ("a", "ready_replica_seconds", HOUR_START, 60.0),
                ("a", "ready_replica_seconds", HOUR_START + 2 * MINUTE, 60.0),
            ],
            [(HOUR_START, 0.1), (HOUR_START + 2 * MINUTE, 0.1)],
        ),
        # Gauge-only (no counts): nothing here, the hourly rows stand.
        ("gauge only", GPU, [("a", "replicas", HOUR_START, 2.0)], []),
        # Per-token price, but only one of its counts read in the range: not priced here.
        ("half the counts", TOKENS, [("a", "prompt_tokens", HOUR_START, 2000.0)], []),
    ],
)
def test_bucket_cost_prices_the_counted_increases(
    name: str, price: GpuHourPrice | TokenPrice, rows: list[tuple[str, str, datetime, float]], expected: list
) -> None:
    cost = figures.bucket_cost(_counts(rows), {"a": price}, 60.0)
    got = [(t.to_pydatetime(), u) for t, u in zip(cost["time"], cost["usd"], strict=True)]
    assert [t for t, _ in got] == [t for t, _ in expected], name
    assert [u for _, u in got] == pytest.approx([u for _, u in expected]), name
    assert list(cost["usd_per_hour"]) == pytest.approx([u * 60 for _, u in expected]), name


def test_bucket_cost_leaves_out_endpoints_without_a_price() -> None:
    series = _counts([("b", "ready_replica_seconds", HOUR_START, 60.0)])
    assert figures.bucket_cost(series, {"a": GPU}, 60.0).empty


def test_timeline_cost_is_by_the_minute_where_counted_and_hourly_rows_elsewhere() -> None:
    """``a`` has counts: a point per read minute, up to the minute ``now`` is in (left out:
    still being counted). ``b`` is gauge-only: its hourly rows' rates, spread over each
    minute of the hour (the current hour up to now, partial)."""
    now = HOUR_START + 3 * MINUTE  # 12:03; the minute 12:03 is in progress
    series = _counts(
        [("a", "ready_replica_seconds", HOUR_START + m * MINUTE, 60.0) for m in range(4)]
        + [("b", "replicas", HOUR_START, 1.0)]
    )
    rows = [
        (HOUR_START - HOUR, HOUR, "b", 6.0, "estimated"),
        (HOUR_START, 3 * MINUTE, "b", 0.3, "estimated"),  # 3 minutes so far
        (HOUR_START, 3 * MINUTE, "a", 0.3, "estimated"),  # a's hourly row: not used
    ]
    hourly = figures.hourly_cost(_costs(rows))
    line, by_hour = figures.timeline_cost(series, hourly, {"a": GPU, "b": GPU}, now, 60.0)
    assert by_hour == ["b"]
    a = line[line["endpoint"] == "a"]
    assert list(a["time"]) == [HOUR_START + m * MINUTE for m in range(3)]
    assert list(a["usd_per_hour"]) == pytest.approx([6.0] * 3)  # 1 replica x 2 GPUs x $3
    assert not a["partial"].any()
    b = line[line["endpoint"] == "b"]
    assert list(b["time"]) == [HOUR_START - HOUR + m * MINUTE for m in range(63)]
    assert list(b["usd_per_hour"]) == pytest.approx([6.0] * 60 + [6.0] * 3)  # $0.3 in 3 min
    assert list(b["partial"]) == [False] * 60 + [True] * 3


def test_off_hours_savings_without_an_off_hours_bucket_is_empty_not_an_error() -> None:
    # Endpoint names as pandas' string dtype, as the store's reads give them: mapping the
    # floors over no off-hours rows must not leave a string column to subtract from.
    replicas = pd.DataFrame(
        {
            "endpoint": pd.Series(["chat", "chat"], dtype="string"),
            "time": pd.to_datetime(["2026-12-07 10:00", "2026-12-07 10:01"], utc=True),
            "replicas": [1.0, 1.0],
        }
    )
    saved = figures.off_hours_savings(replicas, lambda _name, _at: False, {"chat": 1}, {"chat": 2.0}, 1 / 60)
    assert saved.empty or float(saved["usd_saved"].sum()) == 0.0
