"""Load a causal language model and its tokenizer onto the best device here.

On a GPU the model runs in bf16; on CPU in fp32 (bf16 matmuls are slow on most CPUs).
``load_model`` takes a local directory (for example one prepared by
``inference.model_store``) or a Hugging Face model id; tests only ever pass local paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["LoadedModel", "ModelLoadError", "load_model", "pick_device"]


class ModelLoadError(RuntimeError):
    """The model or its tokenizer could not be loaded; the message says from where."""


@dataclass
class LoadedModel:
    """A model ready to serve: weights on ``device``, tokenizer, and how long loading took."""

    name: str
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    load_seconds: float

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every token id that ends a generation (the config may list several)."""
        ids: set[int] = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return frozenset(ids)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else min(self.eos_token_ids, default=0)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))


def pick_device(requested: str = "auto") -> tuple[torch.device, torch.dtype]:
    """Choose the device and dtype: CUDA in bf16 when present, else CPU in fp32."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return device, dtype


def load_model(path_or_id: str, name: str | None = None, device: str = "auto") -> LoadedModel:
    """Load weights and tokenizer from ``path_or_id``; raise ``ModelLoadError`` on failure."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_device, dtype = pick_device(device)
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"could not load model from {path_or_id!r}: {error}. "
            "Run `inferplane model pull` for the default model, or pass a local directory "
            "holding config.json, the weights and the tokenizer."
        ) from error
    model.to(torch_device).eval()  # type: ignore[arg-type]
    return LoadedModel(
        name=name or path_or_id,
        model=model,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=dtype,
        load_seconds=time.perf_counter() - started,
    )
