"""docker-compose.yml: valid against the Compose Specification, and its parts agree.

No Docker engine runs here, so the file is checked as data: the official JSON schema
(tests/fixtures/compose/, source in its README), every name one service gives another,
the healthchecks, the Prometheus scrape targets, the control plane's inferplane.yaml, and
the entrypoint that turns the database password secret into the store URL (run for real
with /bin/sh).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from inferplane.config import check_config, load_config
from inferplane.config.sources import PrometheusSource

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
PLANE_CONFIG = ROOT / "deploy" / "compose" / "inferplane.yaml"
SECRET_PATH = "/run/secrets/postgres_password"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def scrape_targets() -> dict[str, tuple[str, int]]:
    """Prometheus job name -> (host, port) of its one static target."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = {}
    for job in config["scrape_configs"]:
        [static] = job["static_configs"]
        [target] = static["targets"]
        host, port = target.rsplit(":", 1)
        targets[job["job_name"]] = (host, int(port))
    return targets


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[1]) for mapping in service.get("ports", [])}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- the specification ----------------------------------------------------------------


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    problems = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(compose)]
    assert problems == []


@pytest.mark.parametrize(
    ("where", "change"),
    [
        ("misspelt key", lambda c: c["services"]["inference"].update(helthcheck={})),
        ("ports not a list", lambda c: c["services"]["inference"].update(ports="8000:8000")),
        (
            "unknown condition",
            lambda c: c["services"]["dashboard"]["depends_on"]["postgres"].update(condition="up"),
        ),
    ],
)
def test_the_schema_refuses_broken_files(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator, where: str, change: Any
) -> None:
    broken = copy.deepcopy(compose)
    change(broken)
    assert list(validator.iter_errors(broken)), where


# --- names one part gives another ---------------------------------------------------------


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert {"inference", "control-plane", "dashboard", "prometheus", "postgres", "mailpit"} <= services.keys()
    assert services["dcgm-exporter"]["profiles"] == ["gpu"]


def test_depends_on_names_services_that_start_by_default(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for needed in service.get("depends_on", []):
            assert needed in services, f"{name} depends on unknown {needed}"
            # A service in no profile that needs a profile-only one would not start.
            if not service.get("profiles"):
                assert not services[needed].get("profiles"), f"{name} needs profile-only {needed}"


def test_secrets_and_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    for name, service in services.items():
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: secret {secret}"
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in compose["volumes"], f"{name}: volume {source}"


def test_secret_files_live_where_git_ignores_them(compose: dict[str, Any], services: dict[str, Any]) -> None:
    for secret in compose["secrets"].values():
        folder = ROOT / Path(secret["file"]).parent
        assert (folder / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]
    env_files = [item["path"] for item in services["control-plane"]["env_file"]]
    assert all(
        Path(path).parent == Path(compose["secrets"]["postgres_password"]["file"]).parent
        for path in env_files
    )


def test_no_secret_value_in_the_file(services: dict[str, Any]) -> None:
    postgres = services["postgres"]["environment"]
    assert "POSTGRES_PASSWORD" not in postgres and postgres["POSTGRES_PASSWORD_FILE"] == SECRET_PATH
    assert services["inference"]["environment"]["INFERPLANE_API_KEYS"] == "${INFERPLANE_API_KEYS:-}"
    assert not re.search(r"postgresql\S*://[^:\s]+:[^$@\s]+@", COMPOSE_FILE.read_text())


def test_the_gpu_reservation_is_there_but_off(services: dict[str, Any]) -> None:
    assert "deploy" not in services["inference"]  # CPU hosts must start it as is
    assert "#         - driver: nvidia" in COMPOSE_FILE.read_text()


# --- healthchecks ---------------------------------------------------------------------


def test_the_inference_healthcheck_asks_ready_on_its_port(services: dict[str, Any]) -> None:
    inference = services["inference"]
    command = " ".join(inference["healthcheck"]["test"])
    [port] = container_ports(inference)
    assert f"http://127.0.0.1:{port}/ready" in command


def test_the_dashboard_healthcheck_asks_its_port(services: dict[str, Any]) -> None:
    dashboard = services["dashboard"]
    port = option(dashboard["command"], "--port")
    assert f"http://127.0.0.1:{port}/_stcore/health" in " ".join(dashboard["healthcheck"]["test"])
    assert dashboard["ports"] == [f"127.0.0.1:{port}:{port}"]  # loopback only: no login
    assert option(dashboard["command"], "--host") == "0.0.0.0"  # reachable through the mapping


# --- Prometheus ------------------------------------------------------------------------


def test_prometheus_scrapes_services_by_compose_name_and_port(services: dict[str, Any]) -> None:
    targets = scrape_targets()
    assert targets["inferplane"] == ("inference", 8000)
    assert targets["dcgm"] == ("dcgm-exporter", 9400)
    assert 8000 in container_ports(services["inference"])
    for host, _ in targets.values():
        assert host in services
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


# --- the control plane and the dashboard ---------------------------------------------------


@pytest.mark.parametrize("name", ["control-plane", "dashboard"])
def test_config_is_mounted_where_the_command_reads_it(services: dict[str, Any], name: str) -> None:
    service = services[name]
    path = option(service["command"], "--config")
    assert f"./deploy/compose/inferplane.yaml:{path}:ro" in service["volumes"]
    assert service["image"] == services["inference"]["image"]  # one image, another command
    assert "postgres_password" in service["secrets"]


def test_dashboard_waits_for_the_control_plane_to_migrate_the_store(services: dict[str, Any]) -> None:
    needs = services["dashboard"]["depends_on"]
    assert needs["control-plane"]["condition"] == needs["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["control-plane"]


def test_control_plane_healthcheck_reads_its_ready_file(services: dict[str, Any]) -> None:
    plane = services["control-plane"]
    ready_file = option(plane["command"], "--ready-file")
    assert plane["healthcheck"]["test"] == ["CMD", "test", "-f", ready_file]


def test_control_plane_config_is_valid_and_names_compose_services(services: dict[str, Any]) -> None:
    assert check_config(PLANE_CONFIG) == []
    config = load_config(PLANE_CONFIG)
    [source] = [s for s in config.sources if isinstance(s, PrometheusSource)]
    assert urlsplit(source.url).netloc == "prometheus:9090"
    assert "9090" in services["prometheus"]["ports"][0]
    jobs = {re.fullmatch(r'\{job="(\w+)"\}', e.selector)[1] for e in source.endpoints}  # type: ignore[index]
    assert jobs == scrape_targets().keys()
    assert config.alerts is not None
    [mail] = config.alerts.channels
    assert (mail.host, mail.port) == ("mailpit", 1025)  # type: ignore[union-attr]


def test_entrypoint_builds_the_store_url_from_the_secret(services: dict[str, Any], tmp_path: Path) -> None:
    """Runs the compose entrypoint with /bin/sh: the URL the control plane reads (its
    store.url_env) carries the secret file's password, the postgres service's user and
    database, and the service name as host."""
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cr3t-hex\n")  # `openssl rand -hex 24 >` leaves a newline
    url_env = load_config(PLANE_CONFIG).store.url_env
    assert url_env is not None
    for name in ("control-plane", "dashboard"):
        shell, flag, script, label = services[name]["entrypoint"]
        script = script.replace("$$", "$").replace(SECRET_PATH, str(secret))  # as compose does
        printer = [sys.executable, "-c", f"import os; print(os.environ[{url_env!r}])"]
        result = subprocess.run(
            [shell, flag, script, label, *printer], capture_output=True, text=True, timeout=30, check=True
        )
        url = urlsplit(result.stdout.strip())
        postgres = services["postgres"]["environment"]
        assert (url.username, url.password, url.hostname, url.path) == (
            postgres["POSTGRES_USER"],
            "s3cr3t-hex",
            "postgres",
            "/" + postgres["POSTGRES_DB"],
        )
