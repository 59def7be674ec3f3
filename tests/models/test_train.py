"""Tests for models.train and models.evaluate: config, schedule, learning, exact resume, CLI entry points."""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from models import evaluate
from models import train as train_mod
from models.audio import float_to_pcm, write_wav
from models.checkpoint import load_checkpoint, read_checkpoint
from models.config import SubscaleConfig, VoiceConfig, config_to_dict
from models.data import SegmentDataset, folder_corpus, load_prepared, prepare
from models.train import TrainConfig, checkpoint_files, load_run_config, lr_at, train

VOICE = VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)
REPO = Path(__file__).resolve().parents[2]
FAST = TrainConfig(steps=60, batch_size=8, seq_frames=8, lr=1e-2, warmup_steps=5, checkpoint_every=1000,
                   validate_every=1000, valid_segments=16, valid_seq_frames=16, log_every=20, num_threads=1)


def _sine(n: int, freq: float, seed: int) -> np.ndarray:
    t = np.arange(n) / 24000
    f = freq * (1.0 + 0.3 * t)  # a slow chirp
    x = 0.5 * np.sin(2 * np.pi * np.cumsum(f) / 24000) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sines")
    for i in range(5):
        write_wav(root / f"s{i}.wav", float_to_pcm(_sine(9000, 180.0 + 70.0 * i, seed=i)))
    return root


@pytest.fixture(scope="module")
def prepared(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    prepare(folder_corpus(corpus_dir), VOICE.features, out, valid_count=1)
    return out


def _config_file(tmp_path: Path, **train: object) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"voice": config_to_dict(VOICE), "train": {**dataclasses.asdict(FAST), **train}}))
    return path


# -- config --------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("steps", 0), ("batch_size", True), ("lr", 0.0), ("lr", "fast"), ("schedule", "linear"),
    ("min_lr_ratio", 1.5), ("decay_gamma", 0.0), ("grad_clip", -1.0), ("device", "gpu"),
    ("valid_fraction", 1.0), ("amp", 1), ("seed", -1), ("seq_frames", 2.5), ("phase_start", -1),
    ("phase_start", 300_000), ("self_feed", 1.5), ("self_feed", -0.1), ("self_feed_temperature", 0.0),
    ("self_feed_passes", 0), ("state_noise", 1.5), ("state_noise", -0.1), ("state_round_bf16", 1),
])
def test_train_config_refuses_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_run_config_files(tmp_path: Path) -> None:
    for name in ("tiny", "default"):
        voice, cfg = load_run_config(REPO / "configs" / f"{name}.json")
        assert voice.model.n_mels == voice.features.n_mels and cfg.steps > 0
    (tmp_path / "a.json").write_text(json.dumps({"voice": {}, "train": {"lr": 1, "steps": 10}}))
    voice, cfg = load_run_config(tmp_path / "a.json")
    assert voice == VoiceConfig() and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    (tmp_path / "b.toml").write_text("[train]\nsteps = 7\n")
    assert load_run_config(tmp_path / "b.toml")[1].steps == 7
    (tmp_path / "c.json").write_text(json.dumps({"train": {"stepz": 1}}))
    with pytest.raises(ValueError, match="stepz"):
        load_run_config(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(ValueError, match="unknown section"):
        load_run_config(tmp_path / "d.json")
    with pytest.raises(ValueError, match="does not exist"):
        load_run_config(tmp_path / "missing.json")


def test_every_shipped_config_loads_and_the_default_voice_phases_resume_each_other() -> None:
    for path in sorted((REPO / "configs").glob("*.json")):
        voice, cfg = load_run_config(path)
        assert cfg.steps > 0 and voice.model.n_mels == voice.features.n_mels, path
    # a checkpoint resumes only under a config of the same voice: the phases of the default
    # voice's run (and its lent-GPU config) must all describe one voice
    phases = ("cpu384", "cpu384_sparse", "cpu384_sparse_40k", "cpu384_sparse_64k",
              "cpu384_sparse_96k", "cpu384_sparse_128k", "cpu384_gpu")
    voices = {name: load_run_config(REPO / "configs" / f"{name}.json")[0] for name in phases}
    assert all(v == voices["cpu384"] for v in voices.values())
    *sparse_phases, gpu = (load_run_config(REPO / "configs" / f"{n}.json")[1] for n in phases[1:])
    current = sparse_phases[-1]
    # the lent-GPU config is the current phase with only the device and threads changed
    assert dataclasses.replace(gpu, device=current.device, num_threads=current.num_threads) == current
    # each later phase continues the one before on a longer cosine whose rate restarts higher
    for before, after in itertools.pairwise(sparse_phases):
        assert after.steps > before.steps and lr_at(after, before.steps) > lr_at(before, before.steps - 1)
        assert (after.prune_target, after.prune_t0, after.prune_steps) == (
            before.prune_target, before.prune_t0, before.prune_steps)
    # the warm restarts on a lent GPU (benchmarks/gpu_restart.sh): the same voice and pruning, the
    # rate restarted at the bundled step 114,334
    for name in ("cpu384_gpu_restart_b256", "cpu384_gpu_restart_b64"):
        voice, restart = load_run_config(REPO / "configs" / f"{name}.json")
        assert voice == voices["cpu384"] and restart.phase_start == 114_334
        assert lr_at(restart, 114_334 + restart.warmup_steps) == restart.lr > lr_at(gpu, 114_334)
        same = ("prune_target", "prune_t0", "prune_steps", "prune_every", "prune_block", "prune_heads", "seq_frames")
        assert all(getattr(restart, f) == getattr(gpu, f) for f in same)
    # the self-fed restart from step 118,003 and its control differ in self_feed alone
    fed_voice, fed = load_run_config(REPO / "configs" / "cpu384_self_feed.json")
    _, control = load_run_config(REPO / "configs" / "cpu384_self_feed_control.json")
    assert fed_voice == voices["cpu384"] and fed.phase_start == 118_003 and fed.self_feed > 0
    assert dataclasses.replace(fed, self_feed=0.0) == control
    # the regrowth restart differs from that control in pruning (off) and threads alone
    regrow_voice, regrow = load_run_config(REPO / "configs" / "cpu384_regrow_dense.json")
    assert regrow_voice == voices["cpu384"] and regrow.prune_target == 0.0
    assert dataclasses.replace(regrow, prune_target=control.prune_target, num_threads=control.num_threads) == control
    # and its re-pruning starts the paper's schedule afresh where it resumes the regrown network
    reprune_voice, reprune = load_run_config(REPO / "configs" / "cpu384_regrow_reprune.json")
    assert reprune_voice == voices["cpu384"] and reprune.prune_t0 == reprune.phase_start == regrow.steps
    assert reprune.prune_target == control.prune_target and reprune.prune_t0 + reprune.prune_steps < reprune.steps
    # the float32-recurrence continuations: no restart (a flat rate from the resumed step) and the
    # pruning of the run each continues, so resuming keeps its masks
    f32_voice, f32 = load_run_config(REPO / "configs" / "cpu384_f32gru_118003.json")
    assert f32_voice == voices["cpu384"] and f32.schedule == "constant" and f32.warmup_steps == 0
    assert f32.phase_start == 118_003 and lr_at(f32, 118_003) == f32.lr < lr_at(current, 118_003) * 1.1
    assert all(getattr(f32, f) == getattr(current, f) for f in same)
    f32r_voice, f32r = load_run_config(REPO / "configs" / "cpu384_f32gru_reprune.json")
    assert f32r_voice == voices["cpu384"] and f32r.phase_start == 121_003 and f32r.schedule == "constant"
    assert all(getattr(f32r, f) == getattr(reprune, f) for f in same)
    # the recurrence-perturbation arms differ from the float32 control in their options alone
    arms: dict[str, dict[str, object]] = {
        "cpu384_state_bf16_118003": {"state_round_bf16": True},
        "cpu384_state_noise_118003": {"state_noise": 0.01},
        "cpu384_gates_bf16_118003": {"gates_bf16": True},
        "cpu384_recurrence_bf16_118003": {"gates_bf16": True, "state_round_bf16": True},
    }
    for name, changes in arms.items():
        arm_voice, arm = load_run_config(REPO / "configs" / f"{name}.json")
        assert arm_voice == voices["cpu384"] and arm != f32
        assert dataclasses.replace(f32, **changes) == arm
    # and the restarts with the state rounded differ from theirs in that option (and one thread)
    _, restart_rounded = load_run_config(REPO / "configs" / "cpu384_restart_state_bf16.json")
    assert dataclasses.replace(control, state_round_bf16=True) == restart_rounded
    _, regrow_rounded = load_run_config(REPO / "configs" / "cpu384_regrow_dense_state_bf16.json")
    assert dataclasses.replace(regrow, state_round_bf16=True, num_threads=1) == regrow_rounded
    _, reprune_rounded = load_run_config(REPO / "configs" / "cpu384_regrow_reprune_state_bf16.json")
    assert dataclasses.replace(reprune, state_round_bf16=True) == reprune_rounded
    # the GPU restarts of the bundled step 121,003 (that run's pruning, so its masks resume) are the
    # step 114,334 restarts with only the restart point and that pruning changed
    prune = ("prune_t0", "prune_steps", "prune_every")
    for size in ("b256", "b64"):
        new_voice, new = load_run_config(REPO / "configs" / f"cpu384_gpu_restart_121003_{size}.json")
        _, old = load_run_config(REPO / "configs" / f"cpu384_gpu_restart_{size}.json")
        assert new_voice == voices["cpu384"] and new.phase_start == 121_003
        assert all(getattr(new, f) == getattr(reprune_rounded, f) for f in prune)
        moved = {f: getattr(new, f) for f in (*prune, "phase_start", "steps")}
        assert dataclasses.replace(old, **moved) == new and new.steps - new.phase_start == old.steps - old.phase_start


def test_lr_schedule() -> None:
    cfg = TrainConfig(steps=1000, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-5) and lr_at(cfg, 99) == pytest.approx(1e-3)
    assert lr_at(cfg, 100) == pytest.approx(1e-3) and lr_at(cfg, 1000) == pytest.approx(1e-4)
    assert lr_at(cfg, 550) == pytest.approx(1e-4 + 0.9e-3 * 0.5)
    step = dataclasses.replace(cfg, schedule="step", decay_every=300, decay_gamma=0.5)
    assert lr_at(step, 299) == pytest.approx(1e-3) and lr_at(step, 650) == pytest.approx(2.5e-4)
    assert lr_at(dataclasses.replace(cfg, schedule="constant", warmup_steps=0), 999) == 1e-3
    # a warm restart: the same warmup and cosine, shifted to start at phase_start, on its horizon
    restart = dataclasses.replace(cfg, steps=1500, phase_start=500)
    for k in (0, 99, 100, 550, 1000):
        assert lr_at(restart, 500 + k) == pytest.approx(lr_at(cfg, k)), k
    assert lr_at(restart, 10) == lr_at(cfg, 0)  # before the phase: its first rate
    step_restart = dataclasses.replace(step, steps=1500, phase_start=500)
    assert lr_at(step_restart, 1150) == pytest.approx(lr_at(step, 650))


# -- training ------------------------------------------------------------------------------
def test_loss_falls_in_a_short_run(prepared: Path, tmp_path: Path) -> None:
    result = train(VOICE, FAST, load_prepared(prepared, "train"), load_prepared(prepared, "valid"),
                   tmp_path / "run", progress=io.StringIO())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in records if r["kind"] == "valid"]
    assert [r["step"] for r in valid] == [0, 60]
    assert valid[0]["total_bits"] == pytest.approx(16.0, abs=0.5)  # near-uniform at the start
    assert valid[-1]["total_bits"] < valid[0]["total_bits"] - 1.0, valid  # about 1.8 bits in practice
    assert {"loss", "lr", "samples_per_s", "grad_norm"} <= set(records[1])
    model, voice, meta = load_checkpoint(result.checkpoint)
    assert voice == VOICE and meta["step"] == 60 and meta["trained"]
    stats = SegmentDataset(load_prepared(prepared, "train"), VOICE.model, 8).mel_stats()
    assert torch.equal(model.cond_net.get_buffer("input_mean"), stats[0])
    assert torch.equal(model.cond_net.get_buffer("input_std"), stats[1])
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(VOICE, FAST, load_prepared(prepared, "train"), [], tmp_path / "run")


def test_amp_trains_in_bf16_on_cpu(prepared: Path, tmp_path: Path) -> None:
    cfg = FAST
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    with train_mod.training_autocast(True, torch.device("cpu")):
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")
    fp32 = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "fp32", progress=io.StringIO())
    bf16 = train(VOICE, dataclasses.replace(cfg, amp=True), train_utts, valid_utts, tmp_path / "bf16",
                 progress=io.StringIO())
    a, b = fp32.model.state_dict(), bf16.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the bf16 forward really ran
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # master weights stay fp32
    assert bf16.valid is not None and fp32.valid is not None
    assert bf16.valid["total_bits"] == pytest.approx(fp32.valid["total_bits"], abs=0.3)
    assert bf16.valid["total_bits"] < 15.0  # it learns (about 16 bits at the start)


def test_resume_continues_exactly(prepared: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(FAST, steps=12, checkpoint_every=6, validate_every=5, keep_checkpoints=0, lr=3e-3)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(cfg=cfg, voice=VOICE, train_utts=train_utts, valid_utts=valid_utts, run_dir=tmp_path / "a",
                  progress=io.StringIO())
    halfway = checkpoint_files(tmp_path / "a")[0]
    assert halfway.name == "step_00000006.pt"
    torch.manual_seed(999)  # global RNG state must come from the checkpoint, not from here
    np.random.seed(999)
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=halfway, progress=io.StringIO())
    assert resumed.step == whole.step == 12
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = read_checkpoint(whole.checkpoint)["train_state"]["optimizer"]["state"]
    opt_b = read_checkpoint(resumed.checkpoint)["train_state"]["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


def test_self_fed_training_learns_and_resumes_exactly(prepared: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(FAST, steps=30, checkpoint_every=15, keep_checkpoints=0, self_feed=0.5,
                              validate_every=30)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=checkpoint_files(tmp_path / "a")[0],
                    progress=io.StringIO())
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train(VOICE, dataclasses.replace(cfg, self_feed=0.0), train_utts, valid_utts, tmp_path / "c",
                  progress=io.StringIO())
    assert any(not torch.equal(a[k], plain.model.state_dict()[k]) for k in a)  # the fed inputs changed training
    assert whole.valid is not None and whole.valid["total_bits"] < 15.0  # and it learns (16 bits at the start)


def test_state_perturbed_training_learns_and_resumes_exactly(prepared: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(FAST, steps=30, checkpoint_every=15, keep_checkpoints=0, state_noise=0.02,
                              state_round_bf16=True, gates_bf16=True, validate_every=30)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=checkpoint_files(tmp_path / "a")[0],
                    progress=io.StringIO())
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the noise comes from the checkpointed generator
    unperturbed = dataclasses.replace(cfg, state_noise=0.0, state_round_bf16=False, gates_bf16=False)
    plain = train(VOICE, unperturbed, train_utts, valid_utts, tmp_path / "c", progress=io.StringIO())
    assert any(not torch.equal(a[k], plain.model.state_dict()[k]) for k in a)  # the perturbation changed training
    assert whole.valid is not None and whole.valid["total_bits"] < 15.0  # and it learns (16 bits at the start)
    subscale = dataclasses.replace(VOICE, subscale=SubscaleConfig(factor=2, horizon=2, past=2, context_channels=8))
    with pytest.raises(ValueError, match="state_noise"):
        train(subscale, cfg, train_utts, valid_utts, tmp_path / "d", progress=io.StringIO())
    with pytest.raises(ValueError, match="gates_bf16"):
        train(subscale, dataclasses.replace(cfg, state_noise=0.0, state_round_bf16=False), train_utts, valid_utts,
              tmp_path / "e", progress=io.StringIO())


def test_warm_restart_resumes_with_the_rate_of_a_new_phase(prepared: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(FAST, steps=8, checkpoint_every=8, log_every=1, lr=3e-3)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    first = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    restart = dataclasses.replace(cfg, steps=16, phase_start=8, lr=1e-3, warmup_steps=4, batch_size=4)
    second = train(VOICE, restart, train_utts, valid_utts, tmp_path / "b", resume=first.checkpoint,
                   progress=io.StringIO())
    assert second.step == 16
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["kind"] == "train"]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])  # warmup from the resumed step
    fresh = dataclasses.replace(restart, steps=8, phase_start=0)  # the same phase as a fresh 8-step run
    assert lrs == pytest.approx([lr_at(fresh, k) for k in range(8)]) and lrs[-1] < lrs[3] / 4
    with pytest.raises(ValueError, match="phase_start 12 is after the step the run starts at"):
        train(VOICE, dataclasses.replace(restart, phase_start=12), train_utts, valid_utts, tmp_path / "c",
              resume=first.checkpoint, progress=io.StringIO())


def test_resume_on_other_data_keeps_the_checkpoints_input_normalisation(prepared: Path, tmp_path: Path) -> None:
    # the conditioning network's input statistics are set once, from a fresh run's data; a run
    # resumed on other data (a GPU shard, a new corpus) must keep the ones its weights learned with
    cfg = dataclasses.replace(FAST, steps=2, checkpoint_every=2)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    first = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    saved = read_checkpoint(first.checkpoint)["model"]
    louder = [dataclasses.replace(u, mel=u.mel + 1.5) for u in train_utts]
    assert not torch.allclose(SegmentDataset(louder, VOICE.model, 8).mel_stats()[0], saved["cond_net.input_mean"])
    resumed = train(VOICE, dataclasses.replace(cfg, steps=3), louder, valid_utts, tmp_path / "b",
                    resume=first.checkpoint, progress=io.StringIO())
    for name in ("input_mean", "input_std"):
        assert torch.equal(resumed.model.cond_net.get_buffer(name).cpu(), saved[f"cond_net.{name}"])


def test_resume_in_the_same_run_folder_rewinds_the_metrics_log(prepared: Path, tmp_path: Path) -> None:
    """A run killed after its last checkpoint, resumed in place: each step is logged once, the lost ones kept aside."""
    cfg = dataclasses.replace(FAST, steps=12, checkpoint_every=6, validate_every=4, log_every=2, keep_checkpoints=0,
                              lr=3e-3)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    train(VOICE, cfg, train_utts, valid_utts, tmp_path, progress=io.StringIO())
    log_path = tmp_path / "metrics.jsonl"

    def records() -> list[dict]:
        return [json.loads(line) for line in log_path.read_text().splitlines()]

    first = records()
    train(VOICE, cfg, train_utts, valid_utts, tmp_path, resume=tmp_path / "checkpoints" / "step_00000006.pt",
          progress=io.StringIO())
    again = records()
    keys = [(r["kind"], r["step"]) for r in again]
    assert keys == [(r["kind"], r["step"]) for r in first] and len(set(keys)) == len(keys)
    assert [r.get("total_bits", r.get("loss")) for r in again] == [r.get("total_bits", r.get("loss")) for r in first]
    superseded = [json.loads(line) for line in (tmp_path / "metrics.superseded.jsonl").read_text().splitlines()]
    assert superseded and all(r["step"] > 6 for r in superseded)
    assert train_mod.rewind_metrics(tmp_path / "absent.jsonl", 3) == 0
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"kind": "note"}\n[1, 2]\n{"step": null}\nnot json\n{"step": 9}\n')
    assert train_mod.rewind_metrics(odd, 3) == 1  # only the record of a later step moves; the rest stays
    assert odd.read_text().splitlines() == ['{"kind": "note"}', "[1, 2]", '{"step": null}', "not json"]


def test_max_minutes_stops_on_time_and_resumes_exactly(prepared: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A time limit stops after the first step past it, validated and checkpointed; resuming is exact."""
    cfg = dataclasses.replace(FAST, steps=12, checkpoint_every=100, validate_every=100, keep_checkpoints=0, lr=3e-3)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    with caplog.at_level("INFO", logger="models.train"):
        stopped = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", progress=io.StringIO(), max_minutes=0.0)
    assert stopped.step == 1 and stopped.checkpoint.name == "step_00000001.pt"
    assert "stopped on time at step 1 of 12" in caplog.text
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [0, 1]
    assert read_checkpoint(stopped.checkpoint)["meta"]["valid"] == stopped.valid
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=stopped.checkpoint,
                    progress=io.StringIO(), max_minutes=60.0)
    assert resumed.step == 12
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="max_minutes"):
        train(VOICE, cfg, train_utts, valid_utts, tmp_path / "c", max_minutes=-1.0)


class _SignalAt(io.StringIO):
    """A progress stream that sends ``sig`` to this process the first time the bar shows ``text``."""

    def __init__(self, sig: signal.Signals, text: str) -> None:
        super().__init__()
        self.sig, self.text, self.sent = sig, text, False

    def write(self, s: str) -> int:
        if not self.sent and self.text in s:
            self.sent = True
            os.kill(os.getpid(), self.sig)
        return super().write(s)


def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resumes_exactly(
        prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ctrl-C (or SIGTERM) loses no work: the run checkpoints the step it was in and returns."""
    cfg = dataclasses.replace(FAST, steps=12, checkpoint_every=100, validate_every=100, keep_checkpoints=0, lr=3e-3,
                              log_every=1)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    before = signal.getsignal(signal.SIGINT)
    with caplog.at_level("INFO", logger="models.train"):
        stopped = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b",
                        progress=_SignalAt(signal.SIGINT, "step 3/12"))
    assert signal.getsignal(signal.SIGINT) is before  # the usual Ctrl-C is back
    assert stopped.stopped == "SIGINT" and stopped.step == 4 and stopped.checkpoint.name == "step_00000004.pt"
    assert "stopped by SIGINT at step 4 of 12" in caplog.text
    records = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "valid"] == [0]  # no validation on the way out
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=stopped.checkpoint,
                    progress=io.StringIO())
    assert resumed.step == 12 and resumed.stopped is None
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_ends_the_command_with_143_and_a_checkpoint(corpus_dir: Path, tmp_path: Path) -> None:
    """``kill`` of a training (a container stopped, a pod evicted) leaves a checkpoint to resume."""
    config = _config_file(tmp_path, steps=100000, log_every=1, valid_count=1)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "models.train", "--config", str(config), "--data",
                             str(corpus_dir), "--out", str(out)], cwd=REPO, stderr=subprocess.PIPE)
    stream = proc.stderr
    assert stream is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stream.read1(4096), b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while b"step 2/" not in b"".join(chunks) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    finally:
        proc.kill()
    reader.join(timeout=10)
    log_text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGTERM, log_text[-2000:]
    assert "stopped by SIGTERM" in log_text
    step = read_checkpoint(checkpoint_files(out)[-1])["meta"]["step"]
    assert 2 <= step < 100000


def test_pruning_during_training_follows_the_schedule_and_resumes_exactly(prepared: Path, tmp_path: Path) -> None:
    """Sparse WaveRNN: masks from t0, ramped to the target, kept through checkpoints and resume."""
    cfg = dataclasses.replace(FAST, steps=12, checkpoint_every=6, validate_every=100, keep_checkpoints=0, lr=3e-3,
                              prune_target=0.75, prune_t0=2, prune_steps=8, prune_every=2, prune_heads=True)
    train_utts, valid_utts = load_prepared(prepared, "train"), load_prepared(prepared, "valid")
    whole = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "a", progress=io.StringIO())
    h = VOICE.model.hidden_size
    w_hh = whole.model.rnn.weight_hh_l0.detach()
    for gate in w_hh.split(h):  # each gate matrix pruned separately, 16x1 blocks dropped whole
        blocks = gate.reshape(h // 16, 16, h).abs().sum(dim=1)  # (row blocks, cols)
        assert float((blocks == 0).float().mean()) == pytest.approx(0.75, abs=0.02)
    assert float((whole.model.O2.weight == 0).float().mean()) >= 0.7
    meta = read_checkpoint(whole.checkpoint)["meta"]
    assert meta["sparsity"]["recurrent"]["total"] == pytest.approx(0.75, abs=0.02)

    halfway = checkpoint_files(tmp_path / "a")[0]
    # step 6 is a mask update step (t0 = 2, every 2): its checkpoint holds the network before that
    # update (the masks of step 4), which resuming then applies
    assert halfway.name == "step_00000006.pt"
    z4 = 0.75 * (1 - (1 - 2 / 8) ** 3)
    halfway_meta = read_checkpoint(halfway)["meta"]
    assert halfway_meta["sparsity"]["recurrent"]["total"] == pytest.approx(z4, abs=0.03)
    resumed = train(VOICE, cfg, train_utts, valid_utts, tmp_path / "b", resume=halfway, progress=io.StringIO())
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_prune_config_is_validated() -> None:
    with pytest.raises(ValueError, match="prune_target"):
        TrainConfig(prune_target=1.0)
    with pytest.raises(ValueError, match="prune_block"):
        TrainConfig(prune_block="8x8")


# -- command line --------------------------------------------------------------------------
def _args(module: object, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser.parse_args(argv)


def test_cli_train_resume_and_eval(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_file(tmp_path, steps=4, checkpoint_every=2, validate_every=2, valid_count=1)
    out = tmp_path / "run"
    argv = ["--config", str(config), "--data", str(corpus_dir), "--out", str(out)]
    assert train_mod.run(_args(train_mod, argv)) == 0
    assert [p.name for p in checkpoint_files(out)] == ["step_00000002.pt", "step_00000004.pt"]
    assert (out / "prepared").is_dir() and (out / "config.json").is_file()
    assert train_mod.run(_args(train_mod, ["--out", str(out), "--resume", "auto", "--steps", "6"])) == 0
    assert read_checkpoint(checkpoint_files(out)[-1])["meta"]["step"] == 6
    capsys.readouterr()
    ckpt = str(checkpoint_files(out)[-1])
    prepared_dir = next((out / "prepared").iterdir())
    assert evaluate.run(_args(evaluate, ["--checkpoint", ckpt, "--data", str(prepared_dir), "--seq-frames", "8"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["step"] == 6 and report["utterances"] == 1
    nll = report["nll"]
    assert nll["total_bits"] == pytest.approx(nll["coarse_bits"] + nll["fine_bits"]) and nll["samples"] > 0
    assert evaluate.run(_args(evaluate, ["--checkpoint", ckpt, "--data", str(corpus_dir), "--segments", "3"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["utterances"] == 5 and report["nll"]["segments"] == 3 and math.isfinite(report["nll"]["fine_bits"])


def test_cli_seed_overrides_the_config(prepared: Path, tmp_path: Path) -> None:
    config = _config_file(tmp_path, steps=1, checkpoint_every=1, validate_every=1)
    runs = {}
    for seed in (None, 1):
        out = tmp_path / f"seed{seed}"
        argv = ["--config", str(config), "--data", str(prepared), "--out", str(out)] + (
            ["--seed", str(seed)] if seed is not None else [])
        assert train_mod.run(_args(train_mod, argv)) == 0
        runs[seed] = read_checkpoint(checkpoint_files(out)[-1])
    assert runs[None]["train_state"]["train_config"]["seed"] == FAST.seed
    assert runs[1]["train_state"]["train_config"]["seed"] == 1
    a, b = runs[None]["model"], runs[1]["model"]
    assert not torch.equal(a["rnn.weight_hh_l0"], b["rnn.weight_hh_l0"])  # other initial weights
    with pytest.raises(ValueError, match="seed"):
        train_mod.run(_args(train_mod, ["--config", str(config), "--data", str(prepared), "--out",
                                        str(tmp_path / "bad"), "--seed", "-1"]))


def test_cli_phase_start_restarts_the_schedule_where_it_resumes(prepared: Path, tmp_path: Path) -> None:
    config = _config_file(tmp_path, steps=2, checkpoint_every=2, validate_every=2, log_every=1, warmup_steps=2)
    out = tmp_path / "run"
    assert train_mod.run(_args(train_mod, ["--config", str(config), "--data", str(prepared), "--out", str(out)])) == 0
    argv = ["--out", str(out), "--resume", "auto", "--steps", "6", "--phase-start", "2"]
    assert train_mod.run(_args(train_mod, argv)) == 0
    state = read_checkpoint(checkpoint_files(out)[-1])["train_state"]
    assert state["step"] == 6 and state["train_config"]["phase_start"] == 2
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["kind"] == "train"]
    assert lrs[2:4] == pytest.approx([FAST.lr / 2, FAST.lr])  # the warmup again, from step 2
    with pytest.raises(ValueError, match=r"phase_start 9 must be below train\.steps 6"):
        train_mod.run(_args(train_mod, ["--out", str(out), "--resume", "auto", "--phase-start", "9"]))


def test_cli_bad_audio_fails_before_training(corpus_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for p in corpus_dir.glob("*.wav"):
        (data / p.name).write_bytes(p.read_bytes())
    (data / "zz_corrupt.flac").write_bytes(b"fLaC" + bytes(100))
    config = _config_file(tmp_path, steps=2)
    argv = ["--config", str(config), "--data", str(data), "--out", str(tmp_path / "run")]
    with pytest.raises(ValueError, match=r"zz_corrupt\.flac"):
        train_mod.run(_args(train_mod, argv))
    assert not checkpoint_files(tmp_path / "run")
    skip = _config_file(tmp_path, steps=2, skip_bad_audio=True, checkpoint_every=2)
    argv[1] = str(skip)
    assert train_mod.run(_args(train_mod, argv)) == 0
    manifest = json.loads(next((tmp_path / "run" / "prepared").iterdir()).joinpath("manifest.json").read_text())
    assert len(manifest["skipped"]) == 1 and len(manifest["utterances"]) == 5
