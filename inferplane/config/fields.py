"""Field types shared by the configuration models: slugs, URLs, Azure ids, env var names."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = [
    "AzureResourceId",
    "AzureScope",
    "EnvVarName",
    "HttpUrl",
    "Name",
    "Slug",
    "StrictModel",
    "SubscriptionId",
    "check_http_url",
]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors and inputs never reach messages."""

    # hide_input_in_errors: a value typed into the wrong field may be a secret; pydantic's
    # own str(ValidationError) would otherwise print it. allow_inf_nan: YAML's .inf and
    # .nan are numbers no setting means (an infinite price poisons every sum, and the
    # JSON it ends in).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False)


_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _slug(value: str) -> str:
    # Names become metric labels, table keys and Kubernetes-style identifiers.
    if not _SLUG.match(value):
        raise ValueError("expected a slug: lowercase letters, digits and '-', 1-63 characters")
    return value


def _name(value: str) -> str:
    # Looser than a slug so that a source's name can default to its kind (azure_costs).
    if not _NAME.match(value):
        raise ValueError("expected a name: lowercase letters, digits, '-' and '_', 1-63 characters")
    return value


def check_http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host and no password; ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parts.password is not None:
        # The value itself is never echoed: it contains the password.
        raise ValueError("the URL holds a password; secrets never go in the file, use a *_env field instead")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            "expected the NAME of an environment variable (letters, digits, '_'), not the secret itself"
        )
    return value


def _subscription_id(value: str) -> str:
    if not _UUID.match(value):
        raise ValueError(
            "expected an Azure subscription id (a GUID like 00000000-0000-0000-0000-000000000000)"
        )
    return value


def _resource_id(value: str) -> str:
    if not value.lower().startswith("/subscriptions/") or "/providers/" not in value.lower():
        raise ValueError(
            "expected an Azure resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/..."
        )
    return value


def _scope(value: str) -> str:
    if not value.lower().startswith(("/subscriptions/", "/providers/microsoft.billing/")):
        raise ValueError(
            "expected a Cost Management scope: /subscriptions/<id>[/resourceGroups/<rg>] "
            "or /providers/Microsoft.Billing/billingAccounts/<id>"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Name = Annotated[str, AfterValidator(_name)]
HttpUrl = Annotated[str, AfterValidator(check_http_url)]
EnvVarName = Annotated[str, AfterValidator(_env_name)]
SubscriptionId = Annotated[str, AfterValidator(_subscription_id)]
AzureResourceId = Annotated[str, AfterValidator(_resource_id)]
AzureScope = Annotated[str, AfterValidator(_scope)]
