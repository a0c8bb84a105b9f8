"""An Azure Machine Learning managed online deployment as a target.

The instance count is the deployment's ``sku.capacity``: read with
``OnlineDeployments_Get`` and set with ``OnlineDeployments_Update``, a PATCH whose body is
a ``PartialMinimalTrackedResourceWithSku`` (``{"sku": {"capacity": n}}``), REST API
version ``2024-04-01``. ``scale_to`` returns once the service accepted it (200/202); the
operation is not polled (the next read shows the outcome).

Why not ``azure-mgmt-machinelearningservices``: its only release on PyPI (1.0.1, API
2020-08-01) predates online endpoints and has no online-deployment operations; the
current client for them is ``azure-ai-ml``, a large dependency. The requests go through
azure-mgmt-core's ``ARMPipelineClient``, the pipeline every azure-mgmt SDK runs on (ARM
bearer-token challenge policy, request ids, azure-core transport and errors).

No zero: a managed online deployment runs at least one instance (its autoscale profile's
minimum is 1 and the platform has no scale-to-zero for managed online endpoints), so
``scale_to(0)`` raises ``TargetRefused`` without calling Azure; set the endpoint's
``min_replicas`` (and ``off_hours_replicas``) to at least 1, or delete the deployment
off-hours by other means.

Readiness: the deployment resource does not report ready instances, so ``ready`` is None.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from azure.core.exceptions import AzureError
from azure.core.pipeline import policies
from azure.core.rest import HttpRequest, HttpResponse

from autoscaler.targets.azure_container_app import (
    azure_client_options,
    azure_credential,
    translate_azure_error,
)
from autoscaler.targets.base import ReplicaCount, TargetOptions, TargetRefused, TargetUnavailable

__all__ = ["API_VERSION", "AzureMLDeploymentTarget", "build"]

API_VERSION = "2024-04-01"
_ARM = "https://management.azure.com"
_SCOPE = "https://management.azure.com/.default"


class AzureMLDeploymentTarget:
    """The instance count of one managed online deployment; ``pipeline`` is an
    ``ARMPipelineClient`` whose ``send_request`` authenticates to ARM."""

    def __init__(self, pipeline: Any, deployment_path: str, resource: str, timeout_s: float) -> None:
        self._pipeline, self._path, self.resource = pipeline, deployment_path, resource
        self._call_options = {"connection_timeout": timeout_s, "read_timeout": timeout_s}

    def current_replicas(self) -> ReplicaCount:
        """``sku.capacity`` as desired; ready is not reported by the resource (None)."""
        body = self._send("GET").json()
        capacity = (body.get("sku") or {}).get("capacity")
        if not isinstance(capacity, int):
            raise TargetUnavailable(f"{self.resource}: the deployment reports no sku.capacity")
        return ReplicaCount(desired=capacity, ready=None)

    def scale_to(self, replicas: int) -> None:
        """PATCH ``sku.capacity``; 0 is refused (managed online deployments cannot run 0)."""
        if replicas < 1:
            raise TargetRefused(
                f"{self.resource}: a managed online deployment cannot scale to {replicas} instances "
                "(minimum 1); set min_replicas and off_hours_replicas to at least 1"
            )
        self._send("PATCH", {"sku": {"capacity": replicas}})

    def close(self) -> None:
        self._pipeline.close()

    def _send(self, method: str, body: dict[str, Any] | None = None) -> HttpResponse:
        # send_request sends the URL as given: make it absolute against the ARM endpoint.
        url = self._pipeline.format_url(self._path)
        request = HttpRequest(method, url, params={"api-version": API_VERSION}, json=body)
        try:
            response: HttpResponse = self._pipeline.send_request(request, **self._call_options)
            response.raise_for_status()
        except AzureError as error:
            raise translate_azure_error(error, self.resource) from error
        return response


def _pipeline(options: TargetOptions) -> Any:
    from azure.mgmt.core import ARMPipelineClient
    from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

    client_options = azure_client_options(options)
    base_url = client_options.pop("base_url", _ARM)
    retry_total = client_options.pop("retry_total")
    chain = [
        policies.RequestIdPolicy(),
        policies.HeadersPolicy(),
        policies.UserAgentPolicy(sdk_moniker="inferplane-autoscaler"),
        policies.RetryPolicy(retry_total=retry_total),
        ARMChallengeAuthenticationPolicy(azure_credential(options), _SCOPE),
        policies.ContentDecodePolicy(),
        ARMHttpLoggingPolicy(),  # logs headers with Authorization redacted, never bodies
    ]
    return ARMPipelineClient(base_url, policies=chain, **client_options)


def build(endpoint_name: str, target_config: Any, options: TargetOptions) -> AzureMLDeploymentTarget:
    """The target for an ``AzureMLTarget`` config."""
    c = target_config
    path = (
        f"/subscriptions/{quote(c.subscription_id)}/resourceGroups/{quote(c.resource_group)}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{quote(c.workspace)}"
        f"/onlineEndpoints/{quote(c.endpoint)}/deployments/{quote(c.deployment)}"
    )
    resource = f"Azure ML deployment {c.workspace}/{c.endpoint}/{c.deployment}"
    return AzureMLDeploymentTarget(_pipeline(options), path, resource, options.timeout_s)
