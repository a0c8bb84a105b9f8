"""Alert channels against real local servers: aiosmtpd (plain, STARTTLS, implicit TLS),
an http.server receiver, a socket that never answers, and a real Alertmanager.

Synchronization is by events and polling with deadlines; backoff sleeps are injected
(recorded, not slept) so retry tests run fast and can count the waits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.channels import CHANNELS, AlertmanagerChannel, EmailChannel, WebhookChannel, render
from alerts.channels.webhook import SIGNATURE_HEADER
from alerts.model import Alert, DeliveryError, Finding, Notification
from tests.local_servers import Receiver, Smtp, free_port, start_receiver, start_smtp, wait_for

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# ---------------------------------------------------------------- values


def _finding(**overrides: Any) -> Finding:
    values: dict[str, Any] = {
        "rule": "token_spike",
        "endpoint": "chat-prod",
        "summary": "Tokens per minute 4x baseline <script>",
        "severity": "critical",
        "since": T0,
        "figures": {"tokens_per_minute": 5200.0, "baseline": 1300.0},
        "cost_per_hour_usd": 12.5,
        "labels": {"team": "ml"},
    }
    return Finding(**{**values, **overrides})


def _firing(finding: Finding | None = None, starts_at: dt.datetime = T0) -> Notification:
    alert = Alert(finding or _finding(), "firing", starts_at)
    return Notification("chat-prod", (alert,), starts_at + dt.timedelta(minutes=1))


def _resolved(
    ends_at: dt.datetime, finding: Finding | None = None, starts_at: dt.datetime = T0
) -> Notification:
    alert = Alert(finding or _finding(), "resolved", starts_at, ends_at)
    return Notification("chat-prod", (alert,), ends_at)


def test_registry_names_every_channel() -> None:
    assert CHANNELS == {"email": EmailChannel, "webhook": WebhookChannel, "alertmanager": AlertmanagerChannel}


# ---------------------------------------------------------------- rendering


def test_html_body_escapes_and_text_body_carries_figures_and_cost() -> None:
    notification = _firing()
    html = render.html_body(notification)
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = render.text_body(notification)
    for expected in ("tokens_per_minute=5200", "baseline=1300", "$12.50/h", "2025-03-01T12:00:00Z"):
        assert expected in text and expected in html
    assert render.subject(notification) == "[FIRING:1] chat-prod: token_spike ($12.50/h)"


@pytest.mark.parametrize(
    ("name", "alerts", "subject", "common_alertname"),
    [
        ("two rules, one firing", [("token_spike", "firing", 2.0), ("error_rate", "resolved", 3.0)],
         "[FIRING:2] chat-prod: token_spike, error_rate ($2.00/h)", None),
        ("all resolved: no cost in subject", [("token_spike", "resolved", 2.0)],
         "[RESOLVED:1] chat-prod: token_spike", "token_spike"),
        ("no price", [("token_spike", "firing", None)], "[FIRING:1] chat-prod: token_spike", "token_spike"),
    ],
)  # fmt: skip
def test_render_groups(
    name: str, alerts: list[tuple[str, Any, float | None]], subject: str, common_alertname: str | None
) -> None:
    built = tuple(
        Alert(_finding(rule=rule, cost_per_hour_usd=cost), status, T0, None) for rule, status, cost in alerts
    )
    notification = Notification("chat-prod", built, T0 + dt.timedelta(minutes=3))
    assert render.subject(notification) == subject, name
    payload = render.alertmanager_payload(notification, "r")
    assert payload["commonLabels"].get("alertname") == common_alertname, name
    for pushed, alert in zip(payload["alerts"], built, strict=True):
        resolved = alert.status == "resolved"
        # A resolved alert without its own end time ended when it was notified.
        assert pushed["endsAt"] == ("2025-03-01T12:03:00Z" if resolved else render.ZERO_TIME), name
        assert ("cost_per_hour_usd" in pushed["annotations"]) == (alert.finding.cost_per_hour_usd is not None)
    assert render.rfc3339(dt.datetime(2025, 3, 1, 12, 0, 0, 250000)) == "2025-03-01T12:00:00.250Z"


def test_webhook_rejects_a_non_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookChannel("hook", "ftp://example.com/x")


# ---------------------------------------------------------------- SMTP


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", b"s3cret-pw")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(cert_pem)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "key.pem").write_bytes(key_pem)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


@pytest.fixture
def smtp_plain() -> Iterator[Smtp]:
    controller, smtp = start_smtp()
    yield smtp
    controller.stop()


@pytest.fixture
def smtp_starttls(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Smtp]:
    server_ctx, client_ctx = tls_contexts
    controller, smtp = start_smtp(
        tls_context=server_ctx, require_starttls=True, authenticator=_authenticator, auth_require_tls=True
    )
    smtp.client_ctx = client_ctx
    yield smtp
    controller.stop()


@pytest.fixture
def smtp_ssl(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[Smtp]:
    server_ctx, client_ctx = tls_contexts
    controller, smtp = start_smtp(ssl_context=server_ctx)
    smtp.client_ctx = client_ctx
    yield smtp
    controller.stop()


def _assert_full_message(message: EmailMessage) -> None:
    assert message["Subject"] == "[FIRING:1] chat-prod: token_spike ($12.50/h)"
    assert message["To"] == "oncall@example.com, ml@example.com"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    plain_text, html_text = plain.get_content(), html.get_content()
    for expected in ("tokens_per_minute=5200", "baseline=1300", "$12.50/h", "Since: 2025-03-01T12:00:00Z"):
        assert expected in plain_text
    assert "$12.50/h" in html_text and "&lt;script&gt;" in html_text and "<script>" not in html_text


def _email(smtp: Smtp, security: Any, **kwargs: Any) -> EmailChannel:
    return EmailChannel(
        "mail-oncall", "127.0.0.1", smtp.port, "inferplane@example.com",
        ["oncall@example.com", "ml@example.com"], security, ssl_context=smtp.client_ctx, **kwargs,
    )  # fmt: skip


def test_email_plain_arrives_with_both_parts_figures_and_cost(smtp_plain: Smtp) -> None:
    _email(smtp_plain, "none").send(_firing())
    assert smtp_plain.inbox.arrived.wait(5)
    _assert_full_message(smtp_plain.inbox.messages[0])


def test_email_starttls_with_login_arrives(smtp_starttls: Smtp) -> None:
    _email(smtp_starttls, "starttls", username="alerts", password="s3cret-pw").send(_firing())
    assert smtp_starttls.inbox.arrived.wait(5)
    _assert_full_message(smtp_starttls.inbox.messages[0])


def test_email_implicit_tls_arrives(smtp_ssl: Smtp) -> None:
    _email(smtp_ssl, "ssl").send(_firing())
    assert smtp_ssl.inbox.arrived.wait(5)
    _assert_full_message(smtp_ssl.inbox.messages[0])


def test_email_wrong_password_fails_once_and_never_shows_the_password(
    smtp_starttls: Smtp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="alerts")
    sleeps: list[float] = []
    channel = _email(
        smtp_starttls, "starttls", username="alerts", password="wrong-pw-42", sleep=sleeps.append
    )
    with pytest.raises(DeliveryError) as caught:
        channel.send(_firing())
    assert "mail-oncall" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert sleeps == []  # authentication failures are not retried
    assert "wrong-pw-42" not in str(caught.value) + caplog.text + repr(channel)
    assert smtp_starttls.inbox.messages == []


def test_email_starttls_refuses_a_server_without_it(smtp_plain: Smtp) -> None:
    with pytest.raises(DeliveryError, match="mail-oncall"):
        _email(smtp_plain, "starttls", username="alerts", password="pw", sleep=lambda _: None).send(_firing())
    assert smtp_plain.inbox.messages == []  # never fell back to clear text


def test_email_connection_refused_raises_after_the_retries() -> None:
    sleeps: list[float] = []
    channel = EmailChannel(
        "mail-oncall", "127.0.0.1", free_port(), "a@example.com", ["b@example.com"], "none",
        retries=3, sleep=sleeps.append,
    )  # fmt: skip
    with pytest.raises(DeliveryError) as caught:
        channel.send(_firing())
    message = str(caught.value)
    assert "mail-oncall" in message and "127.0.0.1" in message and "3 attempts" in message
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff between 3 attempts


# ---------------------------------------------------------------- webhook


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with start_receiver() as started:
        yield started


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as shared:
        yield shared


def _webhook(
    url: str, client: httpx.Client, sleeps: list[float] | None = None, **kwargs: Any
) -> WebhookChannel:
    recorded = sleeps if sleeps is not None else []
    return WebhookChannel("hook", url, client=client, sleep=recorded.append, **kwargs)


def test_webhook_alertmanager_payload_v4_firing(receiver: Receiver, client: httpx.Client) -> None:
    _webhook(receiver.url, client).send(_firing())
    path, headers, _ = receiver.requests[0]
    assert path == "/hooks/T000/B000/TOKEN123" and headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in headers
    payload = receiver.json()
    assert set(payload) == {
        "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
        "commonLabels", "commonAnnotations", "externalURL", "alerts", "notification_reason",
        "routeLabels",
    }  # fmt: skip
    assert (payload["version"], payload["status"], payload["receiver"]) == ("4", "firing", "hook")
    assert payload["truncatedAlerts"] == 0 and payload["groupLabels"] == {"endpoint": "chat-prod"}
    (alert,) = payload["alerts"]
    assert set(alert) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["status"] == "firing" and alert["fingerprint"] == _finding().fingerprint
    assert alert["labels"] == {
        "alertname": "token_spike",
        "endpoint": "chat-prod",
        "severity": "critical",
        "team": "ml",
    }
    assert alert["annotations"]["cost_per_hour_usd"] == "12.5000"
    assert "tokens_per_minute=5200" in alert["annotations"]["description"]
    assert RFC3339.match(alert["startsAt"]) and alert["startsAt"] == "2025-03-01T12:00:00Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert payload["commonLabels"] == alert["labels"]


def test_webhook_resolved_sets_status_and_ends_at(receiver: Receiver, client: httpx.Client) -> None:
    _webhook(receiver.url, client).send(_resolved(T0 + dt.timedelta(minutes=7)))
    payload = receiver.json()
    assert payload["status"] == "resolved"
    assert payload["alerts"][0]["status"] == "resolved"
    assert payload["alerts"][0]["endsAt"] == "2025-03-01T12:07:00Z"


def test_webhook_signature_verifies_with_the_secret(receiver: Receiver, client: httpx.Client) -> None:
    _webhook(receiver.url, client, secret="hook-secret").send(_firing())
    _, headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)


def test_webhook_slack_body(receiver: Receiver, client: httpx.Client) -> None:
    _webhook(receiver.url, client, format="slack").send(_firing())
    payload = receiver.json()
    assert payload["text"].startswith("[FIRING:1] chat-prod")
    assert payload["blocks"][0]["type"] == "header"
    section = payload["blocks"][1]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "$12.50/h" in section["text"]["text"] and "&lt;script&gt;" in section["text"]["text"]


def test_webhook_teams_body(receiver: Receiver, client: httpx.Client) -> None:
    _webhook(receiver.url, client, format="teams").send(_firing())
    payload = receiver.json()
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] and card["body"]
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["Cost"] == "$12.50/h" and "tokens_per_minute=5200" in facts["Figures"]


def test_webhook_retries_5xx_then_delivers(receiver: Receiver, client: httpx.Client) -> None:
    receiver.statuses[:] = [500, 503]
    sleeps: list[float] = []
    _webhook(receiver.url, client, sleeps, retries=3).send(_firing())
    assert len(receiver.requests) == 3 and len(sleeps) == 2


def test_webhook_retries_429(receiver: Receiver, client: httpx.Client) -> None:
    receiver.statuses[:] = [429]
    _webhook(receiver.url, client, retries=2).send(_firing())
    assert len(receiver.requests) == 2


def test_webhook_always_500_raises_after_retries_without_leaking_the_url(
    receiver: Receiver, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="alerts")
    receiver.statuses[:] = [500] * 10
    channel = _webhook(receiver.url, client, retries=4)
    with pytest.raises(DeliveryError) as caught:
        channel.send(_firing())
    assert len(receiver.requests) == 4
    assert (
        "hook" in str(caught.value) and "HTTP 500" in str(caught.value) and "127.0.0.1" in str(caught.value)
    )
    assert "TOKEN123" not in str(caught.value) + caplog.text + repr(channel)


def test_webhook_4xx_is_not_retried(receiver: Receiver, client: httpx.Client) -> None:
    receiver.statuses[:] = [404]
    with pytest.raises(DeliveryError, match="HTTP 404"):
        _webhook(receiver.url, client, retries=3).send(_firing())
    assert len(receiver.requests) == 1


def test_webhook_to_a_hanging_receiver_times_out(client: httpx.Client) -> None:
    # A listening socket that is never accepted: the kernel completes the handshake, then
    # nothing ever answers, which is what a stuck receiver looks like to the client.
    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            _webhook(url, client, timeout_s=0.3, retries=2).send(_firing())
        assert time.monotonic() - started < 3.0


def test_webhook_connection_refused_raises(client: httpx.Client) -> None:
    with pytest.raises(DeliveryError, match="ConnectError"):
        _webhook(f"http://127.0.0.1:{free_port()}/x", client, retries=2).send(_firing())


# ---------------------------------------------------------------- Alertmanager

_AM_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


@contextmanager
def _running_alertmanager(tmp_path: Path, config: str) -> Iterator[str]:
    """Debian's Alertmanager on ``config`` and a free port; yields its URL once ready."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus-alertmanager is not installed: ./test.sh installs it")
        pytest.skip("prometheus-alertmanager is not installed")
    (tmp_path / "am.yml").write_text(config)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(tmp_path / "am.log", "wb") as log_file:
        process = subprocess.Popen(
            [
                binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            ],
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "am.log").read_text()
            try:
                return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 30, "alertmanager /-/ready")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with _running_alertmanager(tmp_path, _AM_CONFIG) as base:
        yield base


def _am_alerts(base: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v2/alerts", params={"filter": 'alertname="token_spike"'}, timeout=5)
    answer.raise_for_status()
    return list(answer.json())


@pytest.mark.slow
def test_alertmanager_push_firing_then_resolved(alertmanager: str) -> None:
    channel = AlertmanagerChannel("am", alertmanager, timeout_s=5, retries=2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    started = now - dt.timedelta(minutes=5)
    channel.send(_firing(starts_at=started))
    (alert,) = wait_for(lambda: _am_alerts(alertmanager), 10, "the pushed alert")
    assert alert["labels"] == {
        "alertname": "token_spike",
        "endpoint": "chat-prod",
        "severity": "critical",
        "team": "ml",
    }
    assert alert["annotations"]["cost_per_hour_usd"] == "12.5000"
    assert alert["status"]["state"] in ("active", "unprocessed")
    assert dt.datetime.fromisoformat(alert["startsAt"]) == started
    assert dt.datetime.fromisoformat(alert["endsAt"]) > now  # Alertmanager's resolve_timeout

    channel.send(_resolved(now, starts_at=started))

    def resolved() -> bool:
        # The v2 API lists only unresolved alerts: a resolved one leaves the list.
        return not _am_alerts(alertmanager)

    wait_for(resolved, 10, "the alert to resolve")
    channel.close()


# Fields Alertmanager's webhook payload gained after 0.25 (Debian bookworm's), read in its
# sources at v0.34.0 (template/template.go ``Data``): ``notification_reason`` (0.32) and
# ``routeLabels`` (0.34).
_ADDED_SINCE_0_25 = {"notification_reason", "routeLabels"}


@pytest.mark.slow
def test_our_webhook_payload_is_what_a_real_alertmanager_sends(tmp_path: Path) -> None:
    """A real Alertmanager, given our alert, posts its own webhook to a receiver; ours must
    have the same fields (plus those added since its version), value types and group key."""
    with start_receiver() as receiver:
        config = f"""\
route:
  receiver: hook
  group_by: [endpoint]
  group_wait: 0s
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}
        send_resolved: true
"""
        with _running_alertmanager(tmp_path, config) as base:
            channel = AlertmanagerChannel("am", base, timeout_s=5, retries=2)
            try:
                channel.send(_firing())
            finally:
                channel.close()
            wait_for(lambda: receiver.requests, 60, "Alertmanager's webhook")
        real = receiver.json(0)
    ours = render.alertmanager_payload(_firing(), "hook")
    assert set(real) <= set(ours) and set(ours) - set(real) <= _ADDED_SINCE_0_25, (set(real), set(ours))
    for key in real:
        assert type(ours[key]) is type(real[key]), key
    for key in ("version", "groupKey", "status", "receiver", "groupLabels", "truncatedAlerts"):
        assert ours[key] == real[key], key
    [real_alert], [our_alert] = real["alerts"], ours["alerts"]
    assert set(our_alert) == set(real_alert)
    for key in ("status", "labels", "startsAt"):
        assert our_alert[key] == real_alert[key], key
    assert ours["commonLabels"] == real["commonLabels"]
    assert ours["routeLabels"] == {} and ours["notification_reason"] in {"first notification", "unknown"}
