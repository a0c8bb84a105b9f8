"""KEDA, emulated for the replay on the very ScaledObject ``inferplane export keda`` writes.

Sources (kedacore/keda, and keda.sh/docs "Scaling Deployments" and the Prometheus
scaler): KEDA turns each trigger into an External metric of the HPA it creates
(``pkg/scaling/executor``, ``pkg/scalers/prometheus_scaler.go``): the query's value with
the trigger's ``threshold`` as ``AverageValue`` (the default) or ``Value`` target; the HPA
(emulated in :mod:`autoscaler.replay.hpa`) takes the largest recommendation, normalized by
the ScaledObject's ``advanced.horizontalPodAutoscalerConfig.behavior`` (the HPA defaults
for what it leaves out), within ``minReplicaCount`` (at least 1 for the HPA) and
``maxReplicaCount``. KEDA's own loop runs every ``pollingInterval`` (default 30 s) and only
activates: from zero replicas to one when a trigger's value exceeds its
``activationThreshold`` (default 0), and back to ``minReplicaCount`` 0 once no trigger has
been active for ``cooldownPeriod`` (default 300 s).

Simplifications: each query is evaluated on the newest simulated scrape by a small
evaluator of the PromQL the export writes (``sum``/``avg``/``max``/``min`` of one metric,
``+ - * /``, numbers and ``or`` between aggregates; label matchers are read but not needed, the replay has one
endpoint); a query using another metric or construct is an error naming it, never a
silent zero. The requests waiting are one series (the router and the replicas' queues
together), which a ``sum`` reads the same as per-replica series. Cron triggers are not
emulated (the replay would need the schedule's wall clock): a ScaledObject with one is
refused with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.replay.hpa import DEFAULT_BEHAVIOR, Behavior, HpaScaler, RatePolicy, Rule, external_replicas
from autoscaler.replay.policies import FleetView
from autoscaler.replay.simulator import Scrape

__all__ = ["KedaPolicy", "Trigger", "evaluate_query"]

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|([A-Za-z_:][A-Za-z0-9_:]*)|(\{[^}]*\})|(.))")
_AGGREGATIONS: Mapping[str, Callable[[Sequence[float]], float]] = {
    "sum": sum,
    "avg": lambda v: sum(v) / len(v) if v else float("nan"),
    "max": lambda v: max(v) if v else float("nan"),
    "min": lambda v: min(v) if v else float("nan"),
}


def _series(scrape: Scrape) -> dict[str, list[float]]:
    """What a Prometheus would hold for the endpoint at this scrape, per series: nothing
    while no replica runs to export it (as the export's note says, only a cron window or
    the HTTP add-on wakes a Deployment at zero)."""
    util = [] if scrape.utilization is None else [scrape.utilization] * scrape.ready
    series = {
        "inferplane_gpu_utilization_ratio": util,
        "DCGM_FI_DEV_GPU_UTIL": [u * 100 for u in util],
        "inferplane_requests_waiting": [float(scrape.waiting)],
        "inferplane_requests_running": [float(scrape.running)],
        # What a CPU replica exports in place of the GPU ratio; the simulated replicas are GPUs.
        "inferplane_engine_busy_ratio": [],
    }
    return {name: [] for name in series} if scrape.ready == 0 else series


def _empty(value: float | list[float]) -> bool:
    return not value if isinstance(value, list) else value != value  # NaN: nothing to aggregate


def evaluate_query(query: str, scrape: Scrape) -> float:
    """The value of ``query`` (the export's PromQL subset) on ``scrape``; ValueError names
    what cannot be evaluated."""
    tokens = [t for t in _tokens(query)]
    parser = _Parser(tokens, _series(scrape), query)
    value = parser.expression()
    if parser.position != len(tokens):
        raise ValueError(f"keda: cannot evaluate {query!r}: unexpected {tokens[parser.position][1]!r}")
    if isinstance(value, list):
        raise ValueError(f"keda: query {query!r} returns a vector; KEDA needs one value (aggregate it)")
    return value


def _tokens(query: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(query.rstrip()):
        match = _TOKEN.match(query, at)
        if match is None:  # pragma: no cover - the pattern matches any character
            break
        number, name, labels, other = match.groups()
        kind = "num" if number else "name" if name else "labels" if labels else "op"
        out.append((kind, number or name or labels or other))
        at = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], series: dict[str, list[float]], query: str) -> None:
        self.tokens, self.series, self.query, self.position = tokens, series, query, 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, text: str) -> None:
        token = self._peek()
        if token is None or token[1] != text:
            raise ValueError(f"keda: cannot evaluate {self.query!r}: expected {text!r}")
        self.position += 1

    def expression(self) -> float | list[float]:
        # ``a or b``: PromQL's union; of the aggregated values the export writes, the
        # left one unless it is empty (no series: NaN here), else the right one.
        value = self._sum()
        while (token := self._peek()) is not None and token == ("name", "or"):
            self.position += 1
            right = self._sum()
            value = right if _empty(value) else value
        return value

    def _sum(self) -> float | list[float]:
        value = self._term()
        while (token := self._peek()) is not None and token[1] in "+-":
            self.position += 1
            right = self._term()
            value = self._apply(token[1], value, right)
        return value

    def _term(self) -> float | list[float]:
        value = self._factor()
        while (token := self._peek()) is not None and token[1] in "*/":
            self.position += 1
            value = self._apply(token[1], value, self._factor())
        return value

    def _factor(self) -> float | list[float]:
        token = self._peek()
        if token is None:
            raise ValueError(f"keda: cannot evaluate {self.query!r}: it ends too soon")
        kind, text = token
        self.position += 1
        if kind == "num":
            return float(text)
        if text == "(":
            value = self.expression()
            self._take(")")
            return value
        if kind == "name" and text in _AGGREGATIONS and (self._peek() or ("", ""))[1] == "(":
            self._take("(")
            inner = self.expression()
            self._take(")")
            return _AGGREGATIONS[text](inner if isinstance(inner, list) else [inner])
        if kind == "name":
            if text not in self.series:
                raise ValueError(
                    f"keda: the replay cannot evaluate metric {text!r} in {self.query!r}; "
                    f"it simulates {', '.join(sorted(self.series))}"
                )
            if (self._peek() or ("", ""))[0] == "labels":
                self.position += 1  # one endpoint in the replay: its matchers select every series
            return list(self.series[text])
        raise ValueError(f"keda: cannot evaluate {self.query!r}: unexpected {text!r}")

    def _apply(self, op: str, left: float | list[float], right: float | list[float]) -> float:
        if isinstance(left, list) or isinstance(right, list):
            raise ValueError(f"keda: {self.query!r}: arithmetic on a vector is not emulated; aggregate first")
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        return left / right if right else float("nan")


@dataclass(frozen=True)
class Trigger:
    """One Prometheus trigger of the ScaledObject."""

    name: str
    query: str
    threshold: float
    activation: float
    metric_type: str


class KedaPolicy:
    """``keda``: the ScaledObject's triggers through KEDA and its HPA (see the module
    docstring). ``poll_s`` is the HPA's 15 s sync; activation runs every
    ``pollingInterval``."""

    poll_s = 15.0

    def __init__(self, scaled_object: Mapping[str, Any]) -> None:
        spec = scaled_object["spec"]
        self.triggers = [_trigger(t) for t in spec["triggers"]]
        self.polling_s = float(spec.get("pollingInterval", 30))
        self.cooldown_s = float(spec.get("cooldownPeriod", 300))
        self.min_count = int(spec.get("minReplicaCount", 0))
        high = int(spec.get("maxReplicaCount", 100))
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        self.scaler = HpaScaler(max(self.min_count, 1), high, _behavior(behavior))
        self.last_poll = -float("inf")
        self.last_active: float | None = None  # the replay begins mid-traffic: active then

    def __call__(self, now_s: float, view: FleetView) -> int:
        current = view.replicas
        newest = view.scrapes[-1] if view.scrapes else None
        if newest is None:
            return current
        values = [(t, evaluate_query(t.query, newest)) for t in self.triggers]
        active = any(v > t.activation for t, v in values if v == v)
        if active or self.last_active is None:
            self.last_active = now_s
        if now_s - self.last_poll >= self.polling_s - 1e-9:  # KEDA's own loop: activation only
            self.last_poll = now_s
            if current == 0:
                return 1 if active else 0
            idle_for = now_s - self.last_active
            if self.min_count == 0 and not active and idle_for >= self.cooldown_s:
                return 0
        if current == 0:
            return 0  # the HPA does not act at zero; KEDA activates on its own loop
        # The HPA's ready pods leave out those being deleted; the query's series still hold
        # them while they run and export (``_series``).
        ready = newest.serving or current
        desired = max(
            external_replicas(v, t.threshold, t.metric_type, current, ready) for t, v in values if v == v
        )
        return self.scaler.normalize(now_s, current, desired)


def _trigger(data: Mapping[str, Any]) -> Trigger:
    if data.get("type") != "prometheus":
        raise ValueError(
            f"keda: trigger type {data.get('type')!r} is not emulated by the replay (only prometheus)"
        )
    meta = data["metadata"]
    return Trigger(
        str(data.get("name", "")),
        str(meta["query"]),
        float(meta["threshold"]),
        float(meta.get("activationThreshold", 0)),
        str(data.get("metricType", "AverageValue")),
    )


def _behavior(data: Mapping[str, Any]) -> Behavior:
    def rule(key: str, default: Rule) -> Rule:
        given = data.get(key)
        if not given:
            return default
        policies = tuple(
            RatePolicy(p["type"], float(p["value"]), float(p["periodSeconds"]))
            for p in given.get("policies", [])
        )
        return Rule(
            float(given.get("stabilizationWindowSeconds", default.stabilization_s)),
            policies or default.policies,
            str(given.get("selectPolicy", "Max")),
        )

    return Behavior(
        rule("scaleUp", DEFAULT_BEHAVIOR.scale_up), rule("scaleDown", DEFAULT_BEHAVIOR.scale_down)
    )
