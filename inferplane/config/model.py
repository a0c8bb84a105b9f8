"""The root configuration model and the rules that span sections."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .alerts import AlertsConfig
from .autoscaling import AutoscalerConfig
from .endpoints import Endpoint
from .fields import EnvVarName, StrictModel
from .sources import Source

__all__ = ["InferplaneConfig", "Retention", "StoreConfig", "cross_field_problems"]

Loc = tuple[str | int, ...]


class Retention(StrictModel):
    """How long each resolution of stored samples is kept, in days."""

    raw_days: int = Field(2, gt=0)
    minute_days: int = Field(14, gt=0)
    hour_days: int = Field(400, gt=0)


class StoreConfig(StrictModel):
    """Where samples, costs, scaling events and alerts are stored."""

    url: str | None = Field(None, description="SQLAlchemy URL; None = the store's embedded SQLite default.")
    url_env: EnvVarName | None = Field(None, description="Env var holding the URL, when it has a password.")
    retention: Retention = Retention()

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).password is not None:
            raise ValueError("the URL holds a password; secrets never go in the file, set url_env instead")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> StoreConfig:
        if self.url is not None and self.url_env is not None:
            raise PydanticCustomError("store_url", "set url or url_env, not both", {"at": ["url_env"]})
        return self


class InferplaneConfig(StrictModel):
    """The whole ``inferplane.yaml``. Load it with :func:`inferplane.config.load_config`."""

    store: StoreConfig = StoreConfig()
    endpoints: list[Endpoint] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)
    autoscaler: AutoscalerConfig | None = None
    alerts: AlertsConfig | None = None

    @model_validator(mode="after")
    def _cross_field(self) -> InferplaneConfig:
        problems = list(cross_field_problems(self.model_dump()))
        if problems:
            # One pydantic error can carry only one location; the loader runs
            # cross_field_problems itself to place each problem on its own line.
            raise PydanticCustomError("cross_field", "; ".join(message for _, message in problems))
        return self

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint called ``name``; KeyError when none is."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(name)


# Where each source kind names endpoints: the list key, or a mapping whose values do.
_ENDPOINT_REFERENCES = {"scrape": "targets", "prometheus": "endpoints", "azure_monitor": "resources"}


def cross_field_problems(data: Any) -> Iterator[tuple[Loc, str]]:
    """Rules spanning sections, as ``(location, message)``: unique names, known endpoints.

    Works on the raw, possibly invalid mapping (skipping what is malformed, which field
    validation reports) so that these problems are reported together with all others.
    """
    if not isinstance(data, dict):
        return
    names = yield from _unique_names(
        data.get("endpoints"), "endpoints", "endpoint", lambda item: item.get("name")
    )
    yield from _unique_names(
        data.get("sources"), "sources", "source", lambda item: item.get("name", item.get("kind"))
    )
    sources = data.get("sources")
    if isinstance(sources, list) and isinstance(data.get("endpoints"), list):
        for index, source in enumerate(sources):
            if isinstance(source, dict):
                yield from _unknown_endpoints(("sources", index), source, names)
    alerts = data.get("alerts")
    if isinstance(alerts, dict):
        yield from _unique_names(
            alerts.get("channels"), "alerts.channels", "channel", lambda c: c.get("name")
        )
        yield from _rule_endpoints(alerts.get("rules"), names)


def _rule_endpoints(rules: Any, names: dict[str, int]) -> Iterator[tuple[Loc, str]]:
    declared = ", ".join(sorted(names)) or "none"
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        listed = rule.get("endpoints") if isinstance(rule, dict) else None
        for position, name in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(name, str) and name not in names:
                loc: Loc = ("alerts", "rules", index, "endpoints", position)
                yield loc, f"names undeclared endpoint {name!r}; declared endpoints: {declared}"


def _unique_names(
    items: Any, section: str, what: str, name_of: Callable[[dict[str, Any]], Any]
) -> Generator[tuple[Loc, str], None, dict[str, int]]:
    # Returns (through StopIteration) the declared names for the reference check.
    seen: dict[str, int] = {}
    if not isinstance(items, list):
        return seen
    for index, item in enumerate(items):
        name = name_of(item) if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            yield (
                (*section.split("."), index, "name"),
                f"duplicate {what} name {name!r} (first declared at {section}[{seen[name]}])",
            )
        else:
            seen[name] = index
    return seen


def _unknown_endpoints(loc: Loc, source: dict[str, Any], names: dict[str, int]) -> Iterator[tuple[Loc, str]]:
    declared = ", ".join(sorted(names)) or "none"
    references: list[tuple[Loc, Any]] = []
    key = _ENDPOINT_REFERENCES.get(str(source.get("kind")))
    if key is not None and isinstance(source.get(key), list):
        references = [
            ((*loc, key, index, "endpoint"), item.get("endpoint"))
            for index, item in enumerate(source[key])
            if isinstance(item, dict)
        ]
    elif source.get("kind") == "azure_costs" and isinstance(source.get("tag_endpoint_map"), dict):
        references = [
            ((*loc, "tag_endpoint_map", tag), name) for tag, name in source["tag_endpoint_map"].items()
        ]
    for where, name in references:
        if isinstance(name, str) and name not in names:
            yield where, f"names undeclared endpoint {name!r}; declared endpoints: {declared}"
