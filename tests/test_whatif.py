"""The what-if page's arithmetic (dashboard.whatif), by hand-worked rows."""

from __future__ import annotations

import pytest

from dashboard import whatif


@pytest.mark.parametrize(
    ("gpu_usd", "tokens", "expected"),
    [
        pytest.param(10.0, 2_000_000, 5.0, id="ten-dollars-two-million-tokens"),
        pytest.param(3.67, 1_000_000, 3.67, id="one-million"),
        pytest.param(5.0, 0, None, id="no-tokens-is-undefined-not-zero"),
    ],
)
def test_self_hosted_cost_per_million_tokens(gpu_usd: float, tokens: float, expected: float | None) -> None:
    assert whatif.self_hosted_per_1m(gpu_usd, tokens) == (
        None if expected is None else pytest.approx(expected)
    )


def test_blended_price_weights_input_and_output_by_the_mix() -> None:
    # 75% input at $0.001/1K, 25% output at $0.003/1K -> $0.0015/1K -> $1.50/1M.
    assert whatif.blended_price_per_1m(0.001, 0.003, 0.75) == pytest.approx(1.5)
    assert whatif.blended_price_per_1m(0.001, 0.003, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="input_share"):
        whatif.blended_price_per_1m(0.001, 0.003, 1.5)


def test_break_even_volume_and_the_cheaper_side() -> None:
    # $2 per 1M tokens; provisioned $1,000 a month breaks even at 500M tokens.
    low = whatif.break_even(100_000_000, 2.0, 1000.0)
    assert low.pay_per_token_usd == pytest.approx(200.0)
    assert low.break_even_tokens == pytest.approx(500_000_000)
    assert low.cheaper == "pay-per-token"
    high = whatif.break_even(800_000_000, 2.0, 1000.0)
    assert high.pay_per_token_usd == pytest.approx(1600.0)
    assert high.cheaper == "provisioned"
    with pytest.raises(ValueError, match="per-token price"):
        whatif.break_even(1.0, 0.0, 1000.0)


def test_scale_to_zero_saves_the_off_hours_share_of_the_month() -> None:
    # 2 replicas at $3/h, up 84 of 168 hours a week: half of 730.5 h x $6.
    assert whatif.scale_to_zero_saving(2, 3.0, 84) == pytest.approx(0.5 * 730.5 * 6)
    assert whatif.scale_to_zero_saving(2, 3.0, 168) == 0
    with pytest.raises(ValueError, match="uptime hours"):
        whatif.scale_to_zero_saving(1, 1.0, 200)


def test_spot_costs_the_discounted_price_plus_recovery_time() -> None:
    # 1 replica at $4/h on demand; spot 60% off; 2 interruptions a day, 36 min each:
    # 2/24 x 0.6 h = 5% of time lost and paid again.
    result = whatif.spot_versus_on_demand(1, 4.0, 0.6, 2, 36)
    on_demand = 4.0 * 730.5
    assert result.on_demand_usd == pytest.approx(on_demand)
    assert result.spot_usd == pytest.approx(on_demand * 0.4 * 1.05)
    assert result.saving_usd == pytest.approx(on_demand - on_demand * 0.4 * 1.05)
    assert result.unavailable_share == pytest.approx(0.05)


def test_spot_can_cost_more_than_on_demand_when_interrupted_often() -> None:
    # 10% off, interrupted every hour for an hour: twice the spot price.
    result = whatif.spot_versus_on_demand(1, 1.0, 0.1, 24, 60)
    assert result.saving_usd < 0
    assert result.unavailable_share == 1.0


@pytest.mark.parametrize(
    ("discount", "rate", "minutes"),
    [pytest.param(1.0, 1, 1, id="free-spot"), pytest.param(0.5, -1, 1, id="negative-rate")],
)
def test_spot_refuses_impossible_inputs(discount: float, rate: float, minutes: float) -> None:
    with pytest.raises(ValueError):
        whatif.spot_versus_on_demand(1, 1.0, discount, rate, minutes)
