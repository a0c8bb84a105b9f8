"""Write two generated one-hour traces of shapes the replay bench does not hold, as
BurstGPT CSVs, to check the autoscaler on traffic it was never tuned on.

- ``steady-long``: retrieval-style traffic, 1.5 requests/s with little burstiness (the
  rate of each 30 s drawn from a gamma of coefficient of variation 0.3), prompts
  log-normal around 6,000 tokens (sigma 1: some above 30,000), answers around 150;
- ``bursty-chat``: chat traffic, 4 requests/s whose rate changes every 30 s by a gamma
  of coefficient of variation 1 (bursts and lulls), prompts around 700, answers 250.

Neither shape, nor any setting of the replay's configuration, was chosen from results on
them. Run it and replay each file::

    python bench/unseen_shapes.py /tmp/unseen
    inferplane replay --config examples/replay-a100.yaml --trace /tmp/unseen/steady-long.csv \\
        --load-scale 3 --ttft-per-1k-prompt 0.1
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# name: (requests/s, coefficient of variation of each 30 s's rate, mean prompt, mean answer, seed)
SHAPES = {
    "steady-long": (1.5, 0.3, 6000, 150, 2),
    "bursty-chat": (4.0, 1.0, 700, 250, 1),
}
_STEP_S = 30
_HOUR_S = 3600


def write_shape(path: Path, rate: float, cv: float, mean_prompt: int, mean_answer: int, seed: int) -> int:
    """One hour of the shape as a BurstGPT CSV at ``path``; returns the requests written."""
    rng = np.random.default_rng(seed)
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for step in range(_HOUR_S // _STEP_S):
        count = rng.poisson(rate * rng.gamma(1 / cv**2, cv**2) * _STEP_S)
        times = np.sort(rng.uniform(step * _STEP_S, (step + 1) * _STEP_S, count))
        # log-normal with sigma 1 and mean ``mean``: mu = ln(mean) - sigma^2 / 2
        prompts = np.maximum(1, rng.lognormal(np.log(mean_prompt) - 0.5, 1.0, count)).astype(int)
        answers = np.maximum(1, rng.lognormal(np.log(mean_answer) - 0.5, 1.0, count)).astype(int)
        for at, prompt, answer in zip(times, prompts, answers, strict=True):
            lines.append(f"{at:.3f},generated,{prompt},{answer},{prompt + answer},Conversation log")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def main(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, shape in SHAPES.items():
        count = write_shape(out / f"{name}.csv", *shape)
        print(f"{out / name}.csv: {count:,} requests")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
