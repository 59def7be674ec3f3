"""Log-mel frames -> 24 kHz 16-bit PCM with a trained WaveRNN and a sampler.

The vocoder owns nothing but the glue: validated features go through the conditioning
network once, then the sampler runs block by block over conditioning windows, with
randomness from a seeded :class:`~models.samplers.base.UniformSource` (or, with
``pitch_sync``, a :class:`~models.samplers.pitch_sync.PitchSyncUniforms` whose draws repeat once
per pitch period read off the same features by :class:`~models.pitch.MelPitchTracker`). With a
comb gain, each block then goes through the pitch post-filter (:mod:`models.comb`) at that pitch,
and with a post-filter gain limit through the spectral-envelope post-filter
(:mod:`models.postfilter`) towards the same features.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator

import numpy as np
import torch

from models.audio import float_to_pcm, pcm_to_float
from models.comb import StreamingComb, check_comb_gain
from models.config import VoiceConfig
from models.features import validate_features
from models.pitch import MelPitchTracker
from models.postfilter import StreamingPostFilter, postfilter_gain_db
from models.samplers.base import Sampler, SamplerState, Uniforms, UniformSource, conditioning_window
from models.samplers.pitch_sync import PitchSyncUniforms, check_pitch_sync
from models.samplers.reference import ReferenceSampler
from models.wavernn import WaveRNN
from models.weights import extract_weights

log = logging.getLogger(__name__)


class Vocoder:
    """Turns log-mel features into PCM with ``model``'s conditioning and a sampler.

    Args:
        model: the trained network (its conditioning network is used).
        voice: the voice config the features must follow.
        sampler: defaults to the reference sampler over the model's weights.
        postfilter_db: gain limit (dB) of the spectral-envelope post-filter; None or 0: none.
        pitch_sync: make the sampler's uniforms repeat once per pitch period in voiced frames
            (:mod:`models.samplers.pitch_sync`).
        comb_gain: gain of the pitch post-filter (:mod:`models.comb`), run before the envelope
            post-filter; 0: none.
    """

    def __init__(self, model: WaveRNN, voice: VoiceConfig, sampler: Sampler | None = None,
                 postfilter_db: float | None = None, pitch_sync: bool = False, comb_gain: float = 0.0) -> None:
        self.model = model.eval()
        self.voice = voice
        self.sampler: Sampler = sampler or ReferenceSampler(extract_weights(model))
        self.postfilter_db = postfilter_gain_db(postfilter_db)
        self.pitch_sync = check_pitch_sync(pitch_sync)
        self.comb_gain = check_comb_gain(comb_gain)
        self.pitch = MelPitchTracker(voice.features) if self.pitch_sync or self.comb_gain else None

    @torch.no_grad()
    def gate_frames(self, mel: np.ndarray) -> torch.Tensor:
        """Validated mel (T, n_mels) -> gate conditioning (T, 3H)."""
        feats = validate_features(mel, self.voice.features)
        return self.model.gate_conditioning(torch.from_numpy(feats).unsqueeze(0))[0]

    def stream(self, mel: np.ndarray, seed: int = 0, block_samples: int = 2400) -> Iterator[np.ndarray]:
        """Yield int16 PCM blocks until T * hop samples are out.

        Blocks hold at most ``block_samples`` samples; with the post-filter they lag the sampler
        by less than ``max(win_length, n_fft / 2)`` samples, and the last one holds that tail.
        """
        if block_samples < 1:
            raise ValueError(f"block_samples must be >= 1, got {block_samples}")
        feats = validate_features(mel, self.voice.features)
        periods = None if self.pitch is None else self.pitch.periods(feats)
        comb = None
        if self.pitch is not None and periods is not None and self.comb_gain:
            comb = StreamingComb(self.voice.features.hop_length, self.comb_gain, self.pitch.max_period)
            comb.add_periods(periods)
        post = None
        if self.postfilter_db is not None:
            post = StreamingPostFilter(self.voice.features, self.postfilter_db)
            post.add_target(feats)
        if comb is None and post is None:
            yield from self._sample(feats, seed, block_samples, periods)
            return
        for block in self._sample(feats, seed, block_samples, periods):
            out = pcm_to_float(block)
            if comb is not None:
                out = comb.push(out)
            if post is not None:
                out = post.push(out)
            if out.size:
                yield float_to_pcm(out)
        if post is not None:
            yield float_to_pcm(post.flush())

    def _sample(self, mel: np.ndarray, seed: int, block_samples: int,
                periods: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """The sampler's int16 blocks, before any post-filter; pitch-synchronous with ``periods``
        (per frame) when the vocoder has ``pitch_sync``."""
        gates = self.gate_frames(mel)
        hop = self.voice.features.hop_length
        total = gates.shape[0] * hop
        rng: Uniforms = UniformSource(seed)
        if self.pitch_sync and self.pitch is not None:
            rng = PitchSyncUniforms(seed, hop, self.pitch.max_period)
            rng.add_periods(self.pitch.periods(mel) if periods is None else periods)
        state = SamplerState.initial(1, self.sampler.hidden_size)
        pos = 0
        while pos < total:
            n = min(block_samples, total - pos)
            window = conditioning_window(gates, pos, n, hop).unsqueeze(0)
            pcm, state = self.sampler.generate(state, window, rng.draw(n).unsqueeze(0))
            pos += n
            yield pcm[0].numpy()

    def vocode(
        self,
        mel: np.ndarray,
        seed: int = 0,
        block_samples: int = 2400,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Whole utterance: (T, n_mels) -> int16 (T * hop,). ``progress(done, total)`` per block."""
        total = int(np.asarray(mel).shape[0]) * self.voice.features.hop_length if np.ndim(mel) == 2 else 0
        out: list[np.ndarray] = []
        done = 0
        for block in self.stream(mel, seed, block_samples):
            out.append(block)
            done += block.shape[0]
            if progress is not None:
                progress(done, total)
        return np.concatenate(out).astype(np.int16)


def cpu_vocoder(model: WaveRNN, voice: VoiceConfig, sampler: Sampler | None = None,
                temperature: float = 1.0, postfilter_db: float | None = None, pitch_sync: bool = False,
                comb_gain: float = 0.0) -> Vocoder:
    """A :class:`Vocoder` over a CPU copy of ``model`` and the compiled CPU sampler (at sampling
    ``temperature``) by default, with the post-filter at ``postfilter_db`` (None: none),
    pitch-synchronous uniforms if ``pitch_sync`` and the pitch post-filter at ``comb_gain``."""
    from models.samplers.cpu import CpuSampler

    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return Vocoder(model, voice, sampler or CpuSampler(extract_weights(model, temperature=temperature)),
                   postfilter_db=postfilter_db, pitch_sync=pitch_sync, comb_gain=comb_gain)
