"""Paired comparison, seed by seed, of two served.sh folders: WER, PESQ-WB, STOI, log-mel distance.

usage: python docs/runs/gates_bf16/served_paired.py BASE_DIR RUN_DIR  (one JSON line per metric)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = ("wer", "pesq_wb", "stoi", "log_mel_distance")


def load(folder: str) -> dict[int, tuple[float, ...]]:
    out = {}
    for f in Path(folder).glob("served_s*.json"):
        r = json.loads(f.read_text())
        mean = r["copy"]["mean"]
        seed = int(f.stem.split("_s")[-1])
        out[seed] = (100 * r["wer"]["wer"], mean["pesq_wb"], mean["stoi"], mean["log_mel_distance"])
    return out


def main(base_dir: str, run_dir: str) -> None:
    base, run = load(base_dir), load(run_dir)
    seeds = sorted(set(base) & set(run))
    if len(seeds) < 2:
        sys.exit(f"error: {base_dir} and {run_dir} share {len(seeds)} seeds; need at least 2")
    for i, name in enumerate(METRICS):
        a = [base[s][i] for s in seeds]
        b = [run[s][i] for s in seeds]
        d = [y - x for x, y in zip(a, b, strict=True)]
        print(json.dumps({"metric": name, "seeds": len(seeds), "base": round(statistics.mean(a), 4),
                          "run": round(statistics.mean(b), 4), "diff": round(statistics.mean(d), 4),
                          "se": round(statistics.stdev(d) / len(d) ** 0.5, 4),
                          "run_better_at": sum((y < x) if name in ("wer", "log_mel_distance") else (y > x)
                                               for x, y in zip(a, b, strict=True))}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
