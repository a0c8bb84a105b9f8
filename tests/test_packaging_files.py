"""docker-compose.yml, the Dockerfile and the Prometheus config agree with each other."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def scrape_target() -> tuple[str, int]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "inferplane"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    (target,) = static["targets"]
    host, port = target.split(":")
    return host, int(port)


def container_port(service: dict[str, Any]) -> int:
    (mapping,) = service["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


def test_compose_has_the_inference_service_and_prometheus(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"inference", "prometheus"} <= services.keys()
    assert services["inference"]["build"] == "."
    assert services["prometheus"]["image"].startswith("prom/prometheus")


def test_inference_healthcheck_asks_ready(compose: dict[str, Any]) -> None:
    inference = compose["services"]["inference"]
    command = " ".join(inference["healthcheck"]["test"])
    assert f"127.0.0.1:{container_port(inference)}/ready" in command


def test_gpu_reservation_is_there_but_off(compose: dict[str, Any]) -> None:
    assert "deploy" not in compose["services"]["inference"]  # CPU hosts must start it as is
    text = (ROOT / "docker-compose.yml").read_text()
    assert "#         - driver: nvidia" in text


def test_prometheus_scrapes_the_compose_service(
    compose: dict[str, Any], scrape_target: tuple[str, int]
) -> None:
    host, port = scrape_target
    assert host in compose["services"]
    assert port == container_port(compose["services"][host])
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_image_serves_on_the_scraped_port(scrape_target: tuple[str, int]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f'"--host", "0.0.0.0", "--port", "{scrape_target[1]}"' in dockerfile


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not on PATH; test.sh installs it (apt-get install prometheus)"
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
