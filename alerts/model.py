"""The values every part of the alerts room shares: findings, alerts, notifications, and
the channel protocol.

A rule returns ``Finding``s (what is wrong right now, with the figures and their cost);
the state machine turns findings over time into ``Alert``s that fire and resolve, and
groups them per endpoint into ``Notification``s; a ``Channel`` delivers a notification
or raises ``DeliveryError``.

A finding with ``notice=True`` (a scaling action, an off-hours shutdown) is an event, not
an alert: it never fires or resolves, is sent once to the channels that ask for notices,
and its alerts carry the status ``"notice"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "Alert",
    "Channel",
    "DeliveryError",
    "Finding",
    "Notification",
    "fingerprint",
    "signed_dollars_per_hour",
]

Status = Literal["firing", "resolved", "notice"]


def signed_dollars_per_hour(change_usd: float) -> str:
    """A change of spend per hour with its sign: ``+$2.40/h`` costs more, ``−$2.40/h``
    (a minus sign, U+2212) saves; ``$0.00/h`` when nothing changes."""
    sign = "+" if change_usd > 0.005 else "\u2212" if change_usd < -0.005 else ""
    return f"{sign}${abs(change_usd):,.2f}/h"


def fingerprint(rule: str, endpoint: str, labels: dict[str, str] | None = None) -> str:
    """A stable id of one alert: the same rule on the same endpoint (and labels)."""
    material = "\x1f".join([rule, endpoint, *(f"{k}={v}" for k, v in sorted((labels or {}).items()))])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Finding:
    """A rule's verdict at one moment: this is wrong now.

    ``figures`` are the numbers that fired it (for example ``{"tokens_per_minute": 5200,
    "baseline": 1300}``); ``cost_per_hour_usd`` what the condition costs while it lasts
    (None when it has no price).
    """

    rule: str
    endpoint: str
    summary: str
    severity: Literal["info", "warning", "critical"] = "warning"
    since: datetime | None = None
    figures: dict[str, float] = field(default_factory=dict)
    cost_per_hour_usd: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    notice: bool = False
    """An event to tell (a scaling action), not a condition that fires and resolves."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.endpoint, self.labels)


@dataclass(frozen=True)
class Alert:
    """One alert as notified: its latest finding, when it started and (if resolved) ended."""

    finding: Finding
    status: Status
    starts_at: datetime
    ends_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return self.finding.fingerprint


@dataclass(frozen=True)
class Notification:
    """What one channel delivery carries: the alerts of one group (an endpoint)."""

    group: str
    alerts: tuple[Alert, ...]
    sent_at: datetime

    @property
    def status(self) -> Status:
        if self.alerts and all(a.status == "notice" for a in self.alerts):
            return "notice"
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"


class DeliveryError(Exception):
    """A channel could not deliver; the message names the channel and the cause (no secrets).

    ``attempt_errors`` holds the error of every attempt made, oldest first."""

    def __init__(self, message: str, attempt_errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attempt_errors = list(attempt_errors) or [message]


class Channel(Protocol):
    """Delivers notifications somewhere: email, a webhook, an Alertmanager."""

    name: str

    def send(self, notification: Notification) -> list[str]:
        """Deliver or raise ``DeliveryError``; retries inside are the channel's own.

        Returns the errors of attempts that failed before one succeeded ([] at first try)."""
        ...
