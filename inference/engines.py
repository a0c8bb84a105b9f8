"""The registry of batching engines: a name in the settings to the class that runs it.

The contract every engine keeps (``Engine``, ``RequestHandle``, ``SamplingParams``...)
lives in ``inference.engine`` and imports no engine; this module is the one place that
knows them all, so imports point one way: registry -> engines -> contract.

Engines (one file each):
- ``dynamic``: step-level dynamic batching over the model's forward pass with a KV
  cache (``inference/batching.py``).
- ``continuous``: transformers' own continuous batching (``inference/continuous.py``).

To add one, write its file and add its class to ``ENGINES`` (README, "Adding a batching
engine").
"""

from __future__ import annotations

from collections.abc import Callable

from inference.batching import DynamicBatchingEngine
from inference.continuous import ContinuousBatchingEngine
from inference.engine import Engine
from inference.loading import LoadedModel

__all__ = ["ENGINES", "EngineFactory", "make_engine"]

EngineFactory = Callable[..., Engine]
"""Called as ``factory(model, max_batch_size=..., max_wait_s=...)``."""

ENGINES: dict[str, EngineFactory] = {
    "dynamic": DynamicBatchingEngine,
    "continuous": ContinuousBatchingEngine,
}


def make_engine(name: str, model: LoadedModel, max_batch_size: int, max_wait_s: float) -> Engine:
    """The engine registered under ``name``, built but not started (call ``start``)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; expected one of {sorted(ENGINES)}") from None
    return factory(model, max_batch_size=max_batch_size, max_wait_s=max_wait_s)
