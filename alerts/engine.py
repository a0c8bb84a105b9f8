"""The alert engine: one evaluation reads the store, runs the rules, steps the
firing/resolved state, records each transition, delivers the notifications due through
every channel (recording every attempt), then saves the state for the next evaluation::

    engine = AlertEngine(store, config, channels)
    report = engine.evaluate()          # or evaluate(now) in a replay or a test
    print("\\n".join(report.lines()))

The state lives in the store (``control_state``, key ``"alerts"``), so a restart neither
forgets a firing alert nor notifies it twice. It is saved after the deliveries: a crash
in between repeats a notification rather than losing it.

Notices (findings with ``notice=True``: scaling actions, shutdowns) bypass the state
machine: they are events, not alerts, so they are never recorded as firing or resolved
and never count as firing. Each is sent once, grouped per endpoint, to the channels whose
configuration sets ``notices: true`` (never to an Alertmanager push); the notices already
sent are kept under ``"alerts.notices"`` so a restart does not send them again.

A failed delivery (after the channel's own retries) is recorded with each attempt's
error and logged; the notification is not re-sent until the group's next update or
repeat. Channels that want every evaluation (``pushes_every_evaluation``, the
Alertmanager push) get all firing alerts each time instead of the noise-controlled
notices, because Alertmanager expires an alert that is not pushed again and does its own
grouping and timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from alerts.evaluate import evaluate_rules
from alerts.model import Alert, Channel, DeliveryError, Finding, Notification
from alerts.readings import read_readings
from alerts.state import AlertState, NoiseSettings, Silence, from_records, step, to_records
from alerts.storage import AlertStore
from inferplane.config import InferplaneConfig

__all__ = ["STATE_KEY", "AlertEngine", "Delivery", "EvaluationReport"]

log = logging.getLogger(__name__)

STATE_KEY = "alerts"
NOTICES_KEY = "alerts.notices"
# A notice is found for as long as its event is in the rule's window (15 minutes); what
# was sent is remembered a day, well past that.
_NOTICE_MEMORY = timedelta(days=1)


@dataclass(frozen=True)
class Delivery:
    """How one notification went through one channel."""

    channel: str
    group: str
    ok: bool
    attempts: int
    error: str | None = None

    def line(self) -> str:
        outcome = "delivered" if self.ok else f"FAILED ({self.error})"
        return f"  {self.channel} <- {self.group}: {outcome} after {self.attempts} attempt(s)"


@dataclass
class EvaluationReport:
    """What one evaluation found, notified and delivered, and the rules that could not run."""

    at: datetime
    findings: list[Finding] = field(default_factory=list)
    notices: list[Finding] = field(default_factory=list)
    """Notices found for the first time in this evaluation (sent now)."""
    notifications: list[Notification] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"{self.at:%Y-%m-%d %H:%M:%S} UTC: {len(self.findings)} finding(s)"]
        lines += [f"  [{f.severity}] {f.summary}" for f in self.findings]
        lines += [f"  [notice] {f.summary}" for f in self.notices]
        lines += [f"  notify {n.group}: {n.status}, {len(n.alerts)} alert(s)" for n in self.notifications]
        lines += [d.line() for d in self.deliveries]
        lines += [f"  problem: {p}" for p in self.problems]
        return lines


class AlertEngine:
    """Evaluates the configured rules against a store and notifies through ``channels``."""

    def __init__(
        self,
        store: AlertStore,
        config: InferplaneConfig,
        channels: Sequence[Channel],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config
        self.channels = list(channels)
        self.clock = clock
        noise = config.alerts.noise if config.alerts else None
        self.noise = NoiseSettings(**noise.model_dump()) if noise else NoiseSettings()
        self.evaluate_every_s = config.alerts.evaluate_every_s if config.alerts else 60.0
        self.notice_channels = (
            {c.name for c in config.alerts.channels if getattr(c, "notices", False)}
            if config.alerts
            else set()
        )

    def evaluate(self, now: datetime | None = None) -> EvaluationReport:
        """One evaluation at ``now`` (default: the clock). Raises ``StoreError`` when the
        store cannot be read or written; the saved state is then left as it was."""
        now = now or self.clock()
        report = EvaluationReport(now)
        before = self.load_state()
        readings = read_readings(self.store, self.config, now)
        findings, report.problems = evaluate_rules(self.config, readings, now)
        report.findings = [f for f in findings if not f.notice]
        for problem in report.problems:
            log.warning("alerts: %s", problem)
        after, report.notifications = step(before, report.findings, now, self.noise, self._silences(now))
        self._record_transitions(before, after, now)
        for notification in report.notifications:
            for channel in self.channels:
                if not _pushes_every_evaluation(channel):
                    report.deliveries.append(self._deliver(channel, notification, now, record=True))
        report.deliveries += self._push_all(before, after, now)
        report.notices, deliveries = self._send_notices([f for f in findings if f.notice], now)
        report.deliveries += deliveries
        self.store.save_state(STATE_KEY, to_records(after), now)
        return report

    def _send_notices(self, notices: list[Finding], now: datetime) -> tuple[list[Finding], list[Delivery]]:
        """Send each notice not sent before to the channels that ask for notices."""
        sent: dict[str, str] = self.store.load_state(NOTICES_KEY) or {}
        fresh = [n for n in notices if n.fingerprint not in sent]
        if not fresh:
            return [], []
        groups: dict[str, list[Alert]] = {}
        for notice in fresh:
            groups.setdefault(notice.endpoint, []).append(Alert(notice, "notice", notice.since or now))
        deliveries = [
            self._deliver(channel, Notification(group, tuple(alerts), now), now, record=True)
            for group, alerts in sorted(groups.items())
            for channel in self.channels
            if channel.name in self.notice_channels and not _pushes_every_evaluation(channel)
        ]
        oldest = (now - _NOTICE_MEMORY).isoformat()
        kept = {fp: at for fp, at in sent.items() if at >= oldest}
        kept.update({n.fingerprint: now.isoformat() for n in fresh})
        self.store.save_state(NOTICES_KEY, kept, now)
        return fresh, deliveries

    def close(self) -> None:
        """Close the channels' connections (the store stays open: whoever opened it closes it)."""
        for channel in self.channels:
            close = getattr(channel, "close", None)
            if close is not None:
                close()

    def load_state(self) -> AlertState:
        """The saved firing/resolved state (empty before the first evaluation)."""
        saved = self.store.load_state(STATE_KEY)
        return from_records(saved) if saved else AlertState()

    def send_test(self, channel_name: str, now: datetime | None = None) -> Delivery:
        """Send a test notification through the channel called ``channel_name`` and record it."""
        now = now or self.clock()
        channel = next((c for c in self.channels if c.name == channel_name), None)
        if channel is None:
            known = ", ".join(c.name for c in self.channels) or "none configured"
            raise KeyError(f"no channel named {channel_name!r}; channels: {known}")
        finding = Finding(
            rule="test",
            endpoint="inferplane",
            summary=f"inferplane test notification through {channel_name}: delivery works",
            severity="info",
            since=now,
        )
        notification = Notification("inferplane", (Alert(finding, "firing", now),), now)
        return self._deliver(channel, notification, now, record=True)

    def _silences(self, now: datetime) -> list[Silence]:
        return [
            Silence(row["matchers"], row["starts_at"], row["ends_at"], row["comment"])
            for row in self.store.read_silences(now)
        ]

    def _record_transitions(self, before: AlertState, after: AlertState, now: datetime) -> None:
        for fp, alert in after.firing.items():
            if fp not in before.firing:
                self._write_event(alert, "firing", now)
        for fp, alert in before.firing.items():
            if fp not in after.firing:
                self._write_event(alert, "resolved", now)

    def _write_event(self, alert: Alert, status: Literal["firing", "resolved"], now: datetime) -> None:
        finding = alert.finding
        details = {
            "severity": finding.severity,
            "figures": finding.figures,
            "cost_per_hour_usd": finding.cost_per_hour_usd,
            "since": finding.since.isoformat() if finding.since else None,
            "labels": finding.labels,
            "starts_at": alert.starts_at.isoformat(),
        }
        self.store.write_alert_event(
            now, alert.fingerprint, finding.endpoint, finding.rule, status, finding.summary, details
        )

    def _push_all(self, before: AlertState, after: AlertState, now: datetime) -> list[Delivery]:
        """Every firing alert (and those that ended now) to channels that want them all."""
        pushers = [c for c in self.channels if _pushes_every_evaluation(c)]
        ended = {fp: a for fp, a in before.firing.items() if fp not in after.firing}
        if not pushers or not (after.firing or ended):
            return []
        groups: dict[str, list[Alert]] = {}
        for alert in after.firing.values():
            groups.setdefault(alert.finding.endpoint, []).append(alert)
        for alert in ended.values():
            resolved = Alert(alert.finding, "resolved", alert.starts_at, now)
            groups.setdefault(alert.finding.endpoint, []).append(resolved)
        changed = {a.finding.endpoint for a in ended.values()} | {
            a.finding.endpoint for fp, a in after.firing.items() if fp not in before.firing
        }
        deliveries = []
        for group, alerts in sorted(groups.items()):
            notification = Notification(group, tuple(alerts), now)
            for channel in pushers:
                # Re-pushing an unchanged group every minute is bookkeeping, not news:
                # only changes and failures go into the delivery history.
                deliveries.append(self._deliver(channel, notification, now, record=group in changed))
        return deliveries

    def _deliver(self, channel: Channel, notification: Notification, now: datetime, record: bool) -> Delivery:
        try:
            errors = channel.send(notification)
        except DeliveryError as error:
            log.error("alerts: %s", error)
            self._record_attempts(channel.name, notification, error.attempt_errors, ok=False, now=now)
            return Delivery(channel.name, notification.group, False, len(error.attempt_errors), str(error))
        if record or errors:
            self._record_attempts(channel.name, notification, errors, ok=True, now=now)
        return Delivery(channel.name, notification.group, True, len(errors) + 1)

    def _record_attempts(
        self, channel: str, notification: Notification, errors: Sequence[str], ok: bool, now: datetime
    ) -> None:
        """One row per alert per attempt: the failed ones with their error, then the success."""
        outcomes: list[str | None] = [*errors, None] if ok else list(errors)
        for alert in notification.alerts:
            for attempt, error in enumerate(outcomes, start=1):
                self.store.write_delivery(now, alert.fingerprint, channel, attempt, error is None, error)


def _pushes_every_evaluation(channel: Channel) -> bool:
    return bool(getattr(channel, "pushes_every_evaluation", False))
