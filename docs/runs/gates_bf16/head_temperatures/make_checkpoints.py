"""Copies of a checkpoint whose coarse (O2) and fine (O4) output layers are divided by their own
temperatures, so that `wavernn-tts eval --temperature 1.0` samples softmax(logits_c / Tc) and
softmax(logits_f / Tf) (docs/quality.md section 15, "One temperature or two").

usage: python docs/runs/gates_bf16/head_temperatures/make_checkpoints.py CKPT OUT_DIR TC:TF [TC:TF ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch


def parse(pair: str) -> tuple[float, float]:
    """``TC:TF`` as two temperatures, or exit with the fix."""
    try:
        tc, tf = (float(t) for t in pair.split(":"))
    except ValueError:
        sys.exit(f"error: {pair!r} is not TC:TF, two temperatures such as 0.6:0.3")
    if not (0.05 <= tc <= 2 and 0.05 <= tf <= 2):
        sys.exit(f"error: temperatures must be 0.05..2, got {pair!r}")
    return tc, tf


def main(ckpt: str, out_dir: str, pairs: list[str]) -> None:
    temperatures = [parse(pair) for pair in pairs]
    if not Path(ckpt).is_file():
        sys.exit(f"error: checkpoint {ckpt} does not exist")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    state.pop("train_state", None)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for tc, tf in temperatures:
        model = {k: v.clone() for k, v in state["model"].items()}
        for layer, t in (("O2", tc), ("O4", tf)):
            model[f"{layer}.weight"] /= t
            model[f"{layer}.bias"] /= t
        torch.save({**state, "model": model}, Path(out_dir) / f"tc{tc}_tf{tf}.pt")

if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
