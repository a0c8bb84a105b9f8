"""Noise control: findings over time become firing/resolved alerts, grouped per endpoint
and notified the way Alertmanager does it.

``step`` is pure; the caller keeps the state (``to_records``/``from_records`` give plain
JSON-able dicts for a store) and hands every notification to the channels::

    state, notices = step(state, findings, now, NoiseSettings(), silences)

Semantics, per endpoint group:

* a fingerprint in ``findings`` fires (starting now, or keeping its ``starts_at``); one
  absent resolves with ``ends_at = now``. A resolve is notified only when the alert was
  notified firing (nobody needs to hear that an unseen alert ended); ``info`` findings
  (one-shot notices) resolve silently;
* a new group waits ``group_wait`` before its first notification, so alerts arriving
  together go out together;
* afterwards a **change** (a firing alert not in the last notification, or a resolve to
  tell) goes out once ``group_interval`` has passed since the last notification, so a
  flapping alert costs at most one notification per interval. An alert that resolves and
  fires again before its resolve was notified keeps firing as if it never stopped;
* an unchanged firing group is re-notified after ``repeat_interval``;
* a notification carries every visible firing alert of the group and the resolves due;
* silenced alerts are left out while a silence matches (after it ends they are a change,
  so they go out again if still firing; one silenced after it was told is still open at
  the receiver and comes back with the next repeat). Resolves are never silenced: a receiver that was
  told an alert fires needs to hear it ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alerts.model import Alert, Finding, Notification

__all__ = ["AlertState", "GroupState", "NoiseSettings", "Silence", "from_records", "step", "to_records"]


@dataclass(frozen=True)
class NoiseSettings:
    """Alertmanager's three timers, in seconds."""

    group_wait_s: float = 30
    group_interval_s: float = 300
    repeat_interval_s: float = 14400


_DEFAULT_SETTINGS = NoiseSettings()


@dataclass(frozen=True)
class Silence:
    """Mutes matching alerts in ``[starts_at, ends_at)``.

    ``matchers`` keys are ``rule``, ``endpoint``, ``severity`` or a label name; every one
    must equal the finding's value."""

    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    comment: str = ""

    def mutes(self, finding: Finding, now: datetime) -> bool:
        if not self.starts_at <= now < self.ends_at:
            return False
        known = {"rule": finding.rule, "endpoint": finding.endpoint, "severity": finding.severity}
        return all(known.get(k, finding.labels.get(k)) == v for k, v in self.matchers.items())


@dataclass(frozen=True)
class GroupState:
    """One endpoint group: when it formed, when it was last notified, and which firing
    fingerprints that notification carried."""

    created_at: datetime
    last_notified_at: datetime | None = None
    notified: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AlertState:
    """Firing alerts and resolves still to notify (by fingerprint), and the groups."""

    firing: Mapping[str, Alert] = field(default_factory=dict)
    resolved: Mapping[str, Alert] = field(default_factory=dict)
    groups: Mapping[str, GroupState] = field(default_factory=dict)


def step(
    state: AlertState,
    findings: Iterable[Finding],
    now: datetime,
    settings: NoiseSettings = _DEFAULT_SETTINGS,
    silences: Iterable[Silence] = (),
) -> tuple[AlertState, list[Notification]]:
    """Apply this moment's findings to ``state``; return the new state and what to send."""
    firing, resolved = _track(state, {f.fingerprint: f for f in findings}, now)
    groups = _groups(state.groups, firing, resolved, now)
    muted = list(silences)
    notices: list[Notification] = []
    for name, group in sorted(groups.items()):
        visible = {fp: a for fp, a in firing.items() if _group(a) == name and not _muted(a, muted, now)}
        due = {fp: a for fp, a in resolved.items() if _group(a) == name}
        if _should_send(group, visible, due, now, settings):
            notices.append(_notification(name, visible, due, now))
            # A muted alert told earlier is still open at the receiver: keep it, so its
            # resolve is told too.
            still_open = group.notified & {fp for fp, a in firing.items() if _group(a) == name}
            groups[name] = replace(group, last_notified_at=now, notified=frozenset(visible) | still_open)
            resolved = {fp: a for fp, a in resolved.items() if fp not in due}
    live = {_group(a) for a in (*firing.values(), *resolved.values())}
    groups = {name: g for name, g in groups.items() if name in live}
    return AlertState(firing=firing, resolved=resolved, groups=groups), notices


def _group(alert: Alert) -> str:
    return alert.finding.endpoint


def _muted(alert: Alert, silences: list[Silence], now: datetime) -> bool:
    return any(s.mutes(alert.finding, now) for s in silences)


def _track(
    state: AlertState, findings: dict[str, Finding], now: datetime
) -> tuple[dict[str, Alert], dict[str, Alert]]:
    """New firing set and resolves to notify, before any notification."""
    firing: dict[str, Alert] = {}
    for fp, finding in findings.items():
        # A resolve not yet notified is taken back: to the receiver it never stopped.
        before = state.firing.get(fp) or state.resolved.get(fp)
        starts_at = before.starts_at if before else now
        firing[fp] = Alert(finding=finding, status="firing", starts_at=starts_at)
    resolved = {fp: a for fp, a in state.resolved.items() if fp not in firing}
    for fp, alert in state.firing.items():
        if fp not in firing and _worth_resolving(state, alert):
            resolved[fp] = replace(alert, status="resolved", ends_at=now)
    return firing, resolved


def _worth_resolving(state: AlertState, alert: Alert) -> bool:
    group = state.groups.get(_group(alert))
    notified = group is not None and alert.fingerprint in group.notified
    return notified and alert.finding.severity != "info"


def _groups(
    before: Mapping[str, GroupState], firing: dict[str, Alert], resolved: dict[str, Alert], now: datetime
) -> dict[str, GroupState]:
    groups = dict(before)
    for alert in (*firing.values(), *resolved.values()):
        groups.setdefault(_group(alert), GroupState(created_at=now))
    return groups


def _should_send(
    group: GroupState,
    visible: dict[str, Alert],
    due: dict[str, Alert],
    now: datetime,
    settings: NoiseSettings,
) -> bool:
    if group.last_notified_at is None:
        return bool(visible) and now - group.created_at >= timedelta(seconds=settings.group_wait_s)
    since = now - group.last_notified_at
    changed = bool(due) or not set(visible) <= group.notified
    if changed:
        return since >= timedelta(seconds=settings.group_interval_s)
    return bool(visible) and since >= timedelta(seconds=settings.repeat_interval_s)


def _notification(name: str, visible: dict[str, Alert], due: dict[str, Alert], now: datetime) -> Notification:
    # Firing first (what needs action), then resolves; oldest first within each.
    alerts = sorted(
        (*visible.values(), *due.values()), key=lambda a: (a.status != "firing", a.starts_at, a.fingerprint)
    )
    return Notification(group=name, alerts=tuple(alerts), sent_at=now)


# --- records ------------------------------------------------------------------------------


def to_records(state: AlertState) -> dict[str, Any]:
    """``state`` as plain JSON-able dicts (times as ISO 8601 strings)."""
    return {
        "firing": [_alert_record(a) for a in state.firing.values()],
        "resolved": [_alert_record(a) for a in state.resolved.values()],
        "groups": {
            name: {
                "created_at": g.created_at.isoformat(),
                "last_notified_at": _iso(g.last_notified_at),
                "notified": sorted(g.notified),
            }
            for name, g in state.groups.items()
        },
    }


def from_records(records: Mapping[str, Any]) -> AlertState:
    """The inverse of ``to_records``."""
    firing = [_alert_of(r) for r in records["firing"]]
    resolved = [_alert_of(r) for r in records["resolved"]]
    groups = {
        name: GroupState(
            created_at=datetime.fromisoformat(g["created_at"]),
            last_notified_at=_time(g["last_notified_at"]),
            notified=frozenset(g["notified"]),
        )
        for name, g in records["groups"].items()
    }
    return AlertState(
        firing={a.fingerprint: a for a in firing},
        resolved={a.fingerprint: a for a in resolved},
        groups=groups,
    )


def _iso(time: datetime | None) -> str | None:
    return time.isoformat() if time is not None else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _alert_record(alert: Alert) -> dict[str, Any]:
    finding = asdict(alert.finding)
    finding["since"] = _iso(alert.finding.since)
    return {
        "finding": finding,
        "status": alert.status,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": _iso(alert.ends_at),
    }


def _alert_of(record: Mapping[str, Any]) -> Alert:
    finding = Finding(**{**record["finding"], "since": _time(record["finding"]["since"])})
    return Alert(
        finding=finding,
        status=record["status"],
        starts_at=datetime.fromisoformat(record["starts_at"]),
        ends_at=_time(record["ends_at"]),
    )
