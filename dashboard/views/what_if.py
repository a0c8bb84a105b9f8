"""What-if: self-hosted cost per 1M tokens beside a hosted model's per-token price,
pay-per-token against provisioned throughput, scale-to-zero off-hours, and spot against
on demand. Every input is editable; the assumptions are shown with each answer."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, figures, ui, whatif
from dashboard.filters import View
from inferplane.config import GpuHourPrice, InferplaneConfig, TokenPrice

# Used when the config prices no hosted endpoint: a small hosted model's list price.
_DEFAULT_HOSTED = TokenPrice(input_per_1k_usd=0.00015, output_per_1k_usd=0.0006)


def _gpu_prices(settings: InferplaneConfig | None) -> dict[str, GpuHourPrice]:
    endpoints = settings.endpoints if settings else []
    return {e.name: e.price for e in endpoints if isinstance(e.price, GpuHourPrice)}


def _hosted_price(settings: InferplaneConfig | None) -> TokenPrice:
    st.markdown("**Hosted model (pay per token)**")
    hosted = {
        e.name: e.price for e in (settings.endpoints if settings else []) if isinstance(e.price, TokenPrice)
    }
    choice = st.selectbox("Priced like", [*hosted, "other (enter prices)"], key="hosted")
    base = hosted.get(str(choice), _DEFAULT_HOSTED)
    cols = st.columns(2)
    price_in = cols[0].number_input(
        "$ per 1K input tokens", min_value=0.0, value=base.input_per_1k_usd, format="%.6f", key=f"in-{choice}"
    )
    price_out = cols[1].number_input(
        "$ per 1K output tokens",
        min_value=0.0,
        value=base.output_per_1k_usd,
        format="%.6f",
        key=f"out-{choice}",
    )
    return TokenPrice(input_per_1k_usd=price_in, output_per_1k_usd=price_out)


def _per_million(view: View, gpu: dict[str, GpuHourPrice], hosted: TokenPrice) -> tuple[pd.DataFrame, float]:
    """Self-hosted cost per 1M tokens over the range, beside the hosted price of the same
    mix; and the hours of the range that have token readings."""
    names = tuple(n for n in view.endpoints if n in gpu) or tuple(view.endpoints)
    series = data.series(view.url, names, figures.TOKEN_METRICS, view.start, view.end, view.resolution)
    bucket = data.bucket_seconds(view.resolution)
    tokens = figures.tokens_served(series).reindex(list(names)).fillna(0.0)
    cost = figures.cost_in_range(data.cost_frame(view.url, view.start, view.end), view.start, view.end)
    rows = []
    for name, (prompt, generated) in tokens.iterrows():
        served = prompt + generated
        share = prompt / served if served > 0 else 0.5
        rows.append(
            {
                "endpoint": name,
                "tokens": round(served),
                "gpu_usd": float(cost.get(name, 0.0)),
                "self_hosted_per_1m_usd": whatif.self_hosted_per_1m(float(cost.get(name, 0.0)), served),
                "hosted_per_1m_usd": whatif.blended_price_per_1m(
                    hosted.input_per_1k_usd, hosted.output_per_1k_usd, share
                ),
                "input_share": share,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "endpoint",
            "tokens",
            "gpu_usd",
            "self_hosted_per_1m_usd",
            "hosted_per_1m_usd",
            "input_share",
        ],
    )
    return frame, figures.hours_read(series, bucket)


def _break_even(table: pd.DataFrame, hours: float) -> None:
    st.subheader("Pay-per-token against provisioned throughput")
    observed = float(table["tokens"].sum()) / hours * whatif.HOURS_PER_MONTH if hours else 0.0
    cols = st.columns(3)
    # In millions: an input box shows no thousands separators, and 15824621273 cannot be read.
    monthly = 1e6 * cols[0].number_input(
        "Million tokens per month",
        min_value=0.0,
        value=round(observed / 1e6, 1),
        step=100.0,
        format="%.1f",
        key="monthly_mtokens",
    )
    units = cols[1].number_input("Provisioned units", min_value=1, value=1, step=1, key="ptu_units")
    unit_hour = cols[2].number_input("$ per unit-hour", min_value=0.0, value=1.0, step=0.1, key="ptu_price")
    st.caption(
        f"Observed: {ui.count(float(table['tokens'].sum()))} tokens over the {_span(hours)} "
        f"with token readings in the range, scaled to a month ({whatif.HOURS_PER_MONTH} h): "
        f"{ui.count(observed)}."
    )
    weights = table["tokens"].where(table["tokens"] > 0)
    price = (
        float((table["hosted_per_1m_usd"] * weights).sum() / weights.sum())
        if weights.notna().any()
        else float(table["hosted_per_1m_usd"].mean())
    )
    if not price > 0:  # both hosted prices 0 (or no endpoint): pay-per-token costs nothing
        st.info(
            "With a hosted price of $0 per token, pay-per-token costs nothing at any volume: "
            "there is no break-even volume. Enter the hosted model's prices above."
        )
        return
    result = whatif.break_even(monthly, price, units * unit_hour * whatif.HOURS_PER_MONTH)
    cols = st.columns(3)
    cols[0].metric("Pay-per-token / month", ui.money(result.pay_per_token_usd), border=True)
    cols[1].metric("Provisioned / month", ui.money(result.provisioned_usd), border=True)
    cols[2].metric("Break-even tokens / month", ui.count(result.break_even_tokens), border=True)
    st.caption(
        f"Cheaper at this volume: **{result.cheaper}**. Per-token price {ui.money(price, 4)} per "
        "1M (the observed input/output mix). Assumes the provisioned units carry the whole "
        "volume, including its peaks, and no volume discount."
    )


def _span(hours: float) -> str:
    return f"{hours / 24:,.1f} days" if hours >= 48 else f"{hours:,.1f} h"


def _scale_to_zero(gpu: dict[str, GpuHourPrice]) -> None:
    st.subheader("Scale to zero off-hours")
    cols = st.columns(4)
    name = cols[0].selectbox("Endpoint", list(gpu), key="stz_endpoint")
    replicas = cols[1].number_input("Always-on replicas", min_value=0.0, value=1.0, key="stz_replicas")
    price = cols[2].number_input(
        "$ per replica-hour", min_value=0.0, value=gpu[str(name)].replica_hour_usd, key=f"stz_price-{name}"
    )
    uptime = cols[3].number_input(
        "Uptime hours per week", min_value=0.0, max_value=168.0, value=65.0, key="stz_uptime"
    )
    saving = whatif.scale_to_zero_saving(replicas, price, uptime)
    st.metric("Saving per month", ui.money(saving), border=True)
    st.caption(
        f"{replicas:g} replicas × {ui.money(price)}/h × the {168 - uptime:g} off-hours of each "
        f"week (a month is {whatif.HOURS_PER_MONTH} h). Assumes nobody needs the endpoint "
        "off-hours, or accepts a cold start."
    )


def _spot(gpu: dict[str, GpuHourPrice]) -> None:
    st.subheader("Spot against on demand")
    cols = st.columns(5)
    name = cols[0].selectbox("Endpoint", list(gpu), key="spot_endpoint")
    replicas = cols[1].number_input("Replicas", min_value=0.0, value=1.0, key="spot_replicas")
    discount = cols[2].number_input(
        "Spot discount %", min_value=0.0, max_value=99.0, value=60.0, key="spot_discount"
    )
    rate = cols[3].number_input("Interruptions per day", min_value=0.0, value=1.0, key="spot_rate")
    recovery = cols[4].number_input("Recovery minutes", min_value=0.0, value=10.0, key="spot_recovery")
    result = whatif.spot_versus_on_demand(
        replicas, gpu[str(name)].replica_hour_usd, discount / 100, rate, recovery
    )
    out = st.columns(3)
    out[0].metric("On demand / month", ui.money(result.on_demand_usd), border=True)
    out[1].metric("Spot / month (expected)", ui.money(result.spot_usd), border=True)
    out[2].metric("Time replacing replicas", ui.pct(result.unavailable_share), border=True)
    st.caption(
        "Each interruption costs its recovery time again (a replacement's cold start and the "
        "work redone), at the spot price; a replacement is assumed available."
    )


def body(view: View) -> None:
    settings = ui.load_config()
    gpu = _gpu_prices(settings)
    if not gpu:
        st.info(
            "The what-if page needs the config's prices: start the dashboard with "
            "`--config inferplane.yaml` naming endpoints priced by the GPU hour."
        )
        return
    st.subheader("Cost per 1M tokens: self-hosted against hosted")
    hosted = _hosted_price(settings)
    table, hours = _per_million(view, gpu, hosted)
    st.caption(
        f"Self-hosted: estimated GPU dollars over tokens served ({view.range_label.lower()}). "
        "Hosted: the per-token prices above, for each endpoint's own input/output mix."
    )
    priced = table.dropna(subset=["self_hosted_per_1m_usd"])
    if not priced.empty:
        colours = charts.endpoint_colours(view.all_endpoints)
        st.plotly_chart(charts.per_million(priced, colours), key="per-million")
    ui.table(
        table,
        "cost-per-1m-tokens",
        {
            "tokens": st.column_config.NumberColumn("tokens", format="localized"),
            "gpu_usd": st.column_config.NumberColumn("GPU cost", format="$%.2f"),
            "self_hosted_per_1m_usd": st.column_config.NumberColumn("self-hosted $/1M", format="$%.4f"),
            "hosted_per_1m_usd": st.column_config.NumberColumn("hosted $/1M", format="$%.4f"),
            "input_share": st.column_config.NumberColumn("input share", format="percent"),
        },
    )
    _break_even(table, hours)
    _scale_to_zero(gpu)
    _spot(gpu)


ui.page("What-if", body)
