"""ONNX export of the conditioning network and the step cell, checked in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from models.export import CELL_INPUTS, check_onnx, export_onnx
from models.samplers.base import SamplerState, UniformSource
from models.samplers.reference import ReferenceSampler, interpolate_cond
from models.wavernn import WaveRNN
from models.weights import extract_weights


def test_onnxruntime_agrees_with_torch(tmp_path: Path, tiny_model: WaveRNN) -> None:
    paths = export_onnx(tiny_model, tmp_path, check=False)
    assert [p.name for p in paths] == ["conditioning.onnx", "cell.onnx"]
    report = check_onnx(tiny_model, tmp_path, batch=4, seed=3)
    assert report["gates_max_abs"] < 1e-5 and report["logits_f_max_abs"] < 1e-4
    assert report["coarse_mismatches"] == 0 and report["fine_mismatches"] == 0

    # the exported cell, looped in onnxruntime, reproduces the reference sampler's audio
    hop = tiny_model.cfg.hop_length
    mel = torch.randn(1, 3, tiny_model.cfg.n_mels, generator=torch.Generator().manual_seed(0)) - 5
    cond_sess = ort.InferenceSession(str(paths[0]), providers=["CPUExecutionProvider"])
    (gates,) = cond_sess.run(None, {"mel": mel.numpy()})
    n = 3 * hop
    uniforms = UniformSource(5).draw(n).unsqueeze(0)
    window = torch.cat([torch.from_numpy(gates), torch.from_numpy(gates)[:, -1:]], dim=1)  # (1, 4, 3H)
    ref, _ = ReferenceSampler(extract_weights(tiny_model)).generate(
        SamplerState.initial(1, tiny_model.cfg.hidden_size), window, uniforms
    )
    cell = ort.InferenceSession(str(paths[1]), providers=["CPUExecutionProvider"])
    h = np.zeros((1, tiny_model.cfg.hidden_size), np.float32)
    c, f = np.array([128]), np.array([0])
    out = []
    for k in range(n):
        cond = interpolate_cond(window, torch.tensor([k]), hop).numpy()
        feeds = dict(zip(CELL_INPUTS, [h, c, f, cond, uniforms[:, k].numpy()], strict=True))
        h, c, f, _, _ = cell.run(None, feeds)
        out.append(int(c[0]) * 256 + int(f[0]) - 32768)
    assert out == ref[0].tolist()
