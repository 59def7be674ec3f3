"""ONNX export of the two parts a runtime needs: the conditioning network and the step cell.

- ``conditioning.onnx``: ``mel`` (B, T, n_mels) float32 -> ``gates`` (B, T, 3H), the
  frame-level gate conditioning of :meth:`models.wavernn.WaveRNN.gate_conditioning`.
- ``cell.onnx``: one sampling step of :class:`models.samplers.reference.WaveRNNCell`:
  ``h`` (B, H), ``c_prev``/``f_prev`` (B,) int64, ``cond`` (B, 3H), ``u`` (B, 2) ->
  ``h_new``, ``coarse``, ``fine``, ``logits_c``, ``logits_f``.

:func:`check_onnx` runs both in onnxruntime on random inputs and compares with torch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.samplers.reference import WaveRNNCell
from models.wavernn import WaveRNN
from models.weights import extract_weights

log = logging.getLogger(__name__)

OPSET = 18
CELL_INPUTS = ["h", "c_prev", "f_prev", "cond", "u"]
CELL_OUTPUTS = ["h_new", "coarse", "fine", "logits_c", "logits_f"]


class _GateConditioning(nn.Module):
    def __init__(self, model: WaveRNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: Tensor) -> Tensor:
        return self.model.gate_conditioning(mel)


def _example_cell_inputs(hidden: int, batch: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    return (
        torch.randn(batch, hidden, generator=gen) * 0.5,
        torch.randint(0, 256, (batch,), generator=gen),
        torch.randint(0, 256, (batch,), generator=gen),
        torch.randn(batch, 3 * hidden, generator=gen),
        torch.rand(batch, 2, generator=gen),
    )


def export_onnx(model: WaveRNN, out_dir: str | Path, check: bool = True) -> list[Path]:
    """Write ``conditioning.onnx`` and ``cell.onnx`` into ``out_dir``; check them if asked."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    cond_path, cell_path = out / "conditioning.onnx", out / "cell.onnx"
    frames = torch.export.Dim("frames", min=1, max=100_000)
    batch = torch.export.Dim("batch", min=1, max=4096)
    mel = torch.randn(1, 7, cfg.n_mels) - 5.0
    with torch.no_grad():
        torch.onnx.export(
            _GateConditioning(model).eval(), (mel,), str(cond_path), dynamo=True, opset_version=OPSET,
            input_names=["mel"], output_names=["gates"],
            dynamic_shapes={"mel": {0: batch, 1: frames}}, external_data=False,
        )
        cell = WaveRNNCell(extract_weights(model)).eval()
        ex = _example_cell_inputs(cfg.hidden_size, 2, torch.Generator().manual_seed(0))
        torch.onnx.export(
            cell, ex, str(cell_path), dynamo=True, opset_version=OPSET,
            input_names=CELL_INPUTS, output_names=CELL_OUTPUTS,
            dynamic_shapes={name: {0: batch} for name in CELL_INPUTS}, external_data=False,
        )
    if check:
        report = check_onnx(model, out)
        log.info("onnxruntime parity: %s", report)
    return [cond_path, cell_path]


def check_onnx(model: WaveRNN, out_dir: str | Path, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Run the exported graphs in onnxruntime against torch on random inputs.

    Returns the max absolute differences and the count of differing sampled classes;
    raises ValueError if they exceed 1e-4 (float outputs) or any class differs.
    """
    import onnxruntime as ort

    out = Path(out_dir)
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    mel = torch.randn(batch, 23, cfg.n_mels, generator=gen) * 2.0 - 5.0
    sess = ort.InferenceSession(str(out / "conditioning.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref_gates = model.gate_conditioning(mel).numpy()
    (got_gates,) = sess.run(None, {"mel": mel.numpy()})
    report = {"gates_max_abs": float(np.abs(got_gates - ref_gates).max())}

    cell = WaveRNNCell(extract_weights(model)).eval()
    sess = ort.InferenceSession(str(out / "cell.onnx"), providers=["CPUExecutionProvider"])
    ins = _example_cell_inputs(cfg.hidden_size, batch, gen)
    with torch.no_grad():
        ref = [t.numpy() for t in cell(*ins)]
    got = sess.run(None, {name: t.numpy() for name, t in zip(CELL_INPUTS, ins, strict=True)})
    for name, r, g in zip(CELL_OUTPUTS, ref, got, strict=True):
        if name in ("coarse", "fine"):
            report[f"{name}_mismatches"] = float(np.sum(r != g))
        else:
            report[f"{name}_max_abs"] = float(np.abs(r - g).max())
    bad = {k: v for k, v in report.items() if (k.endswith("mismatches") and v > 0) or
           (k.endswith("max_abs") and v > 1e-4)}
    if bad:
        raise ValueError(f"onnxruntime disagrees with torch: {bad}")
    return report
