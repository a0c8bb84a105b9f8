"""The registry of batching engines: a name in the settings to the class that runs it.

The contract every engine keeps (``Engine``, ``RequestHandle``, ``SamplingParams``...)
lives in ``inference.engine`` and imports no engine; this module is the one place that
knows them all, so imports point one way: registry -> engines -> contract.

Engines (one file each):
- ``dynamic``: step-level dynamic batching over the model's forward pass with a KV
  cache (``inference/batching.py``).
- ``continuous``: transformers' own continuous batching (``inference/continuous.py``).

To add one, write its file and register a factory in ``ENGINES`` (README, "Adding a batching
engine").
"""

from __future__ import annotations

from collections.abc import Callable

from inference.engine import Engine
from inference.loading import LoadedModel

__all__ = ["ENGINES", "EngineFactory", "make_engine"]

EngineFactory = Callable[[LoadedModel, int, float], Engine]
"""Called as ``factory(model, max_batch_size, max_wait_s)``."""


# Each factory imports its engine when called: a replica pays only for the engine it
# runs (transformers' continuous batching alone adds seconds to every start on CPU).
def _dynamic(model: LoadedModel, max_batch_size: int, max_wait_s: float) -> Engine:
    from inference.batching import DynamicBatchingEngine

    return DynamicBatchingEngine(model, max_batch_size=max_batch_size, max_wait_s=max_wait_s)


def _continuous(model: LoadedModel, max_batch_size: int, max_wait_s: float) -> Engine:
    from inference.continuous import ContinuousBatchingEngine

    return ContinuousBatchingEngine(model, max_batch_size=max_batch_size, max_wait_s=max_wait_s)


ENGINES: dict[str, EngineFactory] = {
    "dynamic": _dynamic,
    "continuous": _continuous,
}


def make_engine(name: str, model: LoadedModel, max_batch_size: int, max_wait_s: float) -> Engine:
    """The engine registered under ``name``, built but not started (call ``start``)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; expected one of {sorted(ENGINES)}") from None
    return factory(model, max_batch_size, max_wait_s)
