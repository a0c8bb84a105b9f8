"""bench/unseen_shapes.py writes the traces its docstring describes, in a format the
replay reads."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path
from types import ModuleType

import pytest

from inference.trace import load_trace

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "unseen_shapes.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unseen_shapes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["steady-long", "bursty-chat"])
def test_each_shape_is_an_hour_at_its_rate_and_sizes(tmp_path: Path, name: str) -> None:
    shapes = _module()
    shapes.main(str(tmp_path))
    rate, cv, mean_prompt, mean_answer, _ = shapes.SHAPES[name]
    requests = load_trace(tmp_path / f"{name}.csv")
    assert requests[-1].offset_s < 3600
    # A gamma-modulated Poisson hour: the count within 15 % of rate x 3,600 (cv 1 over
    # 120 windows of 30 s gives a standard error of about 9 %).
    assert len(requests) == pytest.approx(rate * 3600, rel=0.15)
    assert statistics.mean(r.prompt_tokens for r in requests) == pytest.approx(mean_prompt, rel=0.15)
    assert statistics.mean(r.generated_tokens for r in requests) == pytest.approx(mean_answer, rel=0.15)
    # Burstiness as described: requests per 30 s vary about as much as the shape says.
    per_window = [0] * 120
    for r in requests:
        per_window[int(r.offset_s // 30)] += 1
    measured_cv = statistics.pstdev(per_window) / statistics.mean(per_window)
    assert measured_cv == pytest.approx(cv, abs=0.2)


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    shapes = _module()
    shapes.main(str(tmp_path / "a"))
    shapes.main(str(tmp_path / "b"))
    for name in shapes.SHAPES:
        assert (tmp_path / "a" / f"{name}.csv").read_bytes() == (tmp_path / "b" / f"{name}.csv").read_bytes()
