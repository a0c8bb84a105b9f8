"""Build the channels a configuration names, resolving their secrets.

Secrets (SMTP user and password, token-bearing webhook URLs, signing secrets) are read
here from the environment or files the configuration names, handed to the channel, and
kept nowhere else; a missing one is a ``ConfigError`` naming the variable or file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from alerts.channels import AlertmanagerChannel, EmailChannel, WebhookChannel
from alerts.engine import AlertEngine
from alerts.model import Channel
from inferplane.config import ConfigError, InferplaneConfig, resolve_secret
from inferplane.config import alerts as channels_config
from inferplane.store import Store

__all__ = ["build_alert_engine", "build_channels"]


def build_alert_engine(
    config: InferplaneConfig,
    store: Store,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AlertEngine:
    """A ready engine on ``store`` (opened by the caller, once for every room). Raises
    ``ConfigError`` for a channel secret that cannot be read."""
    return AlertEngine(store, config, build_channels(config, environ), clock=clock)


def build_channels(config: InferplaneConfig, environ: Mapping[str, str] | None = None) -> list[Channel]:
    """One channel per entry of ``alerts.channels``, in the file's order."""
    env = os.environ if environ is None else environ
    built: list[Channel] = []
    for settings in config.alerts.channels if config.alerts else []:
        if isinstance(settings, channels_config.EmailChannel):
            built.append(_email(settings, env))
        elif isinstance(settings, channels_config.WebhookChannel):
            url = str(settings.url) if settings.url else resolve_secret(settings.url_env, None, env)
            if not settings.url and urlsplit(url or "").scheme not in ("http", "https"):
                # The value is a secret (a token in the URL): name the variable, never show it.
                raise ConfigError(
                    [
                        f"webhook channel {settings.name!r}: environment variable {settings.url_env} "
                        "must hold an http:// or https:// URL"
                    ]
                )
            secret = resolve_secret(settings.secret_env, settings.secret_file, env)
            built.append(
                WebhookChannel(
                    settings.name, url or "", settings.format, secret, settings.timeout_s, settings.retries
                )
            )
        else:
            built.append(
                AlertmanagerChannel(settings.name, str(settings.url), settings.timeout_s, settings.retries)
            )
    return built


def _email(settings: channels_config.EmailChannel, env: Mapping[str, str]) -> EmailChannel:
    return EmailChannel(
        settings.name,
        settings.host,
        settings.port,
        settings.sender,
        settings.recipients,
        settings.security,
        username=resolve_secret(settings.username_env, None, env),
        password=resolve_secret(settings.password_env, settings.password_file, env),
        timeout_s=settings.timeout_s,
    )
