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

``--hours 24`` writes whole days instead (the same shapes, drawn on): what the spike
rule's bench needs to judge a clean day of the shape itself, where an hour would be
tiled into a day of rotated copies, each minute seen again every hour::

    python bench/unseen_shapes.py /tmp/unseen-days --hours 24
    inferplane bench alerts --trace /tmp/unseen-days/bursty-chat.csv --injection surge
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# name: (requests/s, coefficient of variation of each 30 s's rate, mean prompt, mean answer, seed)
SHAPES = {
    "steady-long": (1.5, 0.3, 6000, 150, 2),
    "bursty-chat": (4.0, 1.0, 700, 250, 1),
}
_STEP_S = 30
_HOUR_S = 3600


def write_shape(
    path: Path, rate: float, cv: float, mean_prompt: int, mean_answer: int, seed: int, hours: int = 1
) -> int:
    """``hours`` of the shape as a BurstGPT CSV at ``path``; returns the requests written.
    The first hour is the same whatever ``hours`` is (one random stream, drawn in order)."""
    rng = np.random.default_rng(seed)
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for step in range(hours * _HOUR_S // _STEP_S):
        count = rng.poisson(rate * rng.gamma(1 / cv**2, cv**2) * _STEP_S)
        times = np.sort(rng.uniform(step * _STEP_S, (step + 1) * _STEP_S, count))
        # log-normal with sigma 1 and mean ``mean``: mu = ln(mean) - sigma^2 / 2
        prompts = np.maximum(1, rng.lognormal(np.log(mean_prompt) - 0.5, 1.0, count)).astype(int)
        answers = np.maximum(1, rng.lognormal(np.log(mean_answer) - 0.5, 1.0, count)).astype(int)
        for at, prompt, answer in zip(times, prompts, answers, strict=True):
            lines.append(f"{at:.3f},generated,{prompt},{answer},{prompt + answer},Conversation log")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def main(folder: str, hours: int = 1) -> None:
    if hours < 1:
        raise SystemExit(f"--hours must be at least 1, got {hours}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, shape in SHAPES.items():
        count = write_shape(out / f"{name}.csv", *shape, hours=hours)
        print(f"{out / name}.csv: {count:,} requests over {hours} h")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the generated shapes as BurstGPT CSVs.")
    parser.add_argument("folder", nargs="?", default=".", help="where to write them (default: here)")
    parser.add_argument("--hours", type=int, default=1, help="how long each trace is (default: 1)")
    arguments = parser.parse_args()
    main(arguments.folder, arguments.hours)
