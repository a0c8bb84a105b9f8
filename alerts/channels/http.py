"""JSON over HTTP for the channels that POST (webhook, Alertmanager): one place for the
client, timeouts, retries with backoff, error classification, signing and URL redaction.

::

    poster = JsonPoster("oncall-hook", timeout_s=10, retries=3)
    earlier_failures = poster.post("https://hooks.example.com/T0/B0/xyz", payload, secret=None)
    poster.close()

Delivery: transport errors, timeouts, 5xx and 429 are retried with exponential backoff
(``alerts.channels.attempts``); ``retries`` is the number of attempts in all. Other 4xx
answers are not retried. When every attempt failed, ``DeliveryError`` is raised naming
the channel and the host only (a notice is never silently dropped).

Secrets in URLs: Slack and Teams webhook URLs are credentials, so logs, errors and reprs
name only the scheme and host (``safe_url``). httpx itself logs full request URLs on the
``httpx`` logger at INFO level; deployments using token URLs keep that logger at WARNING.

Signing: with a ``secret``, the request carries ``X-Inferplane-Signature: sha256=<hex>``,
HMAC-SHA256 of the raw body bytes (see ``alerts.channels.webhook`` for how to verify it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from alerts.channels.attempts import attempt_with_retries

__all__ = ["SIGNATURE_HEADER", "JsonPoster", "post_json", "safe_url", "sign"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Inferplane-Signature"


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


class JsonPoster:
    """The HTTP side of one channel: its client (created here unless ``client`` is given,
    then closed by ``close``), its timeout, attempts in all (``retries``) and backoff sleep.

    ``client`` lets tests (or a shared pool) supply the httpx client; ``sleep`` replaces
    the backoff sleep. ``kind`` only words the error for a bad ``retries``.
    """

    def __init__(
        self,
        channel: str,
        *,
        kind: str = "channel",
        timeout_s: float = 10.0,
        retries: int = 3,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if retries < 1:
            raise ValueError(
                f"{kind} channel {channel!r}: retries={retries} must be at least 1 (attempts in all)"
            )
        self.channel = channel
        self.timeout_s = timeout_s
        self.retries = retries
        self._client = client or httpx.Client(timeout=timeout_s)
        self._owns_client = client is None
        self._sleep = sleep

    def post(self, url: str, payload: Any, *, secret: str | None = None) -> list[str]:
        """``post_json`` with this channel's client and settings."""
        return post_json(
            self.channel,
            self._client,
            url,
            payload,
            secret=secret,
            timeout_s=self.timeout_s,
            retries=self.retries,
            sleep=self._sleep,
        )

    def close(self) -> None:
        """Close the HTTP client if this poster created it."""
        if self._owns_client:
            self._client.close()


def _attempt(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    response = client.post(url, content=body, headers=headers, timeout=timeout_s)
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retryable(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        # A 4xx (bad token, bad payload) will not heal by retrying.
        raise _Refused(f"HTTP {response.status_code}: {response.text[:200]}")


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _Retryable)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, _Retryable | _Refused):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
