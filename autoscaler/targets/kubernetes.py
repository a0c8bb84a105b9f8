"""A Kubernetes Deployment as a target, through its ``scale`` subresource.

Reads ``GET .../deployments/{name}/scale`` (``spec.replicas`` is the desired count) and
``GET .../deployments/{name}`` (``status.readyReplicas``); scales with a merge-patch of
``{"spec": {"replicas": n}}`` on the scale subresource, which needs only the RBAC verbs
``get``/``patch`` on ``deployments/scale`` and ``get`` on ``deployments``
(``deploy/kubernetes/base/autoscaler-rbac.yaml``). Scale-in relies on the pods' own drain
(readiness probe and preStop hook).

Errors (``kubernetes.client.ApiException`` and urllib3's) are translated into
``autoscaler.targets.base``'s tree: 400/403/404/422 -> ``TargetRefused``, 409 ->
``TargetConflict``, 429 -> ``TargetThrottled`` (``Retry-After``), 5xx, timeouts and
connection errors -> ``TargetUnavailable``. The client does no retries of its own; the
engine retries on its next poll.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config

from autoscaler.targets.base import (
    ReplicaCount,
    TargetConflict,
    TargetError,
    TargetOptions,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
)

__all__ = ["KubernetesDeploymentTarget", "build", "translate_api_exception"]

T = TypeVar("T")

_REFUSED = {400, 401, 403, 404, 422}
_CONFLICT = {409, 412}


class KubernetesDeploymentTarget:
    """The replica count of one Deployment. ``configuration`` is a
    ``kubernetes.client.Configuration`` (its retries are switched off on a copy)."""

    def __init__(self, namespace: str, deployment: str, configuration: Any, timeout_s: float) -> None:
        configuration = copy.deepcopy(configuration)
        # One attempt per call: urllib3 would otherwise retry a timed-out GET three times,
        # turning timeout_s into 4 x timeout_s; the engine owns retrying.
        configuration.retries = False
        self._api_client = client.ApiClient(configuration)
        self._apps = client.AppsV1Api(self._api_client)
        self._namespace, self._deployment = namespace, deployment
        self._timeout_s = timeout_s

    @property
    def resource(self) -> str:
        return f"deployment {self._namespace}/{self._deployment}"

    def current_replicas(self) -> ReplicaCount:
        """Desired from the scale subresource, ready from the Deployment's status."""
        scale = self._call(self._apps.read_namespaced_deployment_scale)
        deployment = self._call(self._apps.read_namespaced_deployment)
        desired = scale.spec.replicas if scale.spec is not None else None
        return ReplicaCount(desired=int(desired or 0), ready=_ready(deployment.status))

    def scale_to(self, replicas: int) -> None:
        """Merge-patch the scale subresource; returns once the API server accepted it."""
        if replicas < 0:
            raise TargetRefused(f"{self.resource}: cannot scale to {replicas} replicas")
        body = {"spec": {"replicas": replicas}}
        self._call(self._apps.patch_namespaced_deployment_scale, body)

    def close(self) -> None:
        self._api_client.close()

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        try:
            return method(self._deployment, self._namespace, *args, _request_timeout=self._timeout_s)
        except client.ApiException as error:
            raise translate_api_exception(error, self.resource) from error
        except urllib3.exceptions.HTTPError as error:
            raise TargetUnavailable(
                f"{self.resource}: the API server did not answer within {self._timeout_s}s "
                f"or could not be reached ({type(error).__name__})"
            ) from error


def _ready(status: Any) -> int | None:
    if status is None:
        return None
    if status.ready_replicas is not None:
        return int(status.ready_replicas)
    # The API server omits readyReplicas when it is 0 (omitempty): a status the controller
    # has observed (observedGeneration set) without it means 0; otherwise it is unknown.
    return 0 if status.observed_generation is not None else None


def translate_api_exception(error: client.ApiException, resource: str) -> TargetError:
    """The target error for an ``ApiException`` (status 0 means no HTTP answer)."""
    status = int(error.status or 0)
    detail = f"{resource}: HTTP {status} {error.reason or ''}".rstrip()
    if status in _REFUSED:
        hint = " (check the namespace/name and the autoscaler's RBAC)" if status in (403, 404) else ""
        return TargetRefused(detail + hint)
    if status in _CONFLICT:
        return TargetConflict(detail + " (changed concurrently; re-read and re-apply)")
    if status == 429:
        return TargetThrottled(detail, _retry_after((error.headers or {}).get("Retry-After")))
    return TargetUnavailable(detail)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from the API server; the engine's backoff applies


def _load_configuration(context: str | None) -> Any:
    configuration = client.Configuration()
    try:
        config.load_kube_config(context=context, client_configuration=configuration)
    except (config.ConfigException, FileNotFoundError, OSError) as kube_error:
        if context is not None:
            raise TargetRefused(
                f"kubeconfig context {context!r} cannot be loaded: {kube_error}"
            ) from kube_error
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise TargetRefused(
                "no kubeconfig (KUBECONFIG or ~/.kube/config) and not running in a cluster"
            ) from error
    return configuration


def build(endpoint_name: str, target_config: Any, options: TargetOptions) -> KubernetesDeploymentTarget:
    """The target for a ``KubernetesTarget`` config: ``options.kube_configuration`` if
    given, else the kubeconfig (``target_config.context``), else the in-cluster account."""
    configuration = options.kube_configuration or _load_configuration(target_config.context)
    return KubernetesDeploymentTarget(
        target_config.namespace, target_config.deployment, configuration, options.timeout_s
    )
