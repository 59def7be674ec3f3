"""Main effects of a 2x2 training factorial on the network-alone WER, seed by seed.

usage: python docs/runs/gates_bf16/factorial.py NEITHER A_ONLY B_ONLY BOTH (folders of wer_t0.6_s{S}.json)
Per seed s: effect of A = ((A_ONLY - NEITHER) + (BOTH - B_ONLY)) / 2, of B likewise, and the
interaction ((BOTH - B_ONLY) - (A_ONLY - NEITHER)) / 2; prints each one's mean over the seeds all four
share, in WER points, with its standard error (standard deviation over seeds / sqrt(n)).
"""

import json
import statistics
import sys
from pathlib import Path


def wers(folder: Path) -> dict[int, float]:
    return {int(f.stem.rsplit("_s", 1)[1]): json.loads(f.read_text())["wer"]["wer"]
            for f in folder.glob("wer_t0.6_s*.json")}


def main(args: list[str]) -> int:
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    n, a, b, ab = (wers(Path(x)) for x in args)
    seeds = sorted(set(n) & set(a) & set(b) & set(ab))
    if len(seeds) < 2:
        print(f"error: the folders share {len(seeds)} seeds; need at least 2", file=sys.stderr)
        return 2
    effects = {
        "A": [((a[s] - n[s]) + (ab[s] - b[s])) / 2 for s in seeds],
        "B": [((b[s] - n[s]) + (ab[s] - a[s])) / 2 for s in seeds],
        "interaction": [((ab[s] - b[s]) - (a[s] - n[s])) / 2 for s in seeds],
    }
    for name, values in effects.items():
        se = statistics.stdev(values) / len(values) ** 0.5
        print(json.dumps({"effect": name, "seeds": len(seeds), "points": round(100 * statistics.mean(values), 1),
                          "se": round(100 * se, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
