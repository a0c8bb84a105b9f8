"""The local catchers of ``inferplane up`` (a real aiosmtpd SMTP server and a real HTTP
server on free loopback ports): which configs get them, and that an alert sent through
the real channels lands in the store's inbox with its payload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands.cli import app
from commands.up_catchers import INBOX_KEY, SMTP_PORT, WEBHOOK_PORT, Catchers, catchers_used
from commands.up_plan import UpOptions, plan_up
from inferplane.config import example_config_text, parse_config
from inferplane.store import open_store
from tests.local_servers import free_port

OWN_CHANNELS = """\
endpoints:
  - {name: chat, target: {kind: local, model: some/model}, price: {gpu_per_hour_usd: 1.5}}
alerts:
  rules: [{kind: token_spike}]
  channels:
    - {kind: email, name: mail, host: smtp.example.com, port: 1025, sender: a@example.com,
       recipients: [b@example.com]}
    - {kind: webhook, name: hook, url: "https://hooks.example.com/alerts"}
"""


def test_the_built_in_config_sends_to_both_catchers_and_up_starts_them(tmp_path: Path) -> None:
    config = parse_config(example_config_text())
    assert catchers_used(config) == {"smtp": SMTP_PORT, "webhook": WEBHOOK_PORT}
    options = UpOptions(tmp_path / "c.yaml", tmp_path, f"sqlite:///{tmp_path / 's.db'}", prometheus=False)
    plan = plan_up(config, options, environ={})
    (child,) = [c for c in plan.children if c.name == "catchers"]
    assert child.argv[-4:] == ["--smtp-port", "1025", "--webhook-port", "9095"]
    assert plan.urls["mail catcher"] == "smtp://127.0.0.1:1025"
    assert plan.urls["webhook"] == "http://127.0.0.1:9095/alerts"
    assert {1025, 9095} <= set(plan.ports)


def test_a_users_own_smtp_server_and_webhook_replace_the_catchers(tmp_path: Path) -> None:
    config = parse_config(OWN_CHANNELS)
    assert catchers_used(config) == {}
    options = UpOptions(tmp_path / "c.yaml", tmp_path, f"sqlite:///{tmp_path / 's.db'}", prometheus=False)
    assert "catchers" not in [c.name for c in plan_up(config, options, environ={}).children]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    smtp, webhook = free_port(), free_port()
    catchers = Catchers(store, smtp, webhook)
    catchers.start()
    try:
        yield url, smtp, webhook
    finally:
        catchers.stop()
        store.close()


def test_alerts_test_proves_both_channels_and_the_inbox_keeps_each_payload(
    running: tuple[str, int, int], tmp_path: Path
) -> None:
    url, smtp, webhook = running
    text = example_config_text().replace("port: 1025", f"port: {smtp}")
    text = text.replace("http://127.0.0.1:9095/alerts", f"http://127.0.0.1:{webhook}/alerts")
    config = tmp_path / "inferplane.yaml"
    config.write_text(text)
    result = CliRunner().invoke(app, ["alerts", "test", "--config", str(config), "--store", url])
    assert result.exit_code == 0, result.output
    assert "local-mail <- inferplane: delivered after 1 attempt(s)" in result.stdout
    assert "local-webhook <- inferplane: delivered after 1 attempt(s)" in result.stdout

    store = open_store(url)
    try:
        received = (store.load_state(INBOX_KEY) or {})["received"]
    finally:
        store.close()
    mail, hook = sorted(received, key=lambda item: item["via"])
    assert mail["subject"] == "[FIRING:1] inferplane: test" and mail["recipients"] == ["you@example.com"]
    assert "delivery works" in mail["payload"]
    assert hook["subject"] == "POST /alerts firing"
    assert hook["payload"]["version"] == "4" and hook["payload"]["alerts"][0]["labels"]["alertname"] == "test"
    json.dumps(received)  # kept as JSON in the store


def test_the_catchers_answer_odd_senders_and_keep_what_arrived(running: tuple[str, int, int]) -> None:
    """A sender with a bad Content-Length, chunked encoding or a deeply nested body gets an
    answer (4xx or 200 with the text kept); a mail in a charset Python does not know, or
    in HTML only, is kept as its text."""
    import smtplib
    import socket

    url, smtp, webhook = running

    def post(head: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", webhook), timeout=10) as raw:
            raw.sendall(f"POST /alerts HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
            return raw.recv(4096)

    assert post("Content-Length: abc\r\n").startswith(b"HTTP/1.0 400")
    assert post("Transfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n").startswith(b"HTTP/1.0 411")
    nested = b"[" * 50_000
    assert post(f"Content-Length: {len(nested)}\r\n", nested).startswith(b"HTTP/1.0 200")
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        client.sendmail(
            "a@example.com",
            ["b@example.com"],
            "Subject: odd charset\r\nContent-Type: text/plain; charset=bogus-xyz\r\n\r\nspend is up\r\n",
        )
        client.sendmail(
            "a@example.com",
            ["b@example.com"],
            "Subject: html only\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=B\r\n\r\n"
            "--B\r\nContent-Type: text/html\r\n\r\n<p>idle GPU</p>\r\n--B--\r\n",
        )
    store = open_store(url)
    try:
        received = (store.load_state(INBOX_KEY) or {})["received"]
    finally:
        store.close()
    kept = {item["subject"]: item["payload"] for item in received}
    assert kept["POST /alerts"] == nested.decode()
    assert "spend is up" in kept["odd charset"] and "<p>idle GPU</p>" in kept["html only"]


def test_alerts_test_fails_when_a_channel_cannot_deliver(tmp_path: Path) -> None:
    # Nothing listens on these ports: both attempts fail, and the command says so.
    text = example_config_text().replace("port: 1025", f"port: {free_port()}")
    text = text.replace("http://127.0.0.1:9095/alerts", f"http://127.0.0.1:{free_port()}/alerts")
    config = tmp_path / "inferplane.yaml"
    config.write_text(text)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(app, ["alerts", "test", "--config", str(config), "--store", store])
    assert result.exit_code == 1
    assert result.stdout.count("FAILED") == 2


def test_a_token_spike_reaches_both_catchers_with_its_payload(running: tuple[str, int, int]) -> None:
    # The alert engine on the built-in channels (pointed at this test's catchers), over a
    # store with a steady workload and its spike: the e-mail and the webhook both arrive,
    # and the inbox keeps what each said.
    from alerts.build import build_channels
    from alerts.engine import AlertEngine
    from tests.test_alert_engine import ENDPOINT, SPIKE_START, _walk, _write_traffic

    url, smtp, webhook = running
    text = (
        ENDPOINT
        + "alerts:\n  noise: {group_wait_s: 0}\n  rules:\n    - {kind: token_spike, endpoints: [chat]}\n"
        + "  channels:\n"
        + f"    - {{kind: email, name: local-mail, host: 127.0.0.1, port: {smtp}, security: none,\n"
        + "       sender: inferplane@example.com, recipients: [you@example.com], notices: true}\n"
        + f"    - {{kind: webhook, name: local-webhook, url: 'http://127.0.0.1:{webhook}/alerts'}}\n"
    )
    store = open_store(url)
    try:
        config = parse_config(text)
        _write_traffic(store, 0, 100)
        reports = _walk(AlertEngine(store, config, build_channels(config, {})), store, 101, SPIKE_START + 3)
        assert [d.ok for r in reports.values() for d in r.deliveries] == [True, True]
        received = (store.load_state(INBOX_KEY) or {})["received"]
    finally:
        store.close()
    mail, hook = sorted(received, key=lambda item: item["via"])
    assert mail["subject"] == "[FIRING:1] chat: token_spike ($3.00/h)"
    assert "x the baseline" in mail["payload"] and "tokens_per_minute=" in mail["payload"]
    (alert,) = hook["payload"]["alerts"]
    assert hook["payload"]["status"] == "firing" and alert["labels"]["alertname"] == "token_spike"
    assert float(alert["annotations"]["cost_per_hour_usd"]) == pytest.approx(3.0)
