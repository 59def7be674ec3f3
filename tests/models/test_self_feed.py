"""Self-fed training inputs: the draws follow the softmax, the mix follows the rate, all seeded."""

from __future__ import annotations

import pytest
import torch

from models.self_feed import draw_classes, self_fed_samples
from models.wavernn import WaveRNN


def test_draws_follow_the_tempered_softmax() -> None:
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0])
    g = torch.Generator().manual_seed(0)
    n = 40_000
    for temperature in (1.0, 0.6):
        draws = draw_classes(logits.expand(n, 4), temperature, torch.rand(n, generator=g))
        freq = torch.bincount(draws, minlength=4).double() / n
        expected = torch.softmax(logits.double() / temperature, dim=0)
        assert torch.allclose(freq, expected, atol=0.01), (temperature, freq, expected)
    # the edges: a uniform of 0 gives the first class with mass, one just below 1 the last
    massless = torch.tensor([[-torch.inf, 0.0, 0.0], [0.0, 0.0, -torch.inf]])
    edge = draw_classes(massless, 1.0, torch.tensor([0.0, 0.9999999]))
    assert edge.tolist() == [1, 1]
    with pytest.raises(ValueError, match="temperature"):
        draw_classes(logits, 0.0, torch.rand(()))


def _batch(model: WaveRNN, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = 2 * model.cfg.hop_length
    mel = torch.randn(3, 2, model.cfg.n_mels, generator=g) - 4
    coarse, fine = torch.randint(0, 256, (3, n), generator=g), torch.randint(0, 256, (3, n), generator=g)
    prev = (torch.randint(0, 256, (3,), generator=g), torch.randint(0, 256, (3,), generator=g))
    return model.conditioning(mel).detach(), coarse, fine, prev


def test_rate_mixes_whole_samples_and_the_generator_decides(tiny_model: WaveRNN) -> None:
    cond, coarse, fine, prev = _batch(tiny_model)

    def fed(rate: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self_fed_samples(tiny_model, cond, coarse, fine, prev, rate=rate, temperature=0.6,
                                generator=torch.Generator().manual_seed(seed))

    c0, f0 = fed(0.0, 1)
    assert torch.equal(c0, coarse) and torch.equal(f0, fine)
    c1, f1 = fed(1.0, 1)
    assert (c1 != coarse).float().mean() > 0.5  # an untrained network's draws are far from random targets
    ch, fh = fed(0.5, 1)
    kept = (ch == coarse) & (fh == fine)
    from_draw = (ch == c1) & (fh == f1)  # the same seed draws the same samples, whatever the rate
    assert bool((kept | from_draw).all())
    replaced = ~kept
    assert 0.35 < float(replaced.float().mean()) < 0.55
    again = fed(0.5, 1)
    assert torch.equal(again[0], ch) and torch.equal(again[1], fh)
    other = fed(0.5, 2)
    assert not torch.equal(other[0], ch)
    with pytest.raises(ValueError, match="rate"):
        fed(1.5, 1)


def test_further_passes_draw_from_a_network_fed_the_last_passes_samples(tiny_model: WaveRNN) -> None:
    cond, coarse, fine, prev = _batch(tiny_model)

    def fed(passes: int, rate: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        return self_fed_samples(tiny_model, cond, coarse, fine, prev, rate=rate, temperature=0.6,
                                generator=torch.Generator().manual_seed(3), passes=passes)

    one, two = fed(1), fed(2)
    # pass 2 reads pass 1's draws (uniforms 3-5 of the stream) through the network fed with them
    g = torch.Generator().manual_seed(3)
    torch.rand((3, *coarse.shape), generator=g)
    u = torch.rand((3, *coarse.shape), generator=g)
    logits_c, logits_f, _ = tiny_model.forward_conditioned(cond, coarse, fine, prev=prev, fed_back=one)
    assert torch.equal(two[0], draw_classes(logits_c, 0.6, u[0]))
    assert torch.equal(two[1], draw_classes(logits_f, 0.6, u[1]))
    assert not torch.equal(two[0], one[0])
    still = fed(3, rate=0.0)
    assert torch.equal(still[0], coarse) and torch.equal(still[1], fine)
    with pytest.raises(ValueError, match="passes"):
        fed(0)
