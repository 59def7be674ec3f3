"""Block-sparse magnitude pruning of the recurrent weights (paper section 4, "Sparse WaveRNN").

During training the sparsity of each gate matrix follows the gradual schedule

    z_t = Z (1 - (1 - (t - t0) / S)^3)    for t0 <= t <= t0 + S

(0 before ``t0``, ``Z`` after ``t0 + S``). Every ``every`` steps each gate matrix of
``R = [R_u; R_r; R_e]`` (and optionally each softmax-head matrix) is cut into blocks of
16x1 or 4x4, blocks are ranked by mean absolute weight and the weakest ``round(z * n_blocks)``
are zeroed. Masks only ever grow (a dropped block never comes back), and :meth:`Pruner.apply`
re-zeroes them after each optimizer step, so pruned weights stay exactly zero.

The schedule and the masks are pure functions; :class:`Pruner` holds the masks for training
(``step`` / ``apply`` / ``state_dict``), and :func:`sparsity_report` measures a model for its
voice card. The fast CPU sampler stores the surviving blocks only
(:mod:`models.samplers.blocksparse`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.wavernn import WaveRNN

logger = logging.getLogger(__name__)

#: Block shapes (rows, columns) of the paper.
BLOCK_SHAPES = ((16, 1), (4, 4))
#: Names of the prunable matrices: the GRU's recurrent matrix and the four head matrices.
HEADS = ("O1", "O2", "O3", "O4")
RECURRENT = "rnn.weight_hh_l0"
#: torch's gate order in ``weight_hh_l0`` (r, z, n) under the paper's names (r, u, e).
TORCH_GATES = ("r", "u", "e")


def sparsity_schedule(step: int, target: float, t0: int, S: int) -> float:
    """Sparsity the pruner aims at after ``step`` training steps.

    Args:
        step: training step t.
        target: final sparsity Z in [0, 1).
        t0: step at which pruning starts.
        S: number of steps over which sparsity ramps from 0 to Z (> 0).
    Returns:
        ``Z (1 - (1 - (t - t0) / S)^3)``, clamped to 0 before ``t0`` and Z after ``t0 + S``.
    """
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity {target} must be in [0, 1)")
    if S <= 0 or t0 < 0:
        raise ValueError(f"need t0 >= 0 and S > 0 (ramp length in steps), got t0={t0}, S={S}")
    if step <= t0:
        return 0.0
    if step >= t0 + S:
        return float(target)
    return float(target * (1.0 - (1.0 - (step - t0) / S) ** 3))


def _check_block(shape: tuple[int, ...], block: tuple[int, int], name: str = "weight") -> tuple[int, int]:
    br, bc = (int(v) for v in block)
    if (br, bc) not in BLOCK_SHAPES:
        raise ValueError(f"block {tuple(block)} is not supported; use one of {list(BLOCK_SHAPES)}")
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (rows, cols), got shape {tuple(shape)}")
    rows, cols = shape
    if rows % br or cols % bc:
        raise ValueError(
            f"{name} of shape {tuple(shape)} is not divisible into {br}x{bc} blocks; choose a block "
            f"that divides it (rows % {br} == 0 and cols % {bc} == 0) or resize the layer "
            f"(e.g. hidden_size a multiple of {2 * br})"
        )
    return br, bc


def block_scores(weight: Tensor, block: tuple[int, int] = (16, 1)) -> Tensor:
    """Mean absolute value of each block.

    Args:
        weight: (rows, cols).
        block: (block rows, block cols), 16x1 or 4x4.
    Returns:
        (rows / br, cols / bc) float32 scores.
    """
    br, bc = _check_block(tuple(weight.shape), block)
    rows, cols = weight.shape
    w = weight.detach().abs().float().reshape(rows // br, br, cols // bc, bc)  # (RB, br, CB, bc)
    return w.mean(dim=(1, 3))


def block_mask(weight: Tensor, sparsity: float, block: tuple[int, int] = (16, 1)) -> Tensor:
    """Keep/drop mask of one matrix: the ``round(sparsity * n_blocks)`` weakest blocks dropped.

    Blocks are ranked by mean absolute weight; ties drop the earlier block (row-major order).

    Args:
        weight: (rows, cols), both divisible by the block.
        sparsity: fraction of blocks to drop, in [0, 1].
        block: (16, 1) or (4, 4).
    Returns:
        bool (rows, cols), True where the weight is kept.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity {sparsity} must be in [0, 1]")
    br, bc = _check_block(tuple(weight.shape), block)
    scores = block_scores(weight, (br, bc)).flatten()  # (n_blocks,)
    n_drop = round(sparsity * scores.numel())
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=weight.device)
    if n_drop:
        order = torch.argsort(scores, stable=True)
        keep[order[:n_drop]] = False
    rb, cb = weight.shape[0] // br, weight.shape[1] // bc
    keep2 = keep.view(rb, cb)
    return keep2.repeat_interleave(br, dim=0).repeat_interleave(bc, dim=1)  # (rows, cols)


def gate_masks(R: Tensor, sparsity: float, block: tuple[int, int] = (16, 1)) -> Tensor:
    """Masks of a stacked 3-gate recurrent matrix, each H x H gate pruned separately.

    Works in either row order (the paper's u, r, e or torch's r, z, n): only the stacking
    of three square blocks matters.

    Args:
        R: (3H, H).
    Returns:
        bool (3H, H), True where kept.
    """
    if R.ndim != 2 or R.shape[0] != 3 * R.shape[1]:
        raise ValueError(f"R must be (3H, H), three stacked gate matrices, got shape {tuple(R.shape)}")
    return torch.cat([block_mask(g, sparsity, block) for g in R.chunk(3, dim=0)], dim=0)


@dataclass(frozen=True)
class PruneConfig:
    """Gradual block pruning recipe (paper defaults apart from the target)."""

    target: float = 0.9
    """Final sparsity Z of each pruned matrix, in [0, 1)."""
    t0: int = 1000
    """Training step at which pruning starts."""
    S: int = 200_000
    """Steps over which sparsity ramps from 0 to ``target``."""
    every: int = 500
    """Masks are recomputed every this many steps (from ``t0``)."""
    block: tuple[int, int] = (16, 1)
    """Block shape (rows, cols): (16, 1) or (4, 4)."""
    prune_heads: bool = False
    """Also prune O1..O4 (the paper prunes the recurrent weights only)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "block", tuple(int(v) for v in self.block))
        if self.block not in BLOCK_SHAPES:
            raise ValueError(f"block {self.block} is not supported; use one of {list(BLOCK_SHAPES)}")
        if not 0.0 <= self.target < 1.0:
            raise ValueError(f"target sparsity {self.target} must be in [0, 1)")
        if self.t0 < 0 or self.S < 1 or self.every < 1:
            raise ValueError(f"need t0 >= 0, S >= 1 and every >= 1, got t0={self.t0}, S={self.S}, every={self.every}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["block"] = list(self.block)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PruneConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)


def prunable(model: WaveRNN, heads: bool) -> dict[str, Tensor]:
    """The weight matrices a pruner manages, by name (the parameters themselves)."""
    out: dict[str, Tensor] = {RECURRENT: _param(model.rnn, "weight_hh_l0")}
    if heads:
        out.update({name: _param(getattr(model, name), "weight") for name in HEADS})
    return out


def _param(module: nn.Module, name: str) -> Tensor:
    p = getattr(module, name)
    if not isinstance(p, Tensor):
        raise ValueError(f"{type(module).__name__}.{name} is not a tensor")
    return p


class Pruner:
    """Holds the pruning masks of one model during training.

    Usage in a training loop::

        pruner = Pruner(PruneConfig(target=0.95))
        for step in ...:
            loss.backward(); opt.step()
            pruner.apply(model)             # keep pruned weights exactly zero
            stats = pruner.step(model, step)  # recompute masks on schedule

    Masks live on the model's device and are saved with :meth:`state_dict` so a resumed run
    continues with the same masks.
    """

    def __init__(self, cfg: PruneConfig) -> None:
        self.cfg = cfg
        self.masks: dict[str, Tensor] = {}
        self.sparsity = 0.0
        self.last_update = -1

    def _mask_for(self, name: str, weight: Tensor, z: float) -> Tensor:
        if name == RECURRENT:
            return gate_masks(weight, z, self.cfg.block)
        return block_mask(weight, z, self.cfg.block)

    @torch.no_grad()
    def step(self, model: WaveRNN, step: int) -> dict[str, float]:
        """Recompute the masks if ``step`` is an update step, then apply them.

        Update steps are ``t0, t0 + every, ...`` up to the first one at or past ``t0 + S``.

        Returns:
            ``{"prune/target": z, "prune/updated": 0 or 1, "prune/<name>": measured sparsity}``.
        """
        cfg = self.cfg
        z = sparsity_schedule(step, cfg.target, cfg.t0, cfg.S)
        due = step >= cfg.t0 and (step - cfg.t0) % cfg.every == 0 and z > self.sparsity
        weights = prunable(model, cfg.prune_heads)
        if due:
            for name, w in weights.items():
                new = self._mask_for(name, w, z)
                old = self.masks.get(name)
                self.masks[name] = new if old is None else new & old.to(new.device)  # never un-prune
            self.sparsity = z
            self.last_update = step
            logger.info("pruning step %d: target sparsity %.4f", step, z)
        self.apply(model)
        stats = {"prune/target": self.sparsity, "prune/updated": float(due)}
        for name, w in weights.items():
            stats[f"prune/{name}"] = float((w == 0).float().mean())
        return stats

    @torch.no_grad()
    def apply(self, model: WaveRNN) -> None:
        """Zero the pruned weights (call after every optimizer step)."""
        for name, w in prunable(model, self.cfg.prune_heads).items():
            mask = self.masks.get(name)
            if mask is not None:
                if mask.device != w.device:
                    mask = self.masks[name] = mask.to(w.device)
                w.mul_(mask)

    def state_dict(self) -> dict[str, Any]:
        """Plain-typed state (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "config": self.cfg.to_dict(),
            "sparsity": self.sparsity,
            "last_update": self.last_update,
            "masks": {k: v.detach().cpu() for k, v in self.masks.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks saved by :meth:`state_dict` (the config must match this pruner's)."""
        saved = PruneConfig.from_dict(dict(state["config"]))
        if saved != self.cfg:
            raise ValueError(
                f"checkpoint was pruned with {saved}, this run uses {self.cfg}; resume with the same "
                "pruning config or start a new run"
            )
        self.sparsity = float(state["sparsity"])
        self.last_update = int(state["last_update"])
        self.masks = {k: v.to(torch.bool) for k, v in state["masks"].items()}


def sparsity_report(model: WaveRNN, block: tuple[int, int] = (16, 1)) -> dict[str, Any]:
    """Measured sparsity of a model's matrices, for the voice card.

    Args:
        model: a WaveRNN.
        block: block shape used to count all-zero blocks.
    Returns:
        ``{"block": [br, bc], "recurrent": {"u", "r", "e", "total"}, "heads": {"O1".."O4"},
        "recurrent_blocks": fraction of all-zero blocks in R}``; values are fractions of
        exactly-zero weights.
    """
    w = _param(model.rnn, "weight_hh_l0").detach()
    gates = dict(zip(TORCH_GATES, w.chunk(3, dim=0), strict=True))

    def zero_frac(t: Tensor) -> float:
        return round(float((t == 0).float().mean()), 6)

    report: dict[str, Any] = {"block": list(block)}
    report["recurrent"] = {g: zero_frac(gates[g]) for g in ("u", "r", "e")} | {"total": zero_frac(w)}
    report["heads"] = {name: zero_frac(_param(getattr(model, name), "weight").detach()) for name in HEADS}
    try:
        report["recurrent_blocks"] = round(float((block_scores(w, block) == 0).float().mean()), 6)
    except ValueError:
        report["recurrent_blocks"] = None
    return report
