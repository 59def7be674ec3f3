"""Network-alone WER of run folders, seed by seed, with each one's paired difference against the first.

usage: python docs/runs/state_noise/paired_wer.py BASE_DIR DIR... (each holding wer_t0.6_s{S}.json)
Prints, per folder, the mean WER over the seeds all folders share, and the mean paired difference
against BASE_DIR with its standard error (standard deviation of the per-seed differences / sqrt(n)).
"""

import json
import statistics
import sys
from pathlib import Path


def wers(folder: Path) -> dict[int, float]:
    out = {}
    for f in folder.glob("wer_t0.6_s*.json"):
        out[int(f.stem.rsplit("_s", 1)[1])] = json.loads(f.read_text())["wer"]["wer"]
    return out


def main(args: list[str]) -> int:
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = {a: wers(Path(a)) for a in args}
    seeds = sorted(set.intersection(*(set(w) for w in runs.values())))
    if len(seeds) < 2:
        print(f"error: the folders share {len(seeds)} seeds; need at least 2", file=sys.stderr)
        return 2
    base = runs[args[0]]
    for name, w in runs.items():
        diffs = [w[s] - base[s] for s in seeds]
        se = statistics.stdev(diffs) / len(diffs) ** 0.5
        print(json.dumps({"run": name, "seeds": len(seeds), "wer": round(100 * statistics.mean(w[s] for s in seeds), 1),
                          "diff": round(100 * statistics.mean(diffs), 1), "se": round(100 * se, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
