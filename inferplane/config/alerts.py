"""The ``alerts`` section: rules, noise control and channels.

Rules apply to the endpoints they list (all endpoints when ``endpoints`` is left out);
latency rules take their target from the endpoint. Channel secrets (SMTP password,
webhook URLs that hold a token, signing secrets) come from ``*_env`` variables or
``*_file`` paths, never from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .fields import EnvVarName, HttpUrl, Name, Slug, StrictModel

__all__ = ["AlertsConfig", "Channel", "NoiseConfig", "Rule"]

Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="an email address")]


class _RuleBase(StrictModel):
    endpoints: list[Slug] | None = Field(None, description="endpoints the rule watches; None = all")


class TokenSpikeRule(_RuleBase):
    """Tokens a minute far above their own robust baseline (see ``alerts.spike``); the
    defaults are the ones ``inferplane bench alerts`` measures."""

    kind: Literal["token_spike"]
    tokens: Literal["prompt", "generated", "both"] = "both"
    factor: float = Field(2.0, gt=1, description="how many times the typical level counts as a spike")
    margin: float = Field(
        1.25, ge=1, description="also this many times the highest level of the baseline (its own bursts)"
    )
    size_factor: float = Field(
        2.0, gt=1, description="tokens per request this many times their median count as a spike too"
    )
    floor_per_minute: float = Field(1000, ge=0, description="never fire below this many tokens a minute")
    for_minutes: int = Field(1, ge=1, description="minutes in a row a signal must stay above")
    rate_minutes: int = Field(5, ge=1, le=30, description="rates judged over 1 .. this many minutes")
    baseline_minutes: int = Field(180, ge=60, description="minutes of history in the baseline")
    mad_k: float = Field(3.0, ge=0, description="also above the median + mad_k robust deviations")
    weekly: bool = Field(True, description="with a week of history, the same hour last weeks counts too")


class SpendRule(_RuleBase):
    kind: Literal["spend"]
    daily_budget_usd: float | None = Field(None, gt=0)
    monthly_budget_usd: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _a_budget(self) -> SpendRule:
        if self.daily_budget_usd is None and self.monthly_budget_usd is None:
            raise ValueError("a spend rule needs daily_budget_usd, monthly_budget_usd or both")
        return self


class CostReconciliationRule(_RuleBase):
    """Estimated and billed cost of a whole day differ by more than ``max_difference`` (a
    share of the larger): a wrong price table, or a cost the estimate does not see."""

    kind: Literal["cost_reconciliation"]
    max_difference: float = Field(0.1, gt=0, lt=1, description="share of the larger figure that may differ")
    days: int = Field(7, ge=1, le=60, description="complete days back to compare")
    min_usd: float = Field(1.0, ge=0, description="days where both figures are below this are not judged")


class IdleGpuRule(_RuleBase):
    kind: Literal["idle_gpu"]
    floor: float = Field(0.1, gt=0, lt=1, description="GPU utilization (0..1) below which a replica idles")
    for_hours: float = Field(2.0, gt=0)


class LatencySloRule(_RuleBase):
    kind: Literal["latency_slo"]
    metric: Literal["request_latency_seconds_p95", "time_to_first_token_seconds_p95"] = (
        "request_latency_seconds_p95"
    )
    for_minutes: int = Field(5, ge=1)


class ScalingRule(_RuleBase):
    kind: Literal["scaling"]
    notify_actions: bool = Field(False, description="also a notice for every scale action and shutdown")


Rule = Annotated[
    TokenSpikeRule | SpendRule | CostReconciliationRule | IdleGpuRule | LatencySloRule | ScalingRule,
    Field(discriminator="kind"),
]


class _ChannelBase(StrictModel):
    name: Name


class EmailChannel(_ChannelBase):
    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(587, gt=0, lt=65536)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    sender: Email
    recipients: list[Email] = Field(min_length=1)
    username_env: EnvVarName | None = None
    password_env: EnvVarName | None = None
    password_file: Path | None = None
    timeout_s: float = Field(10, gt=0)
    notices: bool = Field(
        False, description="also send notices (scaling actions, shutdowns): events, not alerts"
    )


class WebhookChannel(_ChannelBase):
    kind: Literal["webhook"]
    url: HttpUrl | None = Field(None, description="a URL without a token in it")
    url_env: EnvVarName | None = Field(None, description="env var holding a URL that carries a token")
    format: Literal["alertmanager", "slack", "teams"] = "alertmanager"
    secret_env: EnvVarName | None = Field(None, description="env var holding the HMAC signing secret")
    secret_file: Path | None = None
    timeout_s: float = Field(10, gt=0)
    retries: int = Field(3, ge=1)
    notices: bool = Field(
        False, description="also send notices (scaling actions, shutdowns): events, not alerts"
    )

    @model_validator(mode="after")
    def _one_url(self) -> WebhookChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of url and url_env")
        return self


class AlertmanagerChannel(_ChannelBase):
    kind: Literal["alertmanager"]
    url: HttpUrl
    timeout_s: float = Field(10, gt=0)
    retries: int = Field(3, ge=1)


Channel = Annotated[EmailChannel | WebhookChannel | AlertmanagerChannel, Field(discriminator="kind")]


class NoiseConfig(StrictModel):
    """Alertmanager-style timing: wait before a group's first notice, between its updates,
    and before repeating an unchanged firing group."""

    group_wait_s: float = Field(30, ge=0)
    group_interval_s: float = Field(300, gt=0)
    repeat_interval_s: float = Field(14400, gt=0)


class AlertsConfig(StrictModel):
    evaluate_every_s: float = Field(60, gt=0)
    noise: NoiseConfig = NoiseConfig()
    rules: list[Rule] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
