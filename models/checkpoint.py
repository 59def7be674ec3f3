"""Checkpoints: weights plus the voice config and a format version.

A checkpoint is a ``torch.save`` dict of plain types and tensors, loadable with
``weights_only=True``::

    {"format": "wavernn-tts", "format_version": 1, "voice": VoiceConfig as dict,
     "model": state_dict, "meta": {...}, "train_state": {...} (optional)}

Loading refuses, with a ValueError that says what to do, a file that is missing, is not a
checkpoint, has another format version, or whose weights do not fit its config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from models.atomic import atomic_path
from models.config import VoiceConfig, config_from_dict, config_to_dict
from models.subscale_net import SubscaleWaveRNN, build_model
from models.wavernn import WaveRNN

log = logging.getLogger(__name__)

FORMAT = "wavernn-tts"
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: WaveRNN,
    voice: VoiceConfig,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` with its ``voice`` config atomically (temp file, then rename)."""
    if model.cfg != voice.model:
        raise ValueError("model.cfg differs from voice.model; save the config the model was built with")
    if (voice.subscale is not None) != isinstance(model, SubscaleWaveRNN) or (
        isinstance(model, SubscaleWaveRNN) and model.sub != voice.subscale
    ):
        raise ValueError("the model's subscale settings differ from voice.subscale; save the config the model "
                         "was built with")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "voice": config_to_dict(voice),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if train_state is not None:
        blob["train_state"] = train_state
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, after checking its format and version."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; pass the path of a .pt file saved by wavernn-tts")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ValueError(f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
                         "is it a wavernn-tts checkpoint?") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a wavernn-tts checkpoint (no 'format': {FORMAT!r} entry)")
    version = blob.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {version}, this code reads version {FORMAT_VERSION}; "
            "re-export it with the matching wavernn-tts release"
        )
    return blob


def load_checkpoint(
    path: str | Path, expect: VoiceConfig | None = None
) -> tuple[WaveRNN, VoiceConfig, dict[str, Any]]:
    """Load a model in eval mode.

    Args:
        path: checkpoint file.
        expect: if given, the checkpoint's voice config must equal it.
    Returns:
        (model, voice config, meta).
    """
    blob = read_checkpoint(path)
    try:
        voice = config_from_dict(VoiceConfig, blob["voice"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} holds an invalid voice config: {exc}") from exc
    if expect is not None and voice != expect:
        raise ValueError(f"checkpoint {path} was saved for {voice}, but {expect} was expected")
    model = build_model(voice)
    try:
        model.load_state_dict(blob["model"])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"checkpoint {path} weights do not match its config: {exc}") from exc
    model.eval()
    return model, voice, dict(blob.get("meta", {}))
