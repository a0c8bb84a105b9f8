"""Rollup rows into per-endpoint series (dashboard.rollups), pure: the share of a bucket
each replica was read in weighs its token rate."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.data import ADDITIVE
from dashboard.rollups import ROW_COLUMNS, combine

T0, T1 = pd.Timestamp("2026-11-18 10:00", tz="UTC"), pd.Timestamp("2026-11-18 11:00", tz="UTC")
TOKENS = "prompt_tokens_per_second"


def _rows(*rows: tuple[str, str, pd.Timestamp, int, float, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def _values(rows: pd.DataFrame) -> dict[tuple[str, pd.Timestamp], float]:
    out = combine(rows, ADDITIVE)
    return {(str(r.metric), r.time): float(r.value) for r in out.itertuples()}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(  # r1 whole hours at 10/s; r2 read 15 of 60 minutes at 20/s in T1
            _rows(
                ("e", TOKENS, T0, 60, 600.0, 1),
                ("e", TOKENS, T1, 60, 600.0, 1),
                ("e", TOKENS, T1, 15, 300.0, 1),
            ),
            {(TOKENS, T0): 10.0, (TOKENS, T1): 10.0 + 20.0 / 4},
            id="a-replica-up-a-quarter-hour",
        ),
        pytest.param(  # a scrape landing twice: 61 readings count as a whole hour, no more
            _rows(("e", TOKENS, T0, 60, 1200.0, 2), ("e", TOKENS, T1, 61, 610.0, 1)),
            {(TOKENS, T0): 20.0, (TOKENS, T1): 10.0},
            id="one-extra-reading",
        ),
        pytest.param(  # replica counts are not weighted: a bucket's mean per replica, summed
            _rows(("e", "replicas", T0, 60, 120.0, 1), ("e", "replicas", T0, 15, 15.0, 1)),
            {("replicas", T0): 3.0},
            id="replicas-unweighted",
        ),
        pytest.param(  # utilization: the mean of every reading
            _rows(("e", "gpu_utilization", T0, 60, 30.0, 1), ("e", "gpu_utilization", T0, 15, 15.0, 1)),
            {("gpu_utilization", T0): 45.0 / 75},
            id="mean-of-readings",
        ),
    ],
)
def test_rates_are_weighted_by_the_share_of_the_bucket_read(
    rows: pd.DataFrame, expected: dict[tuple[str, pd.Timestamp], float]
) -> None:
    assert _values(rows) == pytest.approx(expected)
