"""The configuration model and its checker: the shipped example, bad files, secrets."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

from inferplane.config import (
    ConfigError,
    GpuHourPrice,
    InferplaneConfig,
    LocalTarget,
    ScrapeSource,
    TokenPrice,
    check_config,
    example_config_text,
    load_config,
    parse_config,
    resolve_secret,
)

# A small valid file; bad rows below change one thing each (line numbers matter).
VALID = """\
endpoints:
  - name: chat
    target: {kind: local, model: some/model}
    min_replicas: 1
    max_replicas: 2
    price:
      gpu_per_hour_usd: 1.5
sources:
  - kind: scrape
    targets:
      - {endpoint: chat, url: "http://127.0.0.1:8000/metrics"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inferplane.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def only_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    assert str(caught.value) == caught.value.problems[0]
    return caught.value.problems[0]


FULL_REFERENCE = Path(__file__).resolve().parents[1] / "examples" / "inferplane-full.yaml"


def test_the_built_in_config_is_one_local_endpoint_scraped_directly(tmp_path: Path) -> None:
    # What `inferplane up` runs with no --config: nothing outside this machine.
    path = write(tmp_path, example_config_text())
    config = load_config(path)
    (endpoint,) = config.endpoints
    target = endpoint.target
    assert isinstance(target, LocalTarget) and target.model == "smollm2-135m-instruct"
    assert endpoint.autoscaling is not None and isinstance(endpoint.price, GpuHourPrice)
    (source,) = config.sources
    assert isinstance(source, ScrapeSource) and target.ports is not None
    replicas = {f"http://127.0.0.1:{p}/metrics" for p in range(target.ports[0], target.ports[1] + 1)}
    assert {t.url for t in source.targets} == {f"{target.router_url}/metrics"} | replicas
    assert config.store.url is None and config.store.url_env is None  # SQLite in $INFERPLANE_HOME
    assert config.alerts is not None and config.alerts.rules
    # Alerts out of the box: the local mail catcher and webhook receiver up starts, no secret.
    mail, hook = config.alerts.channels
    assert (mail.kind, getattr(mail, "host", ""), getattr(mail, "port", 0)) == ("email", "127.0.0.1", 1025)
    assert (hook.kind, getattr(hook, "url", None)) == ("webhook", "http://127.0.0.1:9095/alerts")


def test_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_REFERENCE.read_text(encoding="utf-8"))
    config = load_config(path)
    assert check_config(path) == []
    prices = [type(endpoint.price).__name__ for endpoint in config.endpoints]
    assert prices == [GpuHourPrice.__name__, GpuHourPrice.__name__, TokenPrice.__name__]
    assert [source.name for source in config.sources] == ["scrape", "prom", "azure_monitor", "azure_costs"]
    assert config.store.retention.hour_days == 400
    assert config.endpoint("chat-small").max_replicas == 4


def test_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert config.store.url is None
    assert (config.store.retention.raw_days, config.store.retention.minute_days) == (2, 14)
    (source,) = config.sources
    assert isinstance(source, ScrapeSource)
    assert (source.name, source.timeout_s, source.retries, source.interval_s) == ("scrape", 10, 3, 15)
    assert source.targets[0].dialect == "inferplane"
    assert config.autoscaler is None and config.alerts is None


class Bad(NamedTuple):
    text: str
    line: int
    field: str
    expected: str


BAD = {
    "unknown top-level field": Bad(VALID + "colour: blue\n", 12, "colour", "expected one of: alerts,"),
    "unknown nested field": Bad(
        VALID.replace(
            "      gpu_per_hour_usd: 1.5", "      gpu_per_hour_usd: 1.5\n      gpus_per_replika: 2"
        ),
        8,
        "endpoints[0].price.gpus_per_replika",
        "did you mean 'gpus_per_replica'?",
    ),
    "wrong type": Bad(
        VALID.replace("max_replicas: 2", "max_replicas: lots"),
        5,
        "endpoints[0].max_replicas",
        "valid integer",
    ),
    "price not positive": Bad(
        VALID.replace("1.5", "0"), 7, "endpoints[0].price.gpu_per_hour_usd", "greater than 0"
    ),
    "price infinite": Bad(
        VALID.replace("1.5", ".inf"), 7, "endpoints[0].price.gpu_per_hour_usd", "finite number"
    ),
    "min above max": Bad(
        VALID.replace("min_replicas: 1", "min_replicas: 5"),
        5,
        "endpoints[0].max_replicas",
        "min_replicas (5) must not exceed max_replicas (2)",
    ),
    "duplicate endpoint names": Bad(
        VALID.replace(
            "sources:",
            "  - name: chat\n    target: {kind: kubernetes, namespace: ns, deployment: d}\n"
            "    price: {input_per_1k_usd: 0, output_per_1k_usd: 0}\nsources:",
        ),
        8,
        "endpoints[1].name",
        "duplicate endpoint name 'chat'",
    ),
    "source names an undeclared endpoint": Bad(
        VALID.replace("{endpoint: chat,", "{endpoint: chatt,"),
        11,
        "sources[0].targets[0].endpoint",
        "undeclared endpoint 'chatt'; declared endpoints: chat",
    ),
    "both price kinds": Bad(
        VALID.replace("gpu_per_hour_usd: 1.5", "gpu_per_hour_usd: 1.5\n      input_per_1k_usd: 0.1"),
        6,
        "endpoints[0].price",
        "exactly one price kind",
    ),
    "secret in the file": Bad(
        VALID + "  - kind: prometheus\n    url: http://prom:9090\n    api_key: sk-live-123\n"
        "    endpoints: [{endpoint: chat, selector: '{job=\"x\"}'}]\n",
        14,
        "sources[1].api_key",
        "set api_key_env to the NAME of an environment variable",
    ),
    "azure_costs polled too often": Bad(
        VALID + "  - kind: azure_costs\n    scope: /subscriptions/0\n    interval_s: 600\n",
        14,
        "sources[1].interval_s",
        "at least 3600: Azure cost data refreshes about every 4 hours",
    ),
    "unknown target kind": Bad(
        VALID.replace("kind: local, model: some/model", "kind: lokal"),
        3,
        "endpoints[0].target",
        "expected tags: 'local'",
    ),
    "missing required field": Bad(
        VALID.replace("    target: {kind: local, model: some/model}\n", ""),
        2,
        "endpoints[0].target",
        "required field is missing",
    ),
    "yaml syntax error": Bad(
        VALID.replace("max_replicas: 2", "max_replicas: [2"),
        6,
        "",
        "YAML syntax error: while parsing a flow sequence (from line 5)",
    ),
    "empty file": Bad("", 1, "", "the file is empty; expected a mapping"),
    "duplicate yaml key": Bad(VALID + "sources: []\n", 12, "sources", "duplicate key"),
}


@pytest.mark.parametrize("row", BAD.values(), ids=BAD.keys())
def test_bad_config_names_file_line_and_field(tmp_path: Path, row: Bad) -> None:
    path = write(tmp_path, row.text)
    problem = only_problem(path)
    where = f"{path}:{row.line}: " + (f"{row.field}: " if row.field else "")
    assert problem.startswith(where), problem
    assert row.expected in problem, problem


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "inferplane.yaml"
    assert check_config(path) == [
        f"{path}: no such file; start from the example: inferplane config example > inferplane.yaml"
    ]


def test_all_problems_reported_together(tmp_path: Path) -> None:
    text = (
        VALID.replace("min_replicas: 1", "min_replicas: 9")
        .replace("{endpoint: chat,", "{endpoint: other,")
        .replace("max_replicas: 2", "max_replicas: 2\n    colour: blue")
    )
    problems = check_config(write(tmp_path, text))
    assert [problem.split(": ")[1] for problem in problems] == [
        "endpoints[0].max_replicas",
        "endpoints[0].colour",
        "sources[0].targets[0].endpoint",
    ]


def test_secret_values_never_appear_in_messages(tmp_path: Path) -> None:
    text = VALID.replace("min_replicas: 1", "min_replicas: 1\n    client_secret: hunter2") + (
        "  - kind: prometheus\n    url: http://admin:hunter2@prom:9090\n"
        "    bearer_token_env: hunter2-not-a-name\n"
        "    endpoints: [{endpoint: chat, selector: '{job=\"x\"}'}]\n"
        "store: {url: 'postgresql://u:hunter2@db/inferplane'}\n"
    )
    problems = check_config(write(tmp_path, text))
    assert len(problems) == 4, problems
    assert not [problem for problem in problems if "hunter2" in problem]


def test_the_autoscaler_section_rejects_unknown_keys_and_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID + "autoscaler: {dry_run: true}\n"))
    assert config.autoscaler is not None and config.autoscaler.dry_run
    problems = check_config(write(tmp_path, VALID + "autoscaler:\n  smtp:\n    password: pw\n"))
    assert problems and problems[0].startswith(
        f"{tmp_path / 'inferplane.yaml'}:13: autoscaler.smtp: unknown field"
    )
    assert not [problem for problem in problems if "pw" in problem.split(":", 3)[-1]]


ALERTS_PROBLEMS = """alerts:
  rules:
    - kind: token_spike
      endpoints: [nope]
    - kind: spend
  channels:
    - {kind: email, name: ops, host: smtp.example.com, sender: a@b.co, recipients: [x@y.co], password: pw}
    - {kind: webhook, name: ops, url: "https://hooks.example.com/x"}
    - {kind: webhook, name: w2}
    - {kind: pager, name: p}
"""


def test_alerts_section_problems_name_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + ALERTS_PROBLEMS)
    problems = "\n".join(check_config(path))
    for line, field, words in [
        (15, "alerts.rules[0].endpoints[0]", "undeclared endpoint 'nope'"),
        (16, "alerts.rules[1]", "needs daily_budget_usd, monthly_budget_usd or both"),
        (18, "alerts.channels[0].password", "secrets never go in the file"),
        (19, "alerts.channels[1].name", "duplicate channel name 'ops'"),
        (20, "alerts.channels[2]", "exactly one of url and url_env"),
        (21, "alerts.channels[3]", "pager"),
    ]:
        assert any(p.startswith(f"{path}:{line}: {field}") and words in p for p in problems.splitlines()), (
            f"line {line} {field}: {words}\n{problems}"
        )
    assert "pw" not in problems.replace("password", "")


def test_parse_config_and_model_validate_agree() -> None:
    config = parse_config(VALID, "inline.yaml")
    assert InferplaneConfig.model_validate(config.model_dump()) == config
    with pytest.raises(ConfigError, match=r"^inline\.yaml:1: the file holds a list"):
        parse_config("- 1\n", "inline.yaml")


def test_resolve_secret_from_env_and_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n", encoding="utf-8")
    assert resolve_secret("KEY", None, environ={"KEY": "from-env"}) == "from-env"
    assert resolve_secret("KEY", token_file, environ={}) == "from-file"
    assert resolve_secret(None, str(token_file), environ={}) == "from-file"
    assert resolve_secret(None, None, environ={}) is None


def test_missing_secret_names_the_variable_not_a_value(tmp_path: Path) -> None:
    environ = {"OTHER": "s3cret-value"}
    with pytest.raises(ConfigError) as caught:
        resolve_secret("INFERPLANE_VLLM_KEY", None, environ=environ)
    assert "INFERPLANE_VLLM_KEY is not set" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        resolve_secret(None, tmp_path / "absent", environ=environ)


def test_repr_holds_secret_names_not_values(tmp_path: Path) -> None:
    text = VALID.replace("    targets:", "    bearer_token_env: INFERPLANE_SCRAPE_TOKEN\n    targets:")
    config = load_config(write(tmp_path, text))
    environ = {"INFERPLANE_SCRAPE_TOKEN": "tok-123"}
    (source,) = config.sources
    assert isinstance(source, ScrapeSource)
    assert resolve_secret(source.bearer_token_env, source.bearer_token_file, environ=environ) == "tok-123"
    assert "INFERPLANE_SCRAPE_TOKEN" in repr(config) and "tok-123" not in repr(config)


def test_two_scrape_targets_of_one_endpoint_need_their_own_replica_names(tmp_path: Path) -> None:
    # Their counters would be followed as one: each restart-looking jump counted, or none.
    text = VALID + '      - {endpoint: chat, url: "http://127.0.0.1:8001/metrics"}\n'
    problem = only_problem(write(tmp_path, text))
    assert problem.startswith(f"{tmp_path / 'inferplane.yaml'}:12: sources[0].targets[1].replica:")
    assert "endpoint 'chat' replica '' is already read from targets[0]" in problem
    named = text.replace('8001/metrics"}', '8001/metrics", replica: r2}')
    assert len(load_config(write(tmp_path, named)).sources[0].targets) == 2  # type: ignore[union-attr]
