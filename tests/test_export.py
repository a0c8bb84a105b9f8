"""``autoscaler.export``: KEDA and HPA manifests from an endpoint's policy, checked with the
kubernetes client's own model deserialization; and the ``inferplane export`` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from typer.testing import CliRunner

from autoscaler.export import ExportError, HttpWake, cron_window, hpa, interceptor_route, keda_scaled_object
from commands.cli import app
from inferplane.config import Endpoint
from inferplane.config.autoscaling import parse_window

PROM = "http://prometheus.monitoring.svc:9090"


def endpoint(**policy: Any) -> Endpoint:
    return Endpoint.model_validate(
        {
            "name": "chat",
            "target": {"kind": "kubernetes", "namespace": "inference", "deployment": "chat-llm"},
            "min_replicas": 1,
            "max_replicas": 6,
            "price": {"gpu_per_hour_usd": 2.5},
            "autoscaling": {
                "target_utilization": 0.6,
                "queue_per_replica": 8,
                "max_step": 2,
                "scale_up_stabilization_s": 30,
                "scale_down_stabilization_s": 300,
                "scale_out_cooldown_s": 60,
                "scale_in_cooldown_s": 300,
                **policy,
            },
        }
    )


def deserialize(body: dict[str, Any], kind: str) -> Any:
    """The kubernetes client's model for ``body``; a field the model does not know would be
    dropped silently, so the model must serialize back to exactly ``body``."""
    api = k8s.ApiClient()
    # kubernetes 37: deserialize(response_text, response_type, content_type).
    model = api.deserialize(json.dumps(body), kind, "application/json")
    assert api.sanitize_for_serialization(model) == body
    return model


def test_hpa_deserializes_and_carries_the_policy() -> None:
    model = deserialize(hpa(endpoint()), "V2HorizontalPodAutoscaler")
    assert isinstance(model, k8s.V2HorizontalPodAutoscaler)
    spec = model.spec
    assert (model.metadata.name, model.metadata.namespace) == ("chat", "inference")
    assert (spec.scale_target_ref.kind, spec.scale_target_ref.name) == ("Deployment", "chat-llm")
    assert (spec.min_replicas, spec.max_replicas) == (1, 6)
    gpu, queue = spec.metrics
    assert (gpu.type, gpu.pods.metric.name) == ("Pods", "inferplane_gpu_utilization_ratio")
    assert (gpu.pods.target.type, gpu.pods.target.average_value) == ("AverageValue", "0.6")
    assert (queue.pods.metric.name, queue.pods.target.average_value) == ("inferplane_requests_waiting", "8")
    up, down = spec.behavior.scale_up, spec.behavior.scale_down
    assert (up.stabilization_window_seconds, down.stabilization_window_seconds) == (30, 300)
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == [("Pods", 2, 60)]
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Pods", 2, 300)]
    assert model.metadata.annotations is None  # everything mapped


def test_hpa_names_what_it_cannot_express() -> None:
    manifest = hpa(endpoint(schedules=[{"when": "Mon-Fri 07:30-20:30 Europe/Berlin"}]))
    note = manifest["metadata"]["annotations"]["inferplane.io/not-exported"]
    assert "schedules" in note


def test_keda_scaled_object_triggers_and_bounds() -> None:
    so = keda_scaled_object(
        endpoint(
            schedules=[{"when": "Mon-Fri 07:30-20:30 Europe/Berlin", "min_replicas": 2}], off_hours_replicas=0
        ),
        PROM,
    )
    assert (so["apiVersion"], so["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat-llm"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (0, 6, 300)
    gpu, queue, cron = spec["triggers"]
    assert gpu == {
        "type": "prometheus",
        "name": "gpu",
        "metricType": "Value",
        "metadata": {
            "serverAddress": PROM,
            "query": 'avg(inferplane_gpu_utilization_ratio{endpoint="chat"})'
            ' or avg(inferplane_engine_busy_ratio{endpoint="chat"})',
            "threshold": "0.6",
        },
    }
    assert queue["metricType"] == "AverageValue"
    assert queue["metadata"]["query"] == 'sum(inferplane_requests_waiting{endpoint="chat"})'
    assert queue["metadata"]["threshold"] == "8"
    assert cron == {
        "type": "cron",
        "metadata": {
            "timezone": "Europe/Berlin",
            "start": "30 7 * * 1-5",
            "end": "30 20 * * 1-5",
            "desiredReplicas": "2",
        },
    }
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    # The behavior block is the HPA's own type: it must deserialize as one.
    model = deserialize(behavior, "V2HorizontalPodAutoscalerBehavior")
    assert model.scale_down.stabilization_window_seconds == 300


def test_target_concurrency_replaces_the_gpu_metric() -> None:
    # An HPA scales to the largest of its metrics: a GPU metric kept beside concurrency
    # would pin every decode-bound replica (one sequence keeps a GPU ~100% busy).
    spec = deserialize(hpa(endpoint(target_concurrency=24)), "V2HorizontalPodAutoscaler").spec
    running, queue = spec.metrics
    assert (running.pods.metric.name, running.pods.target.average_value) == (
        "inferplane_requests_running",
        "24",
    )
    assert queue.pods.metric.name == "inferplane_requests_waiting"
    triggers = keda_scaled_object(endpoint(target_concurrency=24), PROM)["spec"]["triggers"]
    assert [t["name"] for t in triggers] == ["concurrency", "queue"]
    assert triggers[0]["metricType"] == "AverageValue" and triggers[0]["metadata"]["threshold"] == "24"
    assert triggers[0]["metadata"]["query"] == (
        'sum(inferplane_requests_running{endpoint="chat"})'
        ' + sum(inferplane_requests_waiting{endpoint="chat"})'
    )


def test_keda_dcgm_query_selects_the_deployments_pods() -> None:
    gpu = keda_scaled_object(endpoint(), PROM, gpu_source="dcgm")["spec"]["triggers"][0]
    assert (
        gpu["metadata"]["query"]
        == 'avg(DCGM_FI_DEV_GPU_UTIL{namespace="inference",pod=~"chat-llm-.*"}) / 100'
    )


def test_keda_without_schedules_keeps_the_endpoint_floor() -> None:
    spec = keda_scaled_object(endpoint(), PROM)["spec"]
    assert spec["minReplicaCount"] == 1
    assert [t["type"] for t in spec["triggers"]] == ["prometheus", "prometheus"]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param(
            "Mon-Fri 07:30-20:30 Europe/Berlin", ("30 7 * * 1-5", "30 20 * * 1-5"), id="office-hours"
        ),
        pytest.param("Mon-Fri 22:00-06:00 UTC", ("0 22 * * 1-5", "0 6 * * 2-6"), id="overnight"),
        pytest.param("Sat,Sun 10:00-16:00 UTC", ("0 10 * * 0,6", "0 16 * * 0,6"), id="weekend"),
        pytest.param("Daily 00:00-24:00 UTC", ("0 0 * * *", "0 0 * * *"), id="all-day"),
        pytest.param("Fri-Mon 08:00-24:00 UTC", ("0 8 * * 0,1,5,6", "0 0 * * 0-2,6"), id="wrap-to-midnight"),
    ],
)
def test_cron_window(window: str, expected: tuple[str, str]) -> None:
    assert cron_window(parse_window(window)) == expected


@pytest.mark.parametrize(
    "target",
    [
        pytest.param({"kind": "local", "model": "m"}, id="local"),
        pytest.param(
            {
                "kind": "azure_container_app",
                "subscription_id": "00000000-0000-0000-0000-000000000000",
                "resource_group": "rg",
                "app_name": "a",
            },
            id="container-app",
        ),
    ],
)
def test_only_kubernetes_endpoints_export(target: dict[str, Any]) -> None:
    other = Endpoint.model_validate(
        {"name": "x", "target": target, "price": {"gpu_per_hour_usd": 1}, "autoscaling": {}}
    )
    with pytest.raises(ExportError, match="only kubernetes endpoints"):
        hpa(other)
    with pytest.raises(ExportError, match="only kubernetes endpoints"):
        keda_scaled_object(other, PROM)


CONFIG = """
endpoints:
  - name: chat
    target: {kind: kubernetes, namespace: inference, deployment: chat-llm}
    min_replicas: 1
    max_replicas: 4
    price: {gpu_per_hour_usd: 2.5}
    autoscaling:
      schedules:
        - when: Mon-Fri 07:30-20:30 Europe/Berlin
  - name: local-chat
    target: {kind: local, model: Qwen/Qwen2.5-0.5B-Instruct}
    price: {gpu_per_hour_usd: 1}
    autoscaling: {}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "inferplane.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_cli_keda_prints_yaml(config_file: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "keda", "chat", "--config", str(config_file), "--prometheus-url", "http://prom:9090"]
    )
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    assert manifest["kind"] == "ScaledObject"
    assert manifest["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prom:9090"
    assert manifest["spec"]["triggers"][2]["metadata"]["start"] == "30 7 * * 1-5"


def test_cli_hpa_prints_a_deserializable_hpa(config_file: Path) -> None:
    result = CliRunner().invoke(app, ["export", "hpa", "chat", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    model = deserialize(yaml.safe_load(result.stdout), "V2HorizontalPodAutoscaler")
    assert model.spec.max_replicas == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["hpa", "local-chat"], "only kubernetes endpoints", id="not-kubernetes"),
        pytest.param(["keda", "nope"], "no endpoint 'nope'", id="unknown-endpoint"),
        pytest.param(["keda", "chat", "--gpu-source", "nvml"], "--gpu-source", id="bad-gpu-source"),
        pytest.param(
            ["keda", "chat", "--prometheus-url", "not a url"],
            "expected an http:// or https:// URL",
            id="bad-url",
        ),
        pytest.param(
            ["keda", "chat", "--prometheus-url", "http://admin:pw@prom:9090"],
            "no user:password in the URL",
            id="credentials-in-url",
        ),
    ],
)
def test_cli_bad_input_exits_2(config_file: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["export", *args, "--config", str(config_file)])
    assert result.exit_code == 2
    assert message in result.stderr


def test_cli_missing_config_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", "hpa", "chat", "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


# --- KEDA's own schemas (tests/fixtures/keda/SOURCES.md), strictly ------------------------

KEDA_FIXTURES = Path(__file__).parent / "fixtures" / "keda"
WAKE = HttpWake(service="chat-llm", port=80, hosts=("chat.example.com",))


def crd_validator(file: str) -> Any:
    """A JSON-schema validator from a CRD's openAPIV3Schema that, unlike the API server
    (which prunes them silently), refuses fields the schema does not declare."""
    import jsonschema

    crd = yaml.safe_load((KEDA_FIXTURES / file).read_text(encoding="utf-8"))
    [version] = [v for v in crd["spec"]["versions"] if v.get("storage")]

    def strict(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: strict(v) for k, v in node.items()}
            if "properties" in node and "additionalProperties" not in node:
                if not node.get("x-kubernetes-preserve-unknown-fields"):
                    node["additionalProperties"] = False
        elif isinstance(node, list):
            node = [strict(v) for v in node]
        return node

    schema = strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def off_hours_endpoint(**policy: Any) -> Endpoint:
    return endpoint(schedules=[{"when": "Mon-Fri 07:00-19:00 UTC"}], off_hours_replicas=0, **policy)


@pytest.mark.parametrize(
    "variant",
    ["gpu", "dcgm", "concurrency", "off-hours-with-wake"],
)
def test_scaled_objects_pass_kedas_crd_schema(variant: str) -> None:
    made = {
        "gpu": lambda: keda_scaled_object(endpoint(), PROM),
        "dcgm": lambda: keda_scaled_object(endpoint(), PROM, gpu_source="dcgm"),
        "concurrency": lambda: keda_scaled_object(endpoint(target_concurrency=4), PROM),
        "off-hours-with-wake": lambda: keda_scaled_object(off_hours_endpoint(), PROM, wake=WAKE),
    }[variant]()
    validator = crd_validator("keda.sh_scaledobjects.yaml")
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(made)]
    assert errors == []
    broken = {**made, "spec": {**made["spec"], "minReplicas": 1}}  # the check is strict
    assert not validator.is_valid(broken)


def test_interceptor_route_passes_the_http_add_ons_crd_schema() -> None:
    route = interceptor_route(off_hours_endpoint(target_concurrency=3), WAKE)
    validator = crd_validator("http.keda.sh_interceptorroutes.yaml")
    assert [e.message for e in validator.iter_errors(route)] == []
    assert route["spec"]["scalingMetric"] == {"concurrency": {"targetValue": 3}}
    assert route["spec"]["target"] == {"service": "chat-llm", "port": 80}
    assert route["spec"]["rules"] == [{"hosts": ["chat.example.com"]}]


def test_a_floor_of_zero_says_what_wakes_it() -> None:
    """At minReplicaCount 0 no pod exports the metrics of the Prometheus triggers, so
    without the HTTP add-on only a cron window brings the Deployment back."""
    alone = keda_scaled_object(off_hours_endpoint(), PROM)
    assert alone["spec"]["minReplicaCount"] == 0
    assert "wake on request" in alone["metadata"]["annotations"]["inferplane.io/not-exported"]
    assert not [t for t in alone["spec"]["triggers"] if t["type"] == "external-push"]

    woken = keda_scaled_object(off_hours_endpoint(), PROM, wake=WAKE)
    [push] = [t for t in woken["spec"]["triggers"] if t["type"] == "external-push"]
    assert push["metadata"] == {
        "interceptorRoute": "chat",
        "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
    }
    assert "wake on request" not in woken["metadata"].get("annotations", {}).get(
        "inferplane.io/not-exported", ""
    )
    assert (
        interceptor_route(off_hours_endpoint(), WAKE)["metadata"]["name"]
        == push["metadata"]["interceptorRoute"]
    )
