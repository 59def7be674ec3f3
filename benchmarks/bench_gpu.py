"""GPU sampler speed: the fused persistent kernel against torch, on one CUDA device.

Metric. For hidden size H (``--hidden``, default 896 and 1024) and a batch of B streams
(``--batches``, default 1 4 16 64 256), one timed run is one ``generate`` call producing
``--samples`` samples per stream from a random state; after a warm-up call (compilation),
the median of ``--repeats`` runs, each timed with CUDA events around the call, gives

- ``samples_per_s_per_stream``: samples / time;
- ``samples_per_s_aggregate``: B * samples / time;
- ``us_per_step``: time / samples, one step of every stream in the batch.

Rows, all in the same process on the same device and weights (seeded untrained WaveRNN-H;
``--sparsity`` masks R and the heads in 16x1 blocks: the kernel holds a pruned R packed on its
register-resident path, batches up to 4; the heads and the tl.dot path stay dense):

- ``fused``: :class:`models.samplers.gpu.GpuSampler`, one persistent launch per block;
- ``torch``: :class:`models.samplers.reference.ReferenceSampler` on the GPU (a kernel launch
  per operation, Python per sample), at B = 1 and 16 only (``--reference-samples`` samples);
- ``cuda_graph``: the same step cell captured with ``--graph-steps`` steps in one CUDA graph
  and replayed (launch gaps removed, still one kernel per operation);
- ``phased``: the fused kernel's fallback mode (one launch per phase, what a sampler whose
  barrier gave up runs), at B = 1 and 16 (``--reference-samples`` samples).

``barrier_us``: the cost of one grid barrier, from a kernel that only syncs (one program per
multiprocessor of the device); ``floor_us_per_step`` = 4 barriers, the least a step can take with this design.
The JSON line printed last holds every row and the device. Without CUDA it prints
``{"error": ...}`` and exits 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import torch

from models.config import WaveRNNConfig
from models.samplers.base import SamplerState
from models.samplers.reference import WaveRNNCell, interpolate_cond
from models.wavernn import WaveRNN
from models.weights import InferenceWeights, extract_weights


def make_weights(hidden: int, sparsity: float) -> InferenceWeights:
    torch.manual_seed(0)
    base = extract_weights(WaveRNN(WaveRNNConfig(hidden_size=hidden)).eval())
    if sparsity <= 0:
        return base
    from models.sparsity import block_mask, gate_masks

    changes = {"R": base.R * gate_masks(base.R, sparsity, (16, 1))}
    for name in ("O1", "O2", "O3", "O4"):
        w = getattr(base, name)
        changes[name] = w * block_mask(w, sparsity, (16, 1))
    return InferenceWeights(base.hop_length, **{**base.tensors(), **changes})


def inputs(hidden: int, batch: int, n: int, hop: int) -> tuple[SamplerState, torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(batch)
    state = SamplerState.initial(batch, hidden, "cuda")
    state.h = torch.randn(batch, hidden, device="cuda", generator=g) * 0.3
    frames = n // hop + 2
    cond = torch.randn(batch, frames, 3 * hidden, device="cuda", generator=g) * 0.5  # (B, F, 3H)
    uniforms = torch.rand(batch, n, 2, device="cuda", generator=g)
    return state, cond, uniforms


def cuda_missing(script: str) -> bool:
    """True (after printing the ``{"error": ...}`` JSON line) when no CUDA device is visible."""
    if torch.cuda.is_available():
        return False
    print(json.dumps({"error": f"no CUDA device: {script} measures the fused kernels on a GPU"}))
    return True


def time_call(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, CUDA events around each."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


class GraphSampler:
    """The torch step cell, ``steps`` steps captured in one CUDA graph (batch fixed at capture)."""

    def __init__(self, weights: InferenceWeights, batch: int, steps: int, hop: int, frames: int) -> None:
        self.cell = WaveRNNCell(weights.to("cuda")).cuda()
        h = weights.hidden_size
        self.h = torch.zeros(batch, h, device="cuda")
        self.c = torch.full((batch,), 128, dtype=torch.long, device="cuda")
        self.f = torch.zeros(batch, dtype=torch.long, device="cuda")
        self.cond = torch.zeros(batch, frames, 3 * h, device="cuda")
        self.uni = torch.zeros(batch, steps, 2, device="cuda")
        self.base = torch.zeros(batch, dtype=torch.long, device="cuda")
        self.out = torch.zeros(batch, steps, 2, dtype=torch.long, device="cuda")
        self.steps, self.hop = steps, hop
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._body()  # warm-up outside the graph
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    @torch.no_grad()
    def _body(self) -> None:
        h, c, f = self.h, self.c, self.f
        for k in range(self.steps):
            g = interpolate_cond(self.cond, self.base + k, self.hop)
            h, c, f, _, _ = self.cell(h, c, f, g, self.uni[:, k])
            self.out[:, k, 0] = c
            self.out[:, k, 1] = f
        self.h.copy_(h)
        self.c.copy_(c)
        self.f.copy_(f)

    def replay(self) -> None:
        self.graph.replay()


def barrier_cost(programs: int, n: int = 20000) -> float:
    """Microseconds per grid barrier with ``programs`` resident programs."""
    from models.samplers.persistent import grid_sync_kernel

    counter = torch.zeros(1, dtype=torch.int32, device="cuda")
    flag = torch.zeros(1, dtype=torch.int32, device="cuda")

    def run() -> None:
        counter.zero_()
        grid_sync_kernel[(programs,)](counter, flag, n, 1 << 24, num_warps=4)

    run()
    return time_call(run, 5) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[896, 1024])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.0],
                        help="one per --hidden (e.g. 0 0.95)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--samples", type=int, default=24000)
    parser.add_argument("--reference-samples", type=int, default=600)
    parser.add_argument("--graph-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if cuda_missing("bench_gpu.py"):
        return 2
    from models.samplers.gpu import GpuSampler, half_weights

    props = torch.cuda.get_device_properties(0)
    rows: list[dict[str, Any]] = []
    barrier = barrier_cost(props.multi_processor_count)
    hop = 300
    for hidden, sparsity in zip(args.hidden, args.sparsity + [0.0] * len(args.hidden), strict=False):
        weights = half_weights(make_weights(hidden, sparsity))
        fused = GpuSampler(weights, "cuda", mode="persistent")
        for batch in args.batches:
            for name, n in (("fused", args.samples), ("torch", args.reference_samples),
                            ("cuda_graph", args.graph_steps), ("phased", args.reference_samples)):
                if name != "fused" and batch not in (1, 16):
                    continue
                state, cond, uni = inputs(hidden, batch, n, hop)
                if name == "fused":
                    fused.generate(state, cond, uni)
                    seconds = time_call(lambda: fused.generate(state, cond, uni), args.repeats)  # noqa: B023
                elif name == "phased":
                    phased = GpuSampler(weights, "cuda", mode="phased")
                    phased.generate(state, cond, uni)
                    seconds = time_call(lambda: phased.generate(state, cond, uni), max(1, args.repeats // 2))  # noqa: B023
                elif name == "torch":
                    from models.samplers.reference import ReferenceSampler

                    ref = ReferenceSampler(weights.to("cuda"))
                    ref.generate(state, cond, uni)
                    seconds = time_call(lambda: ref.generate(state, cond, uni), max(1, args.repeats // 2))  # noqa: B023
                else:
                    graph = GraphSampler(weights, batch, n, hop, cond.shape[1])
                    graph.cond.copy_(cond)
                    graph.uni.copy_(uni)
                    seconds = time_call(graph.replay, args.repeats)
                row = {"sampler": name, "hidden": hidden, "sparsity": sparsity, "batch": batch, "samples": n,
                       "seconds": seconds, "samples_per_s_per_stream": n / seconds,
                       "samples_per_s_aggregate": batch * n / seconds, "us_per_step": seconds / n * 1e6}
                rows.append(row)
                print(f"{name:10s} H={hidden:5d} z={sparsity:.2f} B={batch:4d} "
                      f"{row['samples_per_s_per_stream']:12,.0f}/stream {row['samples_per_s_aggregate']:14,.0f} total "
                      f"{row['us_per_step']:8.2f} us/step", flush=True)
    print(json.dumps({"device": props.name, "multiprocessors": props.multi_processor_count,
                      "torch": torch.__version__, "barrier_us": barrier, "floor_us_per_step": 4 * barrier,
                      "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
