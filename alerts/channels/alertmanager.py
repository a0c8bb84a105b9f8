"""Alertmanager channel: push alerts to an existing Alertmanager (``POST /api/v2/alerts``).

Alertmanager then groups, silences, inhibits and routes them with its own config, so a
team that already runs one keeps a single place for on-call routing.

A firing alert is pushed without ``endsAt``: Alertmanager keeps it active for its
``resolve_timeout`` (5 minutes by default), so the alert engine must push firing alerts
again within that time; a resolved alert is pushed with ``endsAt`` at its resolve time.
Delivery, retries and errors are the webhook channel's (``alerts.channels.http``).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from alerts.channels import render
from alerts.channels.http import JsonPoster, safe_url
from alerts.model import Notification

__all__ = ["AlertmanagerChannel"]


class AlertmanagerChannel:
    """Push each notification's alerts to the Alertmanager at ``url`` (its base URL).

    ``retries`` is the number of attempts in all; ``client`` and ``sleep`` are for tests.
    """

    # Alertmanager expires an alert not pushed again within its resolve_timeout and does
    # its own grouping and repeats: the engine pushes every firing alert each evaluation.
    pushes_every_evaluation = True

    def __init__(
        self,
        name: str,
        url: str,
        timeout_s: float = 10.0,
        retries: int = 3,
        *,
        generator_url: str = "",
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._http = JsonPoster(
            name, kind="alertmanager", timeout_s=timeout_s, retries=retries, client=client, sleep=sleep
        )
        self.name = name
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.generator_url = generator_url

    def __repr__(self) -> str:
        return f"AlertmanagerChannel(name={self.name!r}, url={safe_url(self.url)!r})"

    def send(self, notification: Notification) -> list[str]:
        """Push the alerts or raise ``DeliveryError`` after the retries; returns the errors
        of attempts that failed before one succeeded."""
        alerts = render.alertmanager_alerts(notification, self.generator_url)
        return self._http.post(f"{self.url}/api/v2/alerts", alerts)

    def close(self) -> None:
        """Close the HTTP client if this channel created it."""
        self._http.close()
