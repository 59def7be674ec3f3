"""Turn a training checkpoint into a bundled voice: slim weights plus a voice card.

``pack_voice`` writes ``<out>/model.pt`` (a checkpoint without optimizer or RNG state) and
``<out>/card.json``: name, feature and model config, sparsity, training data with licences and
attribution, the command that reproduces it, and the measured quality and speed that the caller
passes in (from ``wavernn-tts eval`` and the benchmarks). Nothing on the card is invented here:
fields the caller does not supply are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.checkpoint import load_checkpoint, save_checkpoint
from models.comb import check_comb_gain
from models.config import config_to_dict
from models.postfilter import postfilter_gain_db
from models.samplers.pitch_sync import check_pitch_sync
from models.sparsity import sparsity_report
from models.weights import check_temperature

#: Licences and attribution of the corpora this project trains on, by data-spec prefix.
DATA_SOURCES: dict[str, dict[str, str]] = {
    "synthetic": {
        "name": "Festival cmu_us_slt_arctic_hts renderings of seeded template sentences",
        "licence": "CMU ARCTIC / festvox voice licence (EST-2003, BSD-style free licence); "
                   "HTS parts BSD-3-clause (Debian package festvox-us-slt-hts)",
        "attribution": "CMU ARCTIC slt voice, Carnegie Mellon University (J. Kominek, A. W. Black); "
                       "HTS voice by Nagoya Institute of Technology",
    },
    "librispeech": {
        "name": "LibriSpeech train-clean-100, 251 speakers x 1 utterance (16 kHz)",
        "licence": "CC BY 4.0",
        "attribution": "LibriSpeech (c) 2014 by Vassil Panayotov; V. Panayotov, G. Chen, D. Povey, "
                       "S. Khudanpur, 'LibriSpeech: an ASR corpus based on public domain audio books', "
                       "ICASSP 2015",
    },
    "vctk": {
        "name": "CSTR VCTK corpus excerpt (16 kHz)",
        "licence": "CC BY 4.0",
        "attribution": "CSTR VCTK Corpus, University of Edinburgh (C. Veaux, J. Yamagishi, K. MacDonald)",
    },
}


def describe_data(specs: list[str]) -> list[dict[str, str]]:
    """Licence and attribution entries for the data specs a checkpoint was trained on."""
    out = []
    for spec in specs:
        key = next((k for k in DATA_SOURCES if k in spec.lower()), None)
        entry = {"spec": spec, **(DATA_SOURCES[key] if key else {"licence": "unknown: see the data's own terms"})}
        out.append(entry)
    return out


def pack_voice(
    checkpoint: str | Path,
    out_dir: str | Path,
    name: str,
    *,
    description: str,
    reproduce: str,
    quality: dict[str, Any] | None = None,
    speed: dict[str, Any] | None = None,
    temperature: float = 1.0,
    postfilter_db: float | None = None,
    pitch_sync: bool = False,
    comb_gain: float = 0.0,
    data: list[str] | None = None,
) -> Path:
    """Write a bundled voice folder from a training checkpoint.

    Args:
        checkpoint: a checkpoint saved by ``wavernn-tts train``.
        out_dir: the voice folder (e.g. ``models/voices/default``).
        name: the voice name served by the API.
        description: one line for ``/v1/models``.
        reproduce: the command(s) that retrain this voice.
        quality: measured quality (``wavernn-tts eval`` output), stored as given.
        speed: measured speed (benchmark output), stored as given.
        temperature: the sampling temperature the voice is served at (``"sampling"`` on the
            card; 1.0 = the paper's sampling).
        postfilter_db: gain limit of the spectral-envelope post-filter the voice is served with
            (``"postfilter"`` on the card, :mod:`models.postfilter`); None or 0: none.
        pitch_sync: serve it with pitch-synchronous sampling noise (``"sampling": {"pitch_sync":
            true}`` on the card, :mod:`models.samplers.pitch_sync`); not for a subscale voice.
        comb_gain: gain of the pitch post-filter it is served with (``"postfilter": {...,
            "comb_gain": G}`` on the card, :mod:`models.comb`); 0: none.
        data: the data specs the voice was trained on, for the card's licences and attribution;
            None takes the checkpoint's, which name only its last run's data (a shard file when
            that run was a GPU piece on shards, docs/training.md).
    Returns:
        the card path.
    """
    temperature = check_temperature(temperature)
    postfilter_db = postfilter_gain_db(postfilter_db)
    pitch_sync = check_pitch_sync(pitch_sync)
    comb_gain = check_comb_gain(comb_gain)
    model, voice, meta = load_checkpoint(checkpoint)
    if pitch_sync and voice.subscale is not None:
        raise ValueError("pitch-synchronous sampling is not available for a Subscale WaveRNN voice; pack it without "
                         "--pitch-sync")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.pt", model, voice, meta={"trained": True, "step": meta.get("step"),
                                                           "valid": meta.get("valid"), "name": name})
    card: dict[str, Any] = {
        "name": name,
        "trained": True,
        "description": description,
        "features": config_to_dict(voice.features),
        "model": config_to_dict(voice.model),
        "parameters": model.num_parameters(),
        "lookahead_samples": voice.model.lookahead_samples,
        "sparsity": meta.get("sparsity") or sparsity_report(model),
        "sampling": {"temperature": temperature, **({"pitch_sync": True} if pitch_sync else {})},
        **({"postfilter": {"max_gain_db": postfilter_db or 0.0, **({"comb_gain": comb_gain} if comb_gain else {})}}
           if postfilter_db is not None or comb_gain else {}),
        "training": {
            "steps": meta.get("step"),
            "heldout_bits_per_sample": meta.get("valid"),
            "data": describe_data(list(data) if data else list(meta.get("data", []))),
            "reproduce": reproduce,
        },
    }
    if quality is not None:
        card["quality"] = quality
    if speed is not None:
        card["speed"] = speed
    path = out / "card.json"
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path
