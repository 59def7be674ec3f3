"""Which sampler each device gets (service/engine/devices.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.samplers.cpu import CpuSampler
from models.samplers.reference import ReferenceSampler
from service.engine.devices import SAMPLERS, resolve_devices, sampler_factory, warm_up_block
from service.settings import Settings
from service.voices import resolve_voice


@pytest.fixture(scope="module")
def voice():
    return resolve_voice("untrained-tiny")


def test_every_sampler_setting_is_known_to_the_factory() -> None:
    field = Settings.model_fields["sampler"]
    assert set(field.annotation.__args__) == set(SAMPLERS)  # type: ignore[union-attr]


def test_cpu_gets_the_compiled_sampler_and_reference_on_request(voice) -> None:
    assert isinstance(sampler_factory(voice, "auto")(torch.device("cpu")), CpuSampler)
    assert isinstance(sampler_factory(voice, "reference")(torch.device("cpu")), ReferenceSampler)


def test_gpu_sampler_on_cpu_is_a_clear_error(voice) -> None:
    with pytest.raises(ValueError, match="TTS_SAMPLER=gpu runs on CUDA"):
        sampler_factory(voice, "gpu")(torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown sampler"):
        sampler_factory(voice, "fast")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_without_cuda_auto_falls_back_to_cpu_workers() -> None:
    assert [d.type for _, d in resolve_devices("auto", 2)] == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_devices("cuda", 1)


def test_warm_up_runs_the_batches_a_sampler_names(voice) -> None:
    seen: list[int] = []
    inner = sampler_factory(voice, "reference")(torch.device("cpu"))

    class Recording:
        hidden_size = inner.hidden_size
        hop_length = inner.hop_length

        def warm_batches(self, max_batch: int) -> list[int]:
            return [1, 3, max_batch]

        def generate(self, state, cond, uniforms):
            seen.append(state.batch)
            return inner.generate(state, cond, uniforms)

    warm_up_block(voice, 60, max_batch=5)(Recording(), torch.device("cpu"))
    assert seen == [1, 3, 5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gets_the_fused_kernel(voice) -> None:
    from models.samplers.gpu import GpuSampler

    assert isinstance(sampler_factory(voice, "auto")(torch.device("cuda", 0)), GpuSampler)


def test_a_subscale_voice_gets_the_subscale_samplers() -> None:
    from models.config import SubscaleConfig, VoiceConfig
    from models.samplers.subscale import SubscaleReferenceSampler
    from models.samplers.subscale_cpu import SubscaleCpuSampler
    from models.voices import untrained_voice
    from models.weights import extract_weights

    voice = untrained_voice(dataclasses.replace(VoiceConfig.tiny(), subscale=SubscaleConfig(factor=4, horizon=2)))
    with pytest.raises(ValueError, match="subscale"):
        extract_weights(voice.model)  # the plain samplers would drop its context
    assert isinstance(sampler_factory(voice, "auto")(torch.device("cpu")), SubscaleCpuSampler)
    ref = sampler_factory(voice, "reference")(torch.device("cpu"))
    assert isinstance(ref, SubscaleReferenceSampler)
    with pytest.raises(ValueError, match="TTS_SAMPLER=gpu runs on CUDA"):
        sampler_factory(voice, "gpu")(torch.device("cpu"))
    cold = dataclasses.replace(voice, card={**voice.card, "sampling": {"temperature": 0.5}})
    cold_ref = sampler_factory(cold, "reference")(torch.device("cpu"))
    assert isinstance(cold_ref, SubscaleReferenceSampler)  # its heads, too, at the card's temperature
    torch.testing.assert_close(cold_ref.cell.O2_bias, 2 * ref.cell.O2_bias)


def test_sampler_and_device_mismatches_are_start_up_errors(voice) -> None:
    from models.config import SubscaleConfig, VoiceConfig
    from models.voices import untrained_voice
    from service.engine.devices import check_sampler_device

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    check_sampler_device(voice, "auto", cpu)
    with pytest.raises(ValueError, match="TTS_SAMPLER=gpu runs on CUDA"):
        check_sampler_device(voice, "gpu", cpu)
    with pytest.raises(ValueError, match="TTS_SAMPLER=cpu runs on the CPU"):
        check_sampler_device(voice, "cpu", cuda)
    sub = untrained_voice(dataclasses.replace(VoiceConfig.tiny(), subscale=SubscaleConfig(factor=4, horizon=2)))
    check_sampler_device(sub, "auto", cuda)  # the fused subscale kernel
    with pytest.raises(ValueError, match="CPU only"):
        check_sampler_device(sub, "reference", cuda)


def test_workers_sample_at_the_voice_cards_temperature(voice) -> None:
    cold = dataclasses.replace(voice, card={**voice.card, "sampling": {"temperature": 0.5}})
    plain = sampler_factory(voice, "reference")(torch.device("cpu"))
    sampler = sampler_factory(cold, "reference")(torch.device("cpu"))
    assert isinstance(plain, ReferenceSampler) and isinstance(sampler, ReferenceSampler)
    torch.testing.assert_close(sampler.cell.O2, 2 * plain.cell.O2)
    torch.testing.assert_close(sampler.cell.O4_bias, 2 * plain.cell.O4_bias)
    assert torch.equal(sampler.cell.R, plain.cell.R)
