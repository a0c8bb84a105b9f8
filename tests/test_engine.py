"""Every batching engine against the real model, in process.

Batched generation must be exactly what the model generates alone (greedy), whatever
joins or leaves the batch meanwhile; cancelled work must stop.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from inference.engine import SamplingParams, TokenEvent
from inference.engines import ENGINES, make_engine
from inference.loading import LoadedModel, load_model

PROMPTS = [
    "What is the capital of France?",
    "Name a fruit.",
    "Count to five.",
    "Write a haiku about rain, please, with a title and some commentary.",
    "Hi",
]


@pytest.fixture(scope="module")
def model(model_path: str) -> LoadedModel:
    return load_model(model_path)


def chat_ids(model: LoadedModel, text: str) -> list[int]:
    encoded = model.tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True
    )
    return list(encoded["input_ids"])


def reference(model: LoadedModel, ids: list[int], max_new_tokens: int) -> list[int]:
    with torch.inference_mode():
        out = model.model.generate(
            torch.tensor([ids]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=model.pad_token_id,
        )
    tokens = out[0, len(ids) :].tolist()
    eos = model.eos_token_ids
    return tokens[: next((i for i, t in enumerate(tokens) if t in eos), len(tokens))]


async def collect(engine, ids: list[int], params: SamplingParams, delay_s: float = 0.0):  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay_s)  # arrival time in the scenario, not synchronisation
    tokens, last = [], None
    async for event in engine.submit(ids, params):
        if event.token_id is None:
            last = event
        else:
            tokens.append(event.token_id)
    return tokens, last


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_batched_greedy_output_equals_the_model_alone(model: LoadedModel, engine_name: str) -> None:
    engine = make_engine(engine_name, model, max_batch_size=4, max_wait_s=0.01)
    engine.start()
    try:
        params = SamplingParams(max_new_tokens=24, stop_token_ids=model.eos_token_ids)
        prompts = [chat_ids(model, p) for p in PROMPTS]
        # Staggered arrivals with a batch smaller than the crowd: requests join a running
        # batch, wait for a free slot, and leave at different steps.
        results = await asyncio.gather(
            *(collect(engine, ids, params, 0.05 * i) for i, ids in enumerate(prompts))
        )
    finally:
        engine.close()
    for ids, (tokens, last) in zip(prompts, results, strict=True):
        assert tokens == reference(model, ids, 24)
        assert last.finish_reason == ("length" if len(tokens) == 24 else "stop")
    assert max(engine.stats.snapshot_batch_sizes()) > 1, "requests really shared forward passes"


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
async def test_cancel_stops_generation_and_frees_the_slot(model: LoadedModel, engine_name: str) -> None:
    engine = make_engine(engine_name, model, max_batch_size=2, max_wait_s=0.0)
    engine.start()
    try:
        handle = engine.submit(
            chat_ids(model, "Tell me a very long story."), SamplingParams(max_new_tokens=500)
        )
        received: list[TokenEvent] = []
        async for event in handle:
            received.append(event)
            if len(received) == 3:
                handle.cancel()
            if event.token_id is None:
                break
        assert received[-1].finish_reason == "cancelled"
        assert len(received) < 10, "generation stopped right after the cancel"
        tokens, last = await collect(engine, chat_ids(model, "Hi"), SamplingParams(max_new_tokens=3))
        assert last.finish_reason == "length" and len(tokens) == 3
        for _ in range(100):  # the engine publishes its counts after handing out events
            if engine.stats.running == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.stats.running == 0
    finally:
        engine.close()


async def test_sampling_respects_the_token_budget(model: LoadedModel) -> None:
    engine = make_engine("dynamic", model, max_batch_size=8, max_wait_s=0.01)
    engine.start()
    try:
        params = SamplingParams(max_new_tokens=6, temperature=1.2, top_p=0.9)
        results = await asyncio.gather(
            *(collect(engine, chat_ids(model, "Say a word"), params) for _ in range(6))
        )
    finally:
        engine.close()
    assert all(len(tokens) <= 6 and last.finish_reason in ("stop", "length") for tokens, last in results)
    assert len({tuple(tokens) for tokens, _ in results}) > 1


def test_unknown_engine_names_the_choices(model: LoadedModel) -> None:
    with pytest.raises(ValueError, match="dynamic"):
        make_engine("warp-drive", model, 4, 0.0)
