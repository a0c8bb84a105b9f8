"""E-mail channel: one multipart/alternative message (plain text + HTML) per notification.

``security``: ``"starttls"`` (connect plain, upgrade with STARTTLS, refuse to go on
without it; port 587), ``"ssl"`` (implicit TLS; port 465) or ``"none"`` (plain; only for
a relay on a trusted network). Credentials come from the caller; the password is never
logged nor put in an error.

Retries: connection errors, timeouts and 4xx SMTP answers (temporary, by the RFC) are
retried with exponential backoff; ``retries`` is the number of attempts in all.
Authentication failures, 5xx answers and certificate errors are not retried. Every
failure ends in ``DeliveryError`` naming the channel and host.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from alerts.channels import render
from alerts.channels.attempts import attempt_with_retries
from alerts.model import DeliveryError, Notification

__all__ = ["EmailChannel", "build_message"]

log = logging.getLogger(__name__)

Security = Literal["starttls", "ssl", "none"]


def build_message(notification: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message for ``notification``: rendered subject, plain part and HTML part."""
    message = EmailMessage()
    message["Subject"] = render.subject(notification)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(notification.sent_at.timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(render.text_body(notification))
    message.add_alternative(render.html_body(notification), subtype="html")
    return message


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: network trouble or a 4xx (temporary) SMTP answer."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(
        exc, smtplib.SMTPRecipientsRefused | smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError
    ):
        return False
    # smtplib.SMTPException is an OSError too, so this also covers "server disconnected".
    return isinstance(exc, OSError)


class EmailChannel:
    """Send notifications by SMTP to ``recipients``.

    ``ssl_context`` (default: the system trust store) and ``sleep`` (the backoff sleep)
    are injectable for tests and private CAs.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(
                f"email channel {name!r}: security {security!r} unknown; use starttls, ssl or none"
            )
        if not recipients:
            raise ValueError(f"email channel {name!r}: no recipients")
        if retries < 1:
            raise ValueError(
                f"email channel {name!r}: retries={retries} must be at least 1 (attempts in all)"
            )
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.security = security
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self.retries = retries
        self._ssl_context = ssl_context
        self._backoff_s = backoff_s
        self._sleep = sleep

    def __repr__(self) -> str:
        where = f"host={self.host!r}, port={self.port}, security={self.security!r}"
        return f"EmailChannel(name={self.name!r}, {where})"

    def send(self, notification: Notification) -> list[str]:
        """Deliver to every recipient or raise ``DeliveryError`` after the retries; returns
        the errors of attempts that failed before one succeeded."""
        message = build_message(notification, self.sender, self.recipients)
        where = f"SMTP {self.host}:{self.port}"
        refused: dict[str, tuple[int, bytes]] = {}

        def _attempt() -> None:
            refused.update(self._deliver(message))

        failures = attempt_with_retries(
            self.name,
            where,
            _attempt,
            retries=self.retries,
            backoff_s=self._backoff_s,
            retry_if=_is_transient,
            sleep=self._sleep,
        )
        if refused:
            # The others got it; retrying would send them duplicates, so report and stop.
            raise DeliveryError(
                f"channel {self.name!r}: {where} refused recipients {sorted(refused)}",
                attempt_errors=[*failures, f"refused recipients {sorted(refused)}"],
            )
        log.info("channel %s: mailed %d recipients via %s", self.name, len(self.recipients), where)
        return failures

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        """One attempt: connect, secure, log in, send; returns the refused recipients."""
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.security == "starttls":
                # starttls() raises SMTPNotSupportedError when the server does not offer it:
                # never fall back to sending credentials and alerts in clear.
                smtp.starttls(context=self._context())
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            return smtp.send_message(message, self.sender, list(self.recipients))
