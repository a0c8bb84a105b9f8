"""Webhook channel: POST a notification as JSON (Alertmanager v4, Slack or Teams body).

Signing: when the channel has a ``secret``, every request carries
``X-Inferplane-Signature: sha256=<hex>`` where ``<hex>`` is
``HMAC-SHA256(key=secret as UTF-8, message=raw request body bytes)``. A receiver verifies
it over the body exactly as received (before any JSON parsing), e.g. in Python::

    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-Inferplane-Signature"])

The signature covers the body only (no timestamp), so it proves origin and integrity but
not freshness; a receiver that must refuse replays dedupes on ``groupKey`` + alert times.

Delivery, retries, error classification and URL redaction are shared with the
Alertmanager channel in ``alerts.channels.http``; this module only picks the payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from alerts.channels import render
from alerts.channels.http import SIGNATURE_HEADER, JsonPoster, safe_url
from alerts.model import Notification

# SIGNATURE_HEADER is re-exported: receivers of this channel verify that header.
__all__ = ["SIGNATURE_HEADER", "WebhookChannel"]

WebhookFormat = Literal["alertmanager", "slack", "teams"]

_RENDERERS: dict[str, Callable[[Notification, str], Any]] = {
    "alertmanager": lambda n, receiver: render.alertmanager_payload(n, receiver),
    "slack": lambda n, _receiver: render.slack_payload(n),
    "teams": lambda n, _receiver: render.teams_payload(n),
}


class WebhookChannel:
    """POST each notification as JSON to ``url`` in the ``format`` its receiver expects.

    ``client`` lets tests (or a shared pool) supply the httpx client; ``sleep`` replaces
    the backoff sleep. See the module docstring for signing and retry rules.
    """

    def __init__(
        self,
        name: str,
        url: str,
        format: WebhookFormat = "alertmanager",
        secret: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if format not in _RENDERERS:
            raise ValueError(
                f"webhook channel {name!r}: format {format!r} unknown; use one of {sorted(_RENDERERS)}"
            )
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook channel {name!r}: url {safe_url(url)!r} must be http:// or https://")
        self._http = JsonPoster(
            name, kind="webhook", timeout_s=timeout_s, retries=retries, client=client, sleep=sleep
        )
        self.name = name
        self.url = url
        self.format = format
        self.timeout_s = timeout_s
        self.retries = retries
        self._secret = secret

    def __repr__(self) -> str:
        # Never show the URL's path (it may be the token) nor the secret.
        return f"WebhookChannel(name={self.name!r}, url={safe_url(self.url)!r}, format={self.format!r})"

    def send(self, notification: Notification) -> list[str]:
        """Deliver ``notification`` or raise ``DeliveryError`` after the retries; returns
        the errors of attempts that failed before one succeeded."""
        payload = _RENDERERS[self.format](notification, self.name)
        return self._http.post(self.url, payload, secret=self._secret)

    def close(self) -> None:
        """Close the HTTP client if this channel created it."""
        self._http.close()
