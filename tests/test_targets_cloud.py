"""The Kubernetes, Container Apps and Azure ML targets through their real client libraries.

No cluster or cloud is reachable here, so each client talks to a local server that
answers as the platform documents: for Kubernetes a plain-HTTP server speaking the
``apps/v1`` API (``autoscaling/v1`` Scale objects, Deployment status, ``Status`` error
bodies); for Azure the HTTPS stub (tests/azure_stub.py) with the official
azure-rest-api-specs examples (tests/fixtures/azure/appcontainers, tests/fixtures/azure/ml).
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure_stub import AzureStub, StaticCredential, StubResponse, example
from kubernetes import client as k8s

from autoscaler.targets import (
    ReplicaCount,
    TargetConflict,
    TargetError,
    TargetOptions,
    TargetRefused,
    TargetThrottled,
    TargetUnavailable,
    build_target,
)
from inferplane.config import AzureContainerAppTarget, AzureMLTarget, KubernetesTarget

NS, NAME = "inference", "chat"
DEPLOY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
SCALE_PATH = DEPLOY_PATH + "/scale"
TIMEOUT_S = 0.5

# --- Kubernetes: a local API server -----------------------------------------------------


def scale_body(replicas: int) -> dict[str, Any]:
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "4711"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": "app=chat"},
    }


def deployment_body(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": NAME, "namespace": NS, "generation": 3},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "chat"}},
            "template": {"metadata": {"labels": {"app": "chat"}}, "spec": {"containers": []}},
        },
        "status": status,
    }


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``meta/v1`` Status, as the API server answers errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str | None
    body: Any


class KubeApi:
    """A plain-HTTP server answering scripted ``(method, path)`` routes; records requests.
    A ``hang`` answer blocks until the server is closed (the client's timeout fires first)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Answer] = {}
        self.requests: list[Recorded] = []
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _kube_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, request: Recorded) -> Answer:
        self.requests.append(request)
        found = self.routes.get((request.method, request.path))
        return found or Answer(404, status_body(404, "NotFound", f"{request.path} not found"))


def _kube_handler(api: KubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            recorded = Recorded(
                self.command, path, self.headers.get("Content-Type"), json.loads(raw or "null")
            )
            answer = api.answer(recorded)
            if answer.hang:
                api.release.wait()
                return
            payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def kube() -> Iterator[KubeApi]:
    api = KubeApi()
    yield api
    api.close()


def kube_target(api: KubeApi) -> Any:
    configuration = k8s.Configuration(host=api.url)
    config = KubernetesTarget(kind="kubernetes", namespace=NS, deployment=NAME)
    return build_target("chat", config, TargetOptions(timeout_s=TIMEOUT_S, kube_configuration=configuration))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"observedGeneration": 3, "replicas": 3, "readyReplicas": 2}, 2, id="two-ready"),
        pytest.param({"observedGeneration": 3, "replicas": 3}, 0, id="observed-none-ready-is-0"),
        pytest.param({}, None, id="not-observed-yet-is-unknown"),
    ],
)
def test_kubernetes_reads_desired_and_ready(
    kube: KubeApi, status: dict[str, Any], expected: int | None
) -> None:
    kube.routes[("GET", SCALE_PATH)] = Answer(200, scale_body(3))
    kube.routes[("GET", DEPLOY_PATH)] = Answer(200, deployment_body(status))
    target = kube_target(kube)
    try:
        assert target.current_replicas() == ReplicaCount(desired=3, ready=expected)
    finally:
        target.close()


def test_kubernetes_scales_with_a_patch_of_the_scale_subresource(kube: KubeApi) -> None:
    kube.routes[("PATCH", SCALE_PATH)] = Answer(200, scale_body(5))
    target = kube_target(kube)
    try:
        target.scale_to(5)
    finally:
        target.close()
    [request] = kube.requests
    assert (request.method, request.path) == ("PATCH", SCALE_PATH)
    assert request.body == {"spec": {"replicas": 5}}
    # A dict body goes as a strategic merge patch (the API server rejects a JSON patch object).
    assert request.content_type == "application/strategic-merge-patch+json"


KUBE_ERRORS = [
    pytest.param(Answer(403, status_body(403, "Forbidden", "cannot patch")), TargetRefused, id="403"),
    pytest.param(Answer(404, status_body(404, "NotFound", "not found")), TargetRefused, id="404"),
    pytest.param(Answer(422, status_body(422, "Invalid", "replicas: must be >= 0")), TargetRefused, id="422"),
    pytest.param(
        Answer(409, status_body(409, "Conflict", "the object has been modified")), TargetConflict, id="409"
    ),
    pytest.param(
        Answer(429, status_body(429, "TooManyRequests", "slow down"), {"Retry-After": "7"}),
        TargetThrottled,
        id="429",
    ),
    pytest.param(Answer(500, status_body(500, "InternalError", "etcd")), TargetUnavailable, id="500"),
    pytest.param(Answer(503, status_body(503, "ServiceUnavailable", "")), TargetUnavailable, id="503"),
]


@pytest.mark.parametrize(("answer", "error"), KUBE_ERRORS)
def test_kubernetes_errors_are_translated(kube: KubeApi, answer: Answer, error: type[TargetError]) -> None:
    kube.routes[("PATCH", SCALE_PATH)] = answer
    target = kube_target(kube)
    try:
        with pytest.raises(error) as raised:
            target.scale_to(2)
    finally:
        target.close()
    assert f"{NS}/{NAME}" in str(raised.value)
    assert isinstance(raised.value.__cause__, k8s.ApiException)
    if isinstance(raised.value, TargetThrottled):
        assert raised.value.retry_after_s == 7.0
    assert len(kube.requests) == 1  # no hidden retries


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_kubernetes_timeout_is_unavailable_within_the_deadline(kube: KubeApi, method: str) -> None:
    kube.routes[(method, SCALE_PATH)] = Answer(200, None, hang=True)
    target = kube_target(kube)
    started = time.monotonic()
    try:
        with pytest.raises(TargetUnavailable, match=f"{NS}/{NAME}"):
            target.current_replicas() if method == "GET" else target.scale_to(1)
    finally:
        target.close()
    assert time.monotonic() - started < TIMEOUT_S + 2
    assert len(kube.requests) == 1


def test_kubernetes_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    config = KubernetesTarget(kind="kubernetes", namespace=NS, deployment=NAME)
    target = build_target(
        "chat", config, TargetOptions(timeout_s=TIMEOUT_S, kube_configuration=configuration)
    )
    with pytest.raises(TargetUnavailable):
        target.current_replicas()
    target.close()


# --- Azure: the HTTPS stub with the official examples ------------------------------------

SUB = "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345"
APP_PATH = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.App/containerApps/testcontainerapp0"
REVISION = "testcontainerapp0-pjxhsye"
ML_SUB = "00000000-1111-2222-3333-444444444444"
ML_PATH = (
    f"/subscriptions/{ML_SUB}/resourceGroups/test-rg/providers/Microsoft.MachineLearningServices"
    "/workspaces/my-aml-workspace/onlineEndpoints/testEndpointName/deployments/testDeploymentName"
)
# ContainerApps_Patch.json's documented 202 (see tests/fixtures/azure/appcontainers/README.md).
ACCEPTED = StubResponse(
    202,
    None,
    {
        "azure-asyncoperation": "https://management.azure.com/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345"
        "/providers/Microsoft.App/locations/eastus/containerappOperationResults"
        "/62e4d893-d233-4005-988e-a428d9f77076?api-version=2025-07-01"
    },
)


class PatchableStub(AzureStub):
    """The shared stub, also answering PATCH (the targets' updates)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        handler: Any = self._server.RequestHandlerClass
        self._server.RequestHandlerClass = type("Handler", (handler,), {"do_PATCH": handler._serve})


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[PatchableStub]:
    with PatchableStub(tmp_path) as server:
        yield server


def app_get() -> StubResponse:
    return StubResponse(200, example("appcontainers/ContainerApps_Get.json")["responses"]["200"]["body"])


def revision_get(**changes: Any) -> StubResponse:
    body = copy.deepcopy(example("appcontainers/Revisions_Get.json")["responses"]["200"]["body"])
    body["properties"].update(changes)
    return StubResponse(200, body)


def ml_get() -> StubResponse:
    return StubResponse(200, example("ml/update.json")["responses"]["200"]["body"])


def azure_options(stub: AzureStub, timeout_s: float = 5.0, url: str | None = None) -> TargetOptions:
    return TargetOptions(
        timeout_s=timeout_s,
        base_url=url or stub.url,
        azure_credential=StaticCredential(),
        verify=str(stub.ca_bundle),
    )


def aca_target(stub: AzureStub, **options: Any) -> Any:
    config = AzureContainerAppTarget(
        kind="azure_container_app", subscription_id=SUB, resource_group="rg", app_name="testcontainerapp0"
    )
    return build_target("chat", config, azure_options(stub, **options))


def ml_target(stub: AzureStub, **options: Any) -> Any:
    config = AzureMLTarget(
        kind="azure_ml",
        subscription_id=ML_SUB,
        resource_group="test-rg",
        workspace="my-aml-workspace",
        endpoint="testEndpointName",
        deployment="testDeploymentName",
    )
    return build_target("chat", config, azure_options(stub, **options))


@pytest.mark.parametrize(
    ("revision", "count"),
    [
        pytest.param(revision_get(replicas=3), ReplicaCount(3, 3), id="running-revision"),
        pytest.param(revision_get(runningState="Stopped", replicas=0), ReplicaCount(0, 0), id="stopped"),
        pytest.param(revision_get(replicas=None), ReplicaCount(1, None), id="no-count-minReplicas"),
    ],
)
def test_container_app_reads_what_the_latest_revision_runs(
    stub: PatchableStub, revision: StubResponse, count: ReplicaCount
) -> None:
    stub.route(f"{APP_PATH}/revisions/{REVISION}", revision)
    stub.route(APP_PATH, app_get())
    target = aca_target(stub)
    try:
        assert target.current_replicas() == count
    finally:
        target.close()
    assert [r.method for r in stub.requests] == ["GET", "GET"]
    assert stub.requests[0].headers["authorization"] == "Bearer stub-token"


@pytest.mark.parametrize(
    ("running", "replicas", "bounds"),
    [(0, 3, (3, 5)), (0, 7, (7, 7)), (1, 0, (0, 5)), (0, 0, (0, 5))],
    ids=["wake-to-3", "wake-above-max", "to-zero-while-running", "zero-again"],
)
def test_container_app_changes_the_floor_only_when_no_replica_would_restart(
    stub: PatchableStub, running: int, replicas: int, bounds: tuple[int, int]
) -> None:
    """A scale change is a new revision (it replaces every running replica): it is sent only
    when nothing runs, or to go to zero; the app's rules, cooldown and polling are kept."""
    stub.route(f"{APP_PATH}/revisions/{REVISION}", revision_get(replicas=running))
    stub.route(APP_PATH, app_get(), ACCEPTED)
    target = aca_target(stub)
    try:
        target.scale_to(replicas)
    finally:
        target.close()
    get, revision, patch = stub.requests
    assert (get.method, revision.method, patch.method, patch.path) == ("GET", "GET", "PATCH", APP_PATH)
    assert patch.query["api-version"] == ["2026-07-01"]
    published = example("appcontainers/ContainerApps_Get.json")["responses"]["200"]["body"]
    expected_scale = {**published["properties"]["template"]["scale"]}
    expected_scale.update(minReplicas=bounds[0], maxReplicas=bounds[1])
    assert patch.body == {"properties": {"template": {"scale": expected_scale}}}


@pytest.mark.parametrize("replicas", [2, 3])
def test_container_app_never_replaces_running_replicas(stub: PatchableStub, replicas: int) -> None:
    stub.route(f"{APP_PATH}/revisions/{REVISION}", revision_get(replicas=2))
    stub.route(APP_PATH, app_get())
    target = aca_target(stub)
    try:
        with pytest.raises(TargetRefused, match=r"while 2 replicas run: .*new revision.*replace every"):
            target.scale_to(replicas)
    finally:
        target.close()
    assert [r.method for r in stub.requests] == ["GET", "GET"]  # nothing sent


def test_container_app_in_multiple_revision_mode_is_never_patched(stub: PatchableStub) -> None:
    body = copy.deepcopy(example("appcontainers/ContainerApps_Get.json")["responses"]["200"]["body"])
    body["properties"]["configuration"]["activeRevisionsMode"] = "Multiple"
    stub.route(APP_PATH, StubResponse(200, body))
    target = aca_target(stub)
    try:
        with pytest.raises(TargetRefused, match="Multiple revision mode"):
            target.scale_to(0)
    finally:
        target.close()
    assert [r.method for r in stub.requests] == ["GET"]


AZURE_ERRORS = [
    pytest.param(403, {}, TargetRefused, id="403"),
    pytest.param(404, {}, TargetRefused, id="404"),
    pytest.param(400, {}, TargetRefused, id="400"),
    pytest.param(409, {}, TargetConflict, id="409"),
    pytest.param(429, {"Retry-After": "12"}, TargetThrottled, id="429"),
    pytest.param(500, {}, TargetUnavailable, id="500"),
    pytest.param(503, {}, TargetUnavailable, id="503"),
]


def arm_error(status: int, headers: dict[str, str]) -> StubResponse:
    codes = {400: "BadRequest", 403: "AuthorizationFailed", 404: "ResourceNotFound", 409: "Conflict"}
    code = codes.get(status, "TooManyRequests" if status == 429 else "InternalServerError")
    return StubResponse(status, {"error": {"code": code, "message": f"answered {status}"}}, headers)


@pytest.mark.parametrize(("status", "headers", "error"), AZURE_ERRORS)
def test_container_app_errors_are_translated(
    stub: PatchableStub, status: int, headers: dict[str, str], error: type[TargetError]
) -> None:
    stub.route(f"{APP_PATH}/revisions/{REVISION}", revision_get(replicas=0))
    stub.route(APP_PATH, app_get(), arm_error(status, headers))
    target = aca_target(stub)
    try:
        with pytest.raises(error) as raised:
            target.scale_to(2)
    finally:
        target.close()
    assert "rg/testcontainerapp0" in str(raised.value) and "stub-token" not in str(raised.value)
    assert raised.value.__cause__ is not None
    if isinstance(raised.value, TargetThrottled):
        assert raised.value.retry_after_s == 12.0
    assert [r.method for r in stub.requests] == ["GET", "GET", "PATCH"]  # no SDK retries


def test_ml_reads_sku_capacity(stub: PatchableStub) -> None:
    stub.route(ML_PATH, ml_get())
    target = ml_target(stub)
    try:
        assert target.current_replicas() == ReplicaCount(desired=1, ready=None)
    finally:
        target.close()
    [request] = stub.requests
    assert request.query["api-version"] == ["2024-04-01"]
    assert request.headers["authorization"] == "Bearer stub-token"


def test_ml_scales_with_a_sku_capacity_patch(stub: PatchableStub) -> None:
    stub.route(ML_PATH, StubResponse(202, None, {"Location": "example_location"}))
    target = ml_target(stub)
    try:
        target.scale_to(4)
    finally:
        target.close()
    [request] = stub.requests
    assert (request.method, request.path, request.body) == ("PATCH", ML_PATH, {"sku": {"capacity": 4}})


def test_ml_refuses_zero_without_calling_azure(stub: PatchableStub) -> None:
    target = ml_target(stub)
    with pytest.raises(TargetRefused, match="cannot scale to 0 instances"):
        target.scale_to(0)
    target.close()
    assert stub.requests == []


@pytest.mark.parametrize(("status", "headers", "error"), AZURE_ERRORS)
def test_ml_errors_are_translated(
    stub: PatchableStub, status: int, headers: dict[str, str], error: type[TargetError]
) -> None:
    stub.route(ML_PATH, arm_error(status, headers))
    target = ml_target(stub)
    try:
        with pytest.raises(error) as raised:
            target.scale_to(2)
    finally:
        target.close()
    assert "testEndpointName/testDeploymentName" in str(raised.value)
    if isinstance(raised.value, TargetThrottled):
        assert raised.value.retry_after_s == 12.0
    assert len(stub.requests) == 1


@pytest.mark.parametrize("kind", ["container_app", "ml"])
def test_azure_timeout_is_unavailable_within_the_deadline(stub: PatchableStub, kind: str) -> None:
    # A listening socket that never accepts: TCP connects, TLS never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}"
        target = (aca_target if kind == "container_app" else ml_target)(stub, timeout_s=TIMEOUT_S, url=url)
        started = time.monotonic()
        with pytest.raises(TargetUnavailable):
            target.current_replicas()
        assert time.monotonic() - started < TIMEOUT_S + 3
        target.close()


# --- deploy/kubernetes: the manifests, checked with the client's models ------------------

DEPLOY = Path(__file__).parent.parent / "deploy" / "kubernetes" / "base"
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
}


def manifests(name: str) -> dict[str, Any]:
    """Each document of ``deploy/kubernetes/<name>`` as the kubernetes client's model, by
    kind; a field the model does not know would be dropped, so each must round-trip."""
    import yaml

    api, models = k8s.ApiClient(), {}
    for document in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")):
        model = api.deserialize(json.dumps(document), MODELS[document["kind"]], "application/json")
        assert api.sanitize_for_serialization(model) == document, document["kind"]
        models[document["kind"]] = model
    return models


def test_rbac_is_get_patch_on_scale_and_get_on_deployments() -> None:
    docs = manifests("autoscaler-rbac.yaml")
    rules = {(tuple(r.api_groups), tuple(r.resources)): sorted(r.verbs) for r in docs["Role"].rules}
    assert rules == {
        (("apps",), ("deployments/scale",)): ["get", "patch"],
        (("apps",), ("deployments",)): ["get"],
    }
    binding, account = docs["RoleBinding"], docs["ServiceAccount"]
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", docs["Role"].metadata.name)
    [subject] = binding.subjects
    assert (subject.kind, subject.name, subject.namespace) == (
        "ServiceAccount",
        account.metadata.name,
        account.metadata.namespace,
    )


def test_inference_deployment_probes_gpu_and_drain() -> None:
    docs = manifests("inference.yaml")
    pod = docs["Deployment"].spec.template.spec
    [container] = pod.containers
    assert container.command == ["inferplane", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert (container.readiness_probe.http_get.path, container.liveness_probe.http_get.path) == (
        "/ready",
        "/health",
    )
    hook = container.lifecycle.pre_stop._exec.command
    script = hook[-1]
    compile(script, "preStop", "exec")  # the hook's Python is valid
    assert "/admin/drain" in script and "POST" in script
    drain_timeout = float(next(e.value for e in container.env if e.name == "INFERPLANE_DRAIN_TIMEOUT_S"))
    # SIGTERM comes after preStop (10 s wait + 5 s call) and drains for up to drain_timeout.
    assert pod.termination_grace_period_seconds >= drain_timeout + 15
    service = docs["Service"].spec
    assert service.selector == docs["Deployment"].spec.selector.match_labels
