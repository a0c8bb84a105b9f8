"""The local catchers ``inferplane up`` starts so that alerts reach someone out of the box:
a mail catcher (an aiosmtpd SMTP server) and a webhook receiver (an HTTP server), both on
loopback. The built-in configuration sends every alert and notice to both; a
configuration whose channels point elsewhere (a real SMTP server, a chat webhook) gets no
catcher.

Every message received is kept in the store (``control_state``, key ``"inbox"``, the
newest ``INBOX_SIZE``): when, through which catcher, the subject or path, and the payload
as it arrived (the e-mail's text part, the webhook's JSON). The dashboard's Alerts page
shows them::

    catchers = Catchers(store, smtp_port=1025, webhook_port=9095)
    catchers.start()   # serves until stop()
    ...
    catchers.stop()
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller

from inferplane.config import InferplaneConfig
from inferplane.config.alerts import EmailChannel, WebhookChannel
from inferplane.store import Store

__all__ = [
    "CATCHER_HOST",
    "INBOX_KEY",
    "INBOX_SIZE",
    "SMTP_PORT",
    "WEBHOOK_PATH",
    "WEBHOOK_PORT",
    "Catchers",
    "catchers_used",
]

log = logging.getLogger("inferplane.catchers")

CATCHER_HOST = "127.0.0.1"
SMTP_PORT = 1025
WEBHOOK_PORT = 9095
WEBHOOK_PATH = "/alerts"
INBOX_KEY = "inbox"
INBOX_SIZE = 200
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAX_BODY = 1_000_000  # a webhook body larger than this is refused (413), not stored


def catchers_used(config: InferplaneConfig) -> dict[str, int]:
    """The catchers the config's channels send to (``{"smtp": port, "webhook": port}``):
    an e-mail channel on loopback at ``SMTP_PORT``, a webhook whose URL is loopback at
    ``WEBHOOK_PORT``. Any other channel is the user's own, and needs no catcher."""
    used: dict[str, int] = {}
    for channel in config.alerts.channels if config.alerts else []:
        if isinstance(channel, EmailChannel) and channel.host in _LOOPBACK and channel.port == SMTP_PORT:
            used["smtp"] = SMTP_PORT
        elif isinstance(channel, WebhookChannel) and channel.url:
            parts = urlsplit(channel.url)
            if parts.hostname in _LOOPBACK and parts.port == WEBHOOK_PORT:
                used["webhook"] = WEBHOOK_PORT
    return used


class _Inbox:
    """The received messages, newest last, saved to the store after every arrival."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()

    def add(self, item: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        with self._lock:
            saved = self._store.load_state(INBOX_KEY) or {}
            received = [*saved.get("received", []), {"time": now.isoformat(), **item}][-INBOX_SIZE:]
            self._store.save_state(INBOX_KEY, {"received": received}, now)
        log.info("received through the %s catcher: %s", item["via"], item["subject"])


class _MailHandler:
    """aiosmtpd handler: every message is accepted and kept with its text part."""

    def __init__(self, inbox: _Inbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._inbox.add(
            {
                "via": "email",
                "subject": str(message["Subject"] or ""),
                "sender": envelope.mail_from,
                "recipients": list(envelope.rcpt_tos),
                "payload": _text_of(message),
            }
        )
        return "250 OK"


def _text_of(message: EmailMessage) -> str:
    """The message's plain text part, else its HTML part, else its raw body: what a sender
    that names a charset Python does not know, or sends HTML only, still shows."""
    body = message.get_body(("plain", "html"))
    if body is not None:
        try:
            return str(body.get_content())
        except (LookupError, UnicodeError):  # an unknown or wrong charset
            raw = body.get_payload(decode=True)
            if isinstance(raw, bytes):
                return raw.decode("utf-8", errors="replace")
    return message.as_string()


def _webhook_handler(inbox: _Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding"):
                self._answer(411, "send the body with a Content-Length")  # chunked: not read here
                return
            declared = self.headers.get("Content-Length") or "0"
            if not declared.isdigit():
                self._answer(400, "Content-Length must be a whole number of bytes")
                return
            length = int(declared)
            if length > _MAX_BODY:
                self._answer(413, "too large")
                return
            raw = self.rfile.read(length)
            if len(raw) < length:  # the sender gave up before its declared length: nothing to keep
                return
            body = raw.decode("utf-8", errors="replace")
            try:
                payload: Any = json.loads(body)
            except (json.JSONDecodeError, RecursionError):  # kept as the text that arrived
                payload = body
            subject = payload.get("status", "") if isinstance(payload, dict) else ""
            title = f"POST {self.path} {subject}".strip()
            inbox.add({"via": "webhook", "subject": title, "payload": payload})
            self._answer(200, "ok")

        def _answer(self, status: int, text: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("webhook receiver: " + format, *args)

    return Handler


class Catchers:
    """The mail catcher and the webhook receiver (either may be left out with port None)."""

    def __init__(self, store: Store, smtp_port: int | None, webhook_port: int | None) -> None:
        inbox = _Inbox(store)
        self._smtp = (
            Controller(_MailHandler(inbox), hostname=CATCHER_HOST, port=smtp_port) if smtp_port else None
        )
        handler = _webhook_handler(inbox)
        self._http = ThreadingHTTPServer((CATCHER_HOST, webhook_port), handler) if webhook_port else None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._smtp is not None:
            self._smtp.start()
        if self._http is not None:
            serve = self._http.serve_forever
            self._thread = threading.Thread(target=serve, name="webhook-receiver", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
