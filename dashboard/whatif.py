"""What-if arithmetic for the dashboard's what-if page (pure: numbers in, numbers out).

Every function states its assumptions in its docstring; the page shows them next to the
inputs. Money is USD, volumes are tokens, times are hours.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HOURS_PER_MONTH",
    "BreakEven",
    "SpotComparison",
    "blended_price_per_1m",
    "break_even",
    "scale_to_zero_saving",
    "self_hosted_per_1m",
    "spot_versus_on_demand",
]

# 365.25 days / 12 months x 24 h: the month cloud price sheets use (730 h).
HOURS_PER_MONTH = 730.5
_PER_1M = 1_000_000


def self_hosted_per_1m(gpu_usd: float, tokens: float) -> float | None:
    """Cost per 1M tokens of a self-hosted endpoint: GPU dollars over tokens served.

    None when no token was served (a cost per token is undefined, not zero or infinite).
    """
    if tokens <= 0:
        return None
    return gpu_usd / tokens * _PER_1M


def blended_price_per_1m(input_per_1k: float, output_per_1k: float, input_share: float) -> float:
    """A per-token price per 1M tokens for a mix with ``input_share`` (0..1) prompt tokens:
    what a hosted model would charge for the same traffic."""
    if not 0 <= input_share <= 1:
        raise ValueError(f"input_share must be within 0..1, not {input_share}")
    per_1k = input_per_1k * input_share + output_per_1k * (1 - input_share)
    return per_1k * 1000


@dataclass(frozen=True)
class BreakEven:
    """Pay-per-token against provisioned throughput at a monthly token volume."""

    pay_per_token_usd: float  # the month's volume at the per-token price
    provisioned_usd: float  # the provisioned units for a month
    break_even_tokens: float  # monthly volume at which both cost the same
    cheaper: str  # "pay-per-token" | "provisioned"


def break_even(monthly_tokens: float, price_per_1m: float, provisioned_usd_per_month: float) -> BreakEven:
    """Provisioned throughput costs a fixed amount a month whatever flows through it;
    pay-per-token grows with volume. Assumes the provisioned units carry the whole volume
    (size them for the peak yourself) and that the per-token price does not tier."""
    if price_per_1m <= 0:
        raise ValueError(f"the per-token price must be above 0, not {price_per_1m}")
    pay = monthly_tokens / _PER_1M * price_per_1m
    tokens = provisioned_usd_per_month / price_per_1m * _PER_1M
    return BreakEven(
        pay,
        provisioned_usd_per_month,
        tokens,
        "provisioned" if pay > provisioned_usd_per_month else "pay-per-token",
    )


def scale_to_zero_saving(replicas: float, replica_hour_usd: float, uptime_hours_per_week: float) -> float:
    """Monthly saving of scaling ``replicas`` always-on replicas to zero outside
    ``uptime_hours_per_week``: the off-hours replica-hours times the price. Assumes the
    replicas are idle off-hours and a cold start inside the uptime window is acceptable."""
    if not 0 <= uptime_hours_per_week <= 168:
        raise ValueError(f"uptime hours per week must be within 0..168, not {uptime_hours_per_week}")
    off_share = 1 - uptime_hours_per_week / 168
    return replicas * replica_hour_usd * HOURS_PER_MONTH * off_share


@dataclass(frozen=True)
class SpotComparison:
    """Expected monthly cost on demand and on spot, and the serving time spot loses."""

    on_demand_usd: float
    spot_usd: float
    saving_usd: float  # on demand minus spot; negative when spot costs more
    unavailable_share: float  # share of time a replica is being replaced


def spot_versus_on_demand(
    replicas: float,
    on_demand_hour_usd: float,
    spot_discount: float,
    interruptions_per_day: float,
    recovery_minutes: float,
) -> SpotComparison:
    """Each interruption costs ``recovery_minutes`` again (a replacement's cold start and
    the work it redoes), so a spot hour costs the spot price times (1 + interruptions per
    hour x recovery hours). Assumes a replacement is always available at the spot price."""
    if not 0 <= spot_discount < 1:
        raise ValueError(f"the spot discount must be within 0..1, not {spot_discount}")
    if interruptions_per_day < 0 or recovery_minutes < 0:
        raise ValueError("interruptions and recovery time cannot be negative")
    lost = interruptions_per_day / 24 * recovery_minutes / 60
    on_demand = replicas * on_demand_hour_usd * HOURS_PER_MONTH
    spot = on_demand * (1 - spot_discount) * (1 + lost)
    return SpotComparison(on_demand, spot, on_demand - spot, min(1.0, lost))
