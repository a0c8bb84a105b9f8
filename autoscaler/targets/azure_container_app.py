"""An Azure Container App as a target (``azure-mgmt-appcontainers``).

Scale is revision-scoped. ``template.scale`` (``minReplicas``, ``maxReplicas``, rules) is
part of ``properties.template``, and "any changes to this section will result in a new
revision being created" (the SDK's ``Template`` model, API 2025-07-01; Microsoft's
"Revisions" page lists scale rules among the revision-scope changes). Read, not run (no
subscription is reachable here): in single-revision mode the new revision is provisioned
and the old one's replicas are then removed, so every running replica is replaced (for a
model server: a cold start each, and the platform's scale state starts again from
``minReplicas``); in multiple-revision mode the old revision stays active beside the new
one, with its replicas, billing on.

So a decision never touches the template while replicas run. What the target does:

- ``current_replicas``: desired = the replicas the latest revision runs (its ``replicas``
  when ``runningState`` is ``Running``, else 0), falling back to ``minReplicas`` where the
  revision reports no count; ready = the same when Running.
- ``scale_to(n)`` with nothing running (scaled to zero off-hours, or never started):
  PATCH ``minReplicas = n`` (``maxReplicas`` kept, raised to n if lower): the new revision
  starts with n replicas, and no healthy replica is replaced.
- ``scale_to(0)``: PATCH ``minReplicas = 0`` (max kept): the app may then scale to zero
  when idle. The running replicas are replaced by the new revision's (not verified here:
  whether the new revision starts one replica before it scales to zero).
- ``scale_to(n > 0)`` while replicas run: ``TargetRefused`` naming why, and nothing is
  sent. Within its bounds the app scales itself with its own scale rules (the HTTP
  concurrency rule by default, or the KEDA scalers of custom rules, e.g. the Prometheus
  queries of ``inferplane export keda``); inferplane's decision is recorded, not applied.
- multiple-revision (or labels) mode: every PATCH refused, for the reason above.

The PATCH (``ContainerApps_Update``, JSON merge patch, long-running) sends the scale object
read first, whole, with its bounds changed, so its rules, ``cooldownPeriod`` and
``pollingInterval`` survive whatever the service does with arrays in a merge patch;
``scale_to`` returns when it is accepted (200/202), without polling the operation.

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
        """Desired and ready from the latest revision's replicas (``minReplicas`` where it
        reports none)."""
        app = self._call(self._client.container_apps.get, self._group, self._app)
        scale = _scale(app)
        running = self._running(_latest_revision(app))
        floor = int(scale.min_replicas or 0) if scale is not None else 0
        return ReplicaCount(desired=floor if running is None else running, ready=running)

    def scale_to(self, replicas: int) -> None:
        """Change ``minReplicas`` when that restarts no running replica; refuse otherwise."""
        if replicas < 0:
            raise TargetRefused(f"{self.resource}: cannot scale to {replicas} replicas")
        app = self._call(self._client.container_apps.get, self._group, self._app)
        configuration = app.properties.configuration if app.properties else None
        mode = str(getattr(configuration, "active_revisions_mode", None) or "Single")
        mode = mode.split(".")[-1].capitalize()  # the SDK's enum prints as ActiveRevisionsMode.MULTIPLE
        if mode != "Single":
            raise TargetRefused(
                f"{self.resource}: in {mode} revision mode a scale change creates a new revision "
                "beside the running one, which keeps its replicas; inferplane changes nothing there"
            )
        scale = dict(_scale(app).as_dict()) if _scale(app) is not None else {}
        running = self._running(_latest_revision(app))
        if replicas > 0 and running != 0:
            raise TargetRefused(
                f"{self.resource}: not scaling to {replicas} while {_described(running)} replicas run: "
                "scale is revision-scoped, so the change would create a new revision and replace "
                "every running replica; within minReplicas "
                f"{scale.get('minReplicas', 0)}..maxReplicas {scale.get('maxReplicas', 10)} "
                "the app's own scale rules decide"
            )
        highest = max(int(scale.get("maxReplicas") or 10), replicas, 1)  # 10: Azure's default
        scale.update(minReplicas=replicas, maxReplicas=highest)
        envelope = {"properties": {"template": {"scale": scale}}}
        # polling=False: the call returns once the service accepted the PATCH, and no
        # background thread keeps polling the operation after the target is closed.
        self._call(self._client.container_apps.begin_update, self._group, self._app, envelope, polling=False)

    def close(self) -> None:
        self._client.close()

    def _running(self, revision_name: str | None) -> int | None:
        """Replicas the revision runs: its count when Running, 0 in any other state,
        None when there is no revision or it reports no count."""
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


def _scale(app: Any) -> Any:
    template = app.properties.template if app.properties else None
    return template.scale if template is not None else None


def _latest_revision(app: Any) -> str | None:
    properties = app.properties
    return (properties.latest_revision_name or properties.latest_ready_revision_name) if properties else None


def _described(running: int | None) -> str:
    return "an unknown number of" if running is None else str(running)


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
