"""Pure rendering of a ``Notification`` into what each channel sends.

No I/O and no clock: every time shown comes from the notification itself.

- ``subject``, ``text_body``, ``html_body``: the e-mail (and chat) wording; every alert
  with its summary, the figures that fired it, its cost in $ per hour and since when.
- ``alertmanager_payload``: Alertmanager's webhook payload, version 4, with the fields of
  Alertmanager 0.34 (``notification_reason``, ``routeLabels``), so any receiver written
  for Alertmanager (PagerDuty bridges, alerta, custom hooks) takes ours as is; a test holds
  it to what a real Alertmanager sends.
- ``alertmanager_alerts``: the body of Alertmanager's ``POST /api/v2/alerts``.
- ``slack_payload`` and ``teams_payload``: Slack incoming-webhook and Microsoft Teams
  (Adaptive Card message) bodies.

A notice (a scaling action: an event, not an alert) reads ``[NOTICE:n]`` with its signed
change of spend (``+$2.40/h``, ``−$2.40/h``); in Alertmanager's shape its status is
``"notice"`` and it ends when it starts (only channels that set ``notices: true`` get one).

Naive datetimes are read as UTC.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from alerts.model import Alert, Notification, signed_dollars_per_hour

__all__ = [
    "ZERO_TIME",
    "alert_annotations",
    "alert_labels",
    "alertmanager_alerts",
    "alertmanager_payload",
    "html_body",
    "rfc3339",
    "slack_payload",
    "subject",
    "teams_payload",
    "text_body",
]

# What Alertmanager writes as endsAt of an alert that is still firing (Go's zero time).
ZERO_TIME = "0001-01-01T00:00:00Z"

# Slack rejects messages with more than 50 blocks; keep room for the header and the "more" line.
_SLACK_MAX_ALERTS = 45


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 with a ``Z`` suffix (naive values are taken as UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    spec = "milliseconds" if utc.microsecond else "seconds"
    return utc.isoformat(timespec=spec).replace("+00:00", "Z")


def _ends_at(alert: Alert, notification: Notification) -> datetime | None:
    """When a resolved alert ended; a resolved alert without a time ended when notified; a
    notice (an event) ends when it starts."""
    if alert.status == "firing":
        return None
    if alert.status == "notice":
        return alert.starts_at
    return alert.ends_at or notification.sent_at


def _figures(alert: Alert) -> str:
    return ", ".join(f"{key}={value:g}" for key, value in alert.finding.figures.items())


def _cost(alert: Alert) -> str | None:
    cost = alert.finding.cost_per_hour_usd
    return None if cost is None else f"${cost:,.2f}/h"


def _total_cost(notification: Notification) -> float | None:
    """Cost per hour of what is still firing; None when no firing alert has a price."""
    costs = [
        a.finding.cost_per_hour_usd
        for a in notification.alerts
        if a.status == "firing" and a.finding.cost_per_hour_usd is not None
    ]
    return sum(costs) if costs else None


def _since(alert: Alert) -> str:
    return rfc3339(alert.finding.since or alert.starts_at)


def _facts(alert: Alert, notification: Notification) -> list[tuple[str, str]]:
    """The (title, value) lines every human-readable format shows for one alert."""
    facts = [
        ("Status", alert.status),
        ("Severity", alert.finding.severity),
        ("Endpoint", alert.finding.endpoint),
    ]
    if figures := _figures(alert):
        facts.append(("Figures", figures))
    if cost := _cost(alert):
        facts.append(("Cost", cost))
    facts.append(("Since", _since(alert)))
    if alert.status == "resolved" and (ended := _ends_at(alert, notification)) is not None:
        facts.append(("Resolved at", rfc3339(ended)))
    return facts


def subject(notification: Notification) -> str:
    """One line: status, count, group, rules and the firing cost, e.g.
    ``[FIRING:2] chat-prod: token_spike, error_rate ($12.50/h)``."""
    rules = ", ".join(dict.fromkeys(a.finding.rule for a in notification.alerts))
    line = f"[{notification.status.upper()}:{len(notification.alerts)}] {notification.group}: {rules}"
    if notification.status == "notice":
        change = sum(a.finding.figures.get("cost_change_per_hour_usd", 0.0) for a in notification.alerts)
        return f"{line} ({signed_dollars_per_hour(change)})"
    total = _total_cost(notification)
    return line if total is None else f"{line} (${total:,.2f}/h)"


def text_body(notification: Notification) -> str:
    """A short plain-text body: one paragraph per alert."""
    lines = [subject(notification), ""]
    for alert in notification.alerts:
        lines.append(f"{alert.finding.rule}: {alert.finding.summary}")
        lines.extend(f"  {title}: {value}" for title, value in _facts(alert, notification))
        lines.append("")
    return "\n".join(lines)


def html_body(notification: Notification) -> str:
    """The same content as ``text_body`` as HTML; every interpolated value is escaped."""
    esc = html.escape
    parts = [f"<html><body><h2>{esc(subject(notification))}</h2>"]
    for alert in notification.alerts:
        parts.append(f"<h3>{esc(alert.finding.rule)}: {esc(alert.finding.summary)}</h3><table>")
        rows = _facts(alert, notification)
        parts.extend(f"<tr><th align='left'>{esc(t)}</th><td>{esc(v)}</td></tr>" for t, v in rows)
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def alert_labels(alert: Alert) -> dict[str, str]:
    """Alertmanager labels: the finding's own, then alertname, endpoint and severity (which win)."""
    finding = alert.finding
    return {
        **finding.labels,
        "alertname": finding.rule,
        "endpoint": finding.endpoint,
        "severity": finding.severity,
    }


def alert_annotations(alert: Alert) -> dict[str, str]:
    """Alertmanager annotations (strings only, as Alertmanager requires)."""
    description = alert.finding.summary
    if figures := _figures(alert):
        description = f"{description} ({figures})"
    annotations = {"summary": alert.finding.summary, "description": description, "since": _since(alert)}
    if alert.finding.cost_per_hour_usd is not None:
        annotations["cost_per_hour_usd"] = f"{alert.finding.cost_per_hour_usd:.4f}"
    return annotations


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    """The key/value pairs every dict shares (Alertmanager's commonLabels/commonAnnotations)."""
    if not dicts:
        return {}
    first, *rest = dicts
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


def alertmanager_payload(
    notification: Notification, receiver: str, external_url: str = "", generator_url: str = ""
) -> dict[str, Any]:
    """Alertmanager webhook payload v4 for ``notification`` (grouped by endpoint)."""
    alerts = []
    for alert in notification.alerts:
        ended = _ends_at(alert, notification)
        alerts.append(
            {
                "status": alert.status,
                "labels": alert_labels(alert),
                "annotations": alert_annotations(alert),
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": ZERO_TIME if ended is None else rfc3339(ended),
                "generatorURL": generator_url,
                "fingerprint": alert.fingerprint,
            }
        )
    # Alertmanager's own field order (v0.34: template.Data, then the webhook Message).
    return {
        "receiver": receiver,
        "status": notification.status,
        "alerts": alerts,
        # Since 0.32. A notification does not carry why it was sent; Alertmanager too says
        # "unknown" when it cannot tell, and "all alerts resolved" is all a resolve can be.
        "notification_reason": "all alerts resolved" if notification.status == "resolved" else "unknown",
        "groupLabels": {"endpoint": notification.group},
        "commonLabels": _common([alert_labels(a) for a in notification.alerts]),
        "commonAnnotations": _common([alert_annotations(a) for a in notification.alerts]),
        "routeLabels": {},  # since 0.34; inferplane's one route has no labels
        "externalURL": external_url,
        "version": "4",
        "groupKey": f'{{}}:{{endpoint="{notification.group}"}}',
        "truncatedAlerts": 0,
    }


def alertmanager_alerts(notification: Notification, generator_url: str = "") -> list[dict[str, Any]]:
    """Body of Alertmanager's ``POST /api/v2/alerts``.

    A firing alert carries no endsAt: Alertmanager then keeps it active for its
    ``resolve_timeout`` (5 minutes by default), so firing alerts must be pushed again
    before that; a resolved one carries its resolve time.
    """
    pushed = []
    for alert in notification.alerts:
        item: dict[str, Any] = {
            "labels": alert_labels(alert),
            "annotations": alert_annotations(alert),
            "startsAt": rfc3339(alert.starts_at),
            "generatorURL": generator_url,
        }
        if (ended := _ends_at(alert, notification)) is not None:
            item["endsAt"] = rfc3339(ended)
        pushed.append(item)
    return pushed


def _slack_escape(text: str) -> str:
    """Slack mrkdwn needs only &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notification: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (the fallback/notification line) and ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject(notification)[:150]}}
    ]
    for alert in notification.alerts[:_SLACK_MAX_ALERTS]:
        facts = "\n".join(f"*{t}:* {_slack_escape(v)}" for t, v in _facts(alert, notification))
        title = _slack_escape(f"{alert.finding.rule}: {alert.finding.summary}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{facts}"[:3000]}})
    if (hidden := len(notification.alerts) - _SLACK_MAX_ALERTS) > 0:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"and {hidden} more"}]})
    return {"text": subject(notification), "blocks": blocks}


def teams_payload(notification: Notification) -> dict[str, Any]:
    """A Microsoft Teams incoming-webhook / Workflows body: a message with one Adaptive Card."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": subject(notification),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    for alert in notification.alerts:
        title = f"{alert.finding.rule}: {alert.finding.summary}"
        body.append({"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True, "separator": True})
        facts = [{"title": t, "value": v} for t, v in _facts(alert, notification)]
        body.append({"type": "FactSet", "facts": facts})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}
