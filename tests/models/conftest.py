"""Shared fixtures for model tests: tiny seeded models and random inputs."""

from __future__ import annotations

import pytest
import torch

from models.config import VoiceConfig
from models.wavernn import WaveRNN


@pytest.fixture
def tiny_voice() -> VoiceConfig:
    return VoiceConfig.tiny(hidden_size=32, n_mels=8, hop_length=30)


@pytest.fixture
def tiny_model(tiny_voice: VoiceConfig) -> WaveRNN:
    torch.manual_seed(1234)
    model = WaveRNN(tiny_voice.model).eval()
    # Untrained heads give near-uniform distributions; scale them up so that sampled
    # classes and the fine/coarse dependence are far from trivial.
    with torch.no_grad():
        for lin in (model.O2, model.O4):
            lin.weight.mul_(8.0)
        model.rnn.weight_ih_l0.mul_(3.0)
    return model


@pytest.fixture
def one_torch_thread():
    """torch limited to one intra-op thread for the test: the step-by-step samplers gain nothing from
    more, and OpenMP barriers stall them on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
