"""Alert channels: where notifications go. One channel per module, registered in ``CHANNELS``.

- ``email.EmailChannel``: SMTP (STARTTLS, implicit TLS or plain), plain text + HTML.
- ``webhook.WebhookChannel``: JSON POST as Alertmanager webhook v4, Slack or Teams body,
  optionally HMAC-signed.
- ``alertmanager.AlertmanagerChannel``: push to an existing Alertmanager's API v2.

All wording and payloads come from ``render`` (pure functions of a ``Notification``).
The channels that POST JSON share their client, retries, error classification, signing
and URL redaction in ``http`` (``JsonPoster``); each channel module keeps its payload.

How to add a channel
--------------------
1. Write ``alerts/channels/<kind>.py`` with one class satisfying ``alerts.model.Channel``:
   a ``name`` attribute and ``send(notification)`` that delivers or raises
   ``DeliveryError`` (message names the channel and host, never a secret; original
   exception chained). Retries with backoff live inside ``send``: an HTTP channel posts
   through ``http.JsonPoster``, another one wraps its attempt in ``attempts``.
2. Render in ``render.py`` (pure, no I/O) if the format is new; test the payload there.
3. Add ``"<kind>": <Class>`` to ``CHANNELS`` below and to ``__all__``.
4. Test it against a real local server (see ``tests/test_channels.py``), including a
   server that refuses, one that errors and one that hangs.
"""

from __future__ import annotations

from alerts.channels.alertmanager import AlertmanagerChannel
from alerts.channels.email import EmailChannel
from alerts.channels.webhook import WebhookChannel

__all__ = ["CHANNELS", "AlertmanagerChannel", "EmailChannel", "WebhookChannel"]

# kind (as written in the config) -> class; the config layer builds instances from it.
CHANNELS: dict[str, type[EmailChannel] | type[WebhookChannel] | type[AlertmanagerChannel]] = {
    "email": EmailChannel,
    "webhook": WebhookChannel,
    "alertmanager": AlertmanagerChannel,
}
