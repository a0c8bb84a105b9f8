"""An Azure Container App as a target (``azure-mgmt-appcontainers``).

How scaling is expressed: Container Apps have no "replica count" to set, only
``template.scale.minReplicas``/``maxReplicas`` around the app's own scale rules. The
target pins both to n (``min = max = n``), so the count inferplane decides is the count
that runs and the app's built-in rules (HTTP concurrency by default) cannot move it
underneath the policy; ``min = n, max = endpoint max`` would let two autoscalers fight.
``maxReplicas`` cannot be 0 (its documented minimum is 1), so ``scale_to(0)`` sets
``min = 0, max = 1``: the app scales to zero when idle and the platform wakes one
replica on a request.

The change is a PATCH (``ContainerApps_Update``, JSON merge patch, long-running) of
``properties.template.scale`` only. The scale object is read first and sent back whole
with the two bounds changed, so its rules, ``cooldownPeriod`` and ``pollingInterval``
survive whatever the service does with arrays in a merge patch. Changing the scale
creates a new revision; ``scale_to`` returns when the PATCH is accepted (200/202), without
polling the operation (the next read shows the outcome).

Readiness: ``replicas`` of the latest revision (``latestRevisionName``, else
``latestReadyRevisionName``) when its ``runningState`` is ``Running``; None when the app
names no revision or the revision does not report it. Desired: ``template.scale.minReplicas``
(equal to the count when the target pinned it; the floor otherwise).

Shared by the Azure targets: :func:`azure_client_options`, :func:`azure_credential` and
:func:`translate_azure_error` (azure-core errors into ``autoscaler.targets.base``'s tree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from autoscaler.targets.base import (
    ReplicaCount,
    TargetConflict,
    TargetError,
    TargetOptions,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
)

__all__ = [
    "ContainerAppTarget",
    "azure_client_options",
    "azure_credential",
    "build",
    "translate_azure_error",
]

T = TypeVar("T")

_REFUSED = {400, 401, 403, 404, 422}
_CONFLICT = {409, 412}


class ContainerAppTarget:
    """The replica bounds of one Container App; ``client`` is a ``ContainerAppsAPIClient``."""

    def __init__(self, client: Any, resource_group: str, app_name: str, timeout_s: float) -> None:
        self._client, self._group, self._app = client, resource_group, app_name
        self._call_options = {"connection_timeout": timeout_s, "read_timeout": timeout_s}

    @property
    def resource(self) -> str:
        return f"container app {self._group}/{self._app}"

    def current_replicas(self) -> ReplicaCount:
        """Desired from ``template.scale.minReplicas``, ready from the latest revision."""
        properties = self._call(self._client.container_apps.get, self._group, self._app).properties
        scale = properties.template.scale if properties and properties.template else None
        desired = int(scale.min_replicas or 0) if scale is not None else 0
        revision = (
            (properties.latest_revision_name or properties.latest_ready_revision_name) if properties else None
        )
        return ReplicaCount(desired=desired, ready=self._ready(revision))

    def scale_to(self, replicas: int) -> None:
        """PATCH ``template.scale`` with min = max = n (min 0 / max 1 for n = 0)."""
        if replicas < 0:
            raise TargetRefused(f"{self.resource}: cannot scale to {replicas} replicas")
        app = self._call(self._client.container_apps.get, self._group, self._app)
        template = app.properties.template if app.properties else None
        scale = dict(template.scale.as_dict()) if template is not None and template.scale is not None else {}
        scale.update(minReplicas=replicas, maxReplicas=max(replicas, 1))
        envelope = {"properties": {"template": {"scale": scale}}}
        # polling=False: the call returns once the service accepted the PATCH, and no
        # background thread keeps polling the operation after the target is closed.
        self._call(self._client.container_apps.begin_update, self._group, self._app, envelope, polling=False)

    def close(self) -> None:
        self._client.close()

    def _ready(self, revision_name: str | None) -> int | None:
        if not revision_name:
            return None
        revision = self._call(
            self._client.container_apps_revisions.get_revision, self._group, self._app, revision_name
        )
        properties = revision.properties
        if properties is None or properties.replicas is None:
            return None
        return int(properties.replicas) if properties.running_state == "Running" else 0

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **self._call_options, **kwargs)
        except AzureError as error:
            raise translate_azure_error(error, self.resource) from error


def azure_credential(options: TargetOptions) -> Any:
    """``options.azure_credential``, else azure-identity's ``DefaultAzureCredential``."""
    if options.azure_credential is not None:
        return options.azure_credential
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def azure_client_options(options: TargetOptions) -> dict[str, Any]:
    """Management-client keyword options: the ARM endpoint (``base_url``), TLS
    verification (a CA bundle path) and no SDK-level retries (the engine retries; the
    SDK's default of 10 retries with backoff would hold a poll for minutes)."""
    extra: dict[str, Any] = {"retry_total": 0, "connection_verify": options.verify}
    if options.base_url is not None:
        extra["base_url"] = options.base_url
    return extra


def translate_azure_error(error: AzureError, resource: str) -> TargetError:
    """The target error for an azure-core error (message names ``resource``, never a token)."""
    if isinstance(error, ClientAuthenticationError) and error.status_code is None:
        return TargetRefused(f"{resource}: could not get an Azure token ({type(error).__name__})")
    if isinstance(error, ResourceNotFoundError):
        return TargetRefused(f"{resource}: not found (HTTP 404); check the names in the config")
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        return _from_status(error, resource)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TargetUnavailable(f"{resource}: Azure did not answer ({type(error).__name__})")
    return TargetUnavailable(f"{resource}: {type(error).__name__}")


def _from_status(error: HttpResponseError, resource: str) -> TargetError:
    status = int(error.status_code or 0)
    code = getattr(error, "error", None)
    detail = f"{resource}: HTTP {status}" + (f" {code.code}" if code is not None and code.code else "")
    if status in _REFUSED:
        return TargetRefused(detail + (" (check the names and the identity's role)" if status == 403 else ""))
    if status in _CONFLICT:
        return TargetConflict(detail + " (another operation is in progress; retry)")
    if status == 429:
        headers = getattr(error.response, "headers", None) or {}
        return TargetThrottled(detail, _retry_after(headers))
    return TargetUnavailable(detail)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def build(endpoint_name: str, target_config: Any, options: TargetOptions) -> ContainerAppTarget:
    """The target for an ``AzureContainerAppTarget`` config."""
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    client = ContainerAppsAPIClient(
        azure_credential(options), target_config.subscription_id, **azure_client_options(options)
    )
    return ContainerAppTarget(client, target_config.resource_group, target_config.app_name, options.timeout_s)
