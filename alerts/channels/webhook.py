"""Webhook channel: POST a notification as JSON (Alertmanager v4, Slack or Teams body).

Signing: when the channel has a ``secret``, every request carries
``X-Inferplane-Signature: sha256=<hex>`` where ``<hex>`` is
``HMAC-SHA256(key=secret as UTF-8, message=raw request body bytes)``. A receiver verifies
it over the body exactly as received (before any JSON parsing), e.g. in Python::

    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-Inferplane-Signature"])

The signature covers the body only (no timestamp), so it proves origin and integrity but
not freshness; a receiver that must refuse replays dedupes on ``groupKey`` + alert times.

Delivery: transport errors, timeouts, 5xx and 429 are retried with exponential backoff;
``retries`` is the number of attempts in all. Other 4xx answers are not retried. When
every attempt failed, ``DeliveryError`` is raised (a notice is never silently dropped).

Secrets in URLs: Slack and Teams webhook URLs are credentials, so logs and errors name
only the scheme and host. httpx itself logs full request URLs on the ``httpx`` logger at
INFO level; deployments using token URLs keep that logger at WARNING.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from alerts.channels import render
from alerts.channels.attempts import attempt_with_retries
from alerts.model import Notification

__all__ = ["SIGNATURE_HEADER", "WebhookChannel", "post_json", "safe_url", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Inferplane-Signature"

WebhookFormat = Literal["alertmanager", "slack", "teams"]

_RENDERERS: dict[str, Callable[[Notification, str], Any]] = {
    "alertmanager": lambda n, receiver: render.alertmanager_payload(n, receiver),
    "slack": lambda n, _receiver: render.slack_payload(n),
    "teams": lambda n, _receiver: render.teams_payload(n),
}


class _Retryable(Exception):
    """An answer worth another attempt (5xx, 429); carries the status for the final error."""


class _Refused(Exception):
    """An answer that will not heal by retrying (a 4xx other than 429)."""


def sign(secret: str, body: bytes) -> str:
    """The ``X-Inferplane-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def safe_url(url: str) -> str:
    """Scheme and host (and port) only: paths, queries and userinfo may hold tokens."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _attempt(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    response = client.post(url, content=body, headers=headers, timeout=timeout_s)
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retryable(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        # A 4xx (bad token, bad payload) will not heal by retrying.
        raise _Refused(f"HTTP {response.status_code}: {response.text[:200]}")


def post_json(
    channel: str,
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    headers: dict[str, str] | None = None,
    secret: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] | None = None,
) -> list[str]:
    """POST ``payload`` as JSON with retries; raise ``DeliveryError`` naming ``channel`` and
    host. Returns the errors of attempts that failed before one succeeded."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if secret:
        all_headers[SIGNATURE_HEADER] = sign(secret, body)
    where = safe_url(url)
    failures = attempt_with_retries(
        channel,
        where,
        lambda: _attempt(client, url, body, all_headers, timeout_s),
        retries=retries,
        backoff_s=backoff_s,
        retry_if=_is_transient,
        describe=_describe,
        sleep=sleep,
    )
    log.info("channel %s: delivered to %s", channel, where)
    return failures


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Retryable)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, _Retryable | _Refused):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
        if retries < 1:
            raise ValueError(
                f"webhook channel {name!r}: retries={retries} must be at least 1 (attempts in all)"
            )
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook channel {name!r}: url {safe_url(url)!r} must be http:// or https://")
        self.name = name
        self.url = url
        self.format = format
        self.timeout_s = timeout_s
        self.retries = retries
        self._secret = secret
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None
        self._sleep = sleep

    def __repr__(self) -> str:
        # Never show the URL's path (it may be the token) nor the secret.
        return f"WebhookChannel(name={self.name!r}, url={safe_url(self.url)!r}, format={self.format!r})"

    def send(self, notification: Notification) -> list[str]:
        """Deliver ``notification`` or raise ``DeliveryError`` after the retries; returns
        the errors of attempts that failed before one succeeded."""
        payload = _RENDERERS[self.format](notification, self.name)
        return post_json(
            self.name,
            self._client,
            self.url,
            payload,
            secret=self._secret,
            timeout_s=self.timeout_s,
            retries=self.retries,
            sleep=self._sleep,
        )

    def close(self) -> None:
        """Close the HTTP client if this channel created it."""
        if self._owns_client:
            self._client.close()
