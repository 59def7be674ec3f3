"""Bundled voices: weights plus a voice card (JSON) in ``models/voices/<name>/``.

A voice folder holds ``model.pt`` (a checkpoint, see :mod:`models.checkpoint`) and
``card.json``. ``default`` is the WaveRNN-384 trained by ``configs/cpu384*.json`` (still in
training: see docs/quality.md). Without a ``default`` folder, ``default`` falls back to a seeded,
untrained WaveRNN-896 whose card says ``"trained": false`` (noise of the right length).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from models.checkpoint import load_checkpoint
from models.comb import check_comb_gain
from models.config import VoiceConfig, config_to_dict
from models.postfilter import postfilter_gain_db
from models.samplers.pitch_sync import check_pitch_sync
from models.subscale_net import build_model
from models.wavernn import WaveRNN
from models.weights import check_temperature

log = logging.getLogger(__name__)

VOICES_DIR = Path(__file__).resolve().parent
DEFAULT_VOICE = "default"
UNTRAINED_SEED = 0


@dataclass
class Voice:
    """A loaded voice: network (eval mode), its config and its card."""

    name: str
    model: WaveRNN
    config: VoiceConfig
    card: dict[str, Any]

    @property
    def trained(self) -> bool:
        return bool(self.card.get("trained", False))

    @property
    def temperature(self) -> float:
        """The sampling temperature the card asks for (``"sampling": {"temperature": T}``), else 1.0."""
        return card_temperature(self.card)

    @property
    def postfilter_db(self) -> float | None:
        """The gain limit of the spectral-envelope post-filter the card asks for
        (``"postfilter": {"max_gain_db": D}``, :mod:`models.postfilter`), else None (off)."""
        return card_postfilter(self.card)

    @property
    def comb_gain(self) -> float:
        """The comb gain of the pitch post-filter the card asks for
        (``"postfilter": {..., "comb_gain": G}``, :mod:`models.comb`), else 0 (off)."""
        return card_comb_gain(self.card)

    @property
    def pitch_sync(self) -> bool:
        """Whether the card asks for pitch-synchronous sampling noise
        (``"sampling": {"pitch_sync": true}``, :mod:`models.samplers.pitch_sync`)."""
        return card_pitch_sync(self.card)


def read_card(path: Path) -> dict[str, Any]:
    """The voice card at ``path`` as a dict, or ValueError if it is not a JSON object."""
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"voice card {path} is not valid JSON: {exc}") from exc
    if not isinstance(card, dict):
        raise ValueError(f"voice card {path} must hold a JSON object, got {type(card).__name__}")
    return card


_T = TypeVar("_T")


def _card_entry(card: dict[str, Any], key: str, example: str, required: str | None = None) -> dict[str, Any] | None:
    """The object ``card[key]`` (None without one), or ValueError showing ``example``: not an
    object, or one without the ``required`` field."""
    entry = card.get(key)
    if entry is None:
        return None
    if not isinstance(entry, dict) or (required is not None and required not in entry):
        raise ValueError(f"voice card of {card.get('name')!r}: '{key}' must be an object such as {example}, "
                         f"got {entry!r}")
    return entry


def _card_value(card: dict[str, Any], where: str, check: Callable[[Any], _T], value: Any) -> _T:
    """``check(value)``, its ValueError prefixed with the voice's name and ``where``."""
    try:
        return check(value)
    except ValueError as exc:
        raise ValueError(f"voice card of {card.get('name')!r}: {where}{exc}") from exc


def card_temperature(card: dict[str, Any]) -> float:
    """The sampling temperature of a voice card (1.0 without a ``sampling`` entry).

    Raises:
        ValueError: a ``sampling`` entry that is not an object, or a temperature out of range.
    """
    sampling = _card_entry(card, "sampling", '{"temperature": 0.6}') or {}
    return _card_value(card, "", check_temperature, sampling.get("temperature", 1.0))


def card_pitch_sync(card: dict[str, Any]) -> bool:
    """Whether a voice card asks for pitch-synchronous sampling noise
    (``"sampling": {"pitch_sync": true}``, :mod:`models.samplers.pitch_sync`); false without one.

    Raises:
        ValueError: a value that is not true or false, or one asked of a subscale voice.
    """
    sampling = _card_entry(card, "sampling", '{"temperature": 0.6}') or {}
    on = _card_value(card, "'sampling': ", check_pitch_sync, sampling.get("pitch_sync", False))
    if on and card.get("subscale"):
        raise ValueError(f"voice card of {card.get('name')!r}: pitch_sync is not available for a subscale voice; "
                         "set 'sampling': {'pitch_sync': false}")
    return on


def card_postfilter(card: dict[str, Any]) -> float | None:
    """The post-filter gain limit (dB) of a voice card; None without a ``postfilter`` entry or at 0 (off).

    Raises:
        ValueError: a ``postfilter`` entry that is not ``{"max_gain_db": D}`` with D in [0, 60].
    """
    entry = _card_entry(card, "postfilter", '{"max_gain_db": 20} (0: off)', required="max_gain_db")
    return None if entry is None else _card_value(card, "", postfilter_gain_db, entry["max_gain_db"])


def card_comb_gain(card: dict[str, Any]) -> float:
    """The pitch post-filter's comb gain of a voice card (``"postfilter": {..., "comb_gain": G}``,
    :mod:`models.comb`); 0 (off) without one.

    Raises:
        ValueError: a gain out of [0, 0.95], or a ``postfilter`` entry that is not an object.
    """
    entry = _card_entry(card, "postfilter", '{"max_gain_db": 20, "comb_gain": 0.8}') or {}
    return _card_value(card, "'postfilter': ", check_comb_gain, entry.get("comb_gain", 0.0))


def available_voices() -> list[str]:
    """Names of the bundled voices (``default`` is always available)."""
    names = {p.parent.name for p in VOICES_DIR.glob("*/model.pt")}
    names.add(DEFAULT_VOICE)
    return sorted(names)


def untrained_voice(config: VoiceConfig | None = None, seed: int = UNTRAINED_SEED) -> Voice:
    """A deterministic untrained voice (same seed, same weights), labelled untrained."""
    config = config or VoiceConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config).eval()
    card = {
        "name": DEFAULT_VOICE,
        "trained": False,
        "description": f"seeded untrained WaveRNN-{config.model.hidden_size} (seed {seed}); produces noise",
        "features": config_to_dict(config.features),
        "model": config_to_dict(config.model),
        **({"subscale": config_to_dict(config.subscale)} if config.subscale is not None else {}),
        "parameters": model.num_parameters(),
    }
    return Voice(DEFAULT_VOICE, model, config, card)


def load_voice(name_or_path: str = DEFAULT_VOICE) -> Voice:
    """Load a bundled voice by name, or a checkpoint / voice folder by path.

    Raises:
        ValueError: unknown name or unreadable checkpoint, with the known names.
    """
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.is_dir():
        folder = path if path.is_dir() else path.parent
        ckpt = path / "model.pt" if path.is_dir() else path
        return _load_folder(ckpt, folder / "card.json", name=folder.name if path.is_dir() else path.stem)
    folder = VOICES_DIR / name_or_path
    if (folder / "model.pt").is_file():
        return _load_folder(folder / "model.pt", folder / "card.json", name=name_or_path)
    if name_or_path == DEFAULT_VOICE:
        log.warning("no trained default voice is bundled; using a seeded untrained model (noise)")
        return untrained_voice()
    raise ValueError(f"unknown voice {name_or_path!r}; bundled voices: {available_voices()}, "
                     "or pass the path of a checkpoint (.pt) or voice folder")


def _load_folder(ckpt: Path, card_path: Path, name: str) -> Voice:
    model, config, meta = load_checkpoint(ckpt)
    card: dict[str, Any] = {"name": name, "trained": bool(meta.get("trained", True))}
    if card_path.is_file():
        card.update(read_card(card_path))
    elif meta.get("step") is not None:  # a bare training checkpoint: say which step is served
        card["training"] = {"steps": int(meta["step"])}
    card_temperature(card)  # a bad sampling or post-filter entry fails at load, not at the first request
    card_postfilter(card)
    card_pitch_sync(card)
    card_comb_gain(card)
    return Voice(str(card.get("name", name)), model, config, card)
