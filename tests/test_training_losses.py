"""photosketch.training.losses: the GAN loss, feature matching, the conditional D and its update, the
gradient-similarity loss."""

import argparse

import pytest
import torch

from photosketch.models import MultiscaleDiscriminator, PatchDiscriminator
from photosketch.training.losses import ConditionalGAN, GANLoss, feature_matching_loss, gradient_similarity_loss


def test_discriminator_loss_is_the_halved_sum():
    gan = GANLoss("lsgan")
    zeros, ones = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    assert gan.discriminator_loss(zeros, ones) == 0  # fakes called fake, reals called real
    assert gan.discriminator_loss(ones, zeros) == pytest.approx(1.0)  # 0.5 * (1 + 1)


def test_multiscale_outputs_average_over_scales_and_match_features():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(2, ndf=4, n_layers=1, num_scales=2)
    a, b = d(torch.rand(1, 2, 32, 32)), d(torch.rand(1, 2, 32, 32))
    gan = GANLoss("lsgan")
    # pix2pixHD eq. 2, averaged: --gan_weight means the same for any number of scales
    assert torch.isclose(gan(a, True), (gan(a[0][-1], True) + gan(a[1][-1], True)) / 2)
    assert feature_matching_loss(a, a) == 0 and feature_matching_loss(a, b) > 0
    fake = [[f.detach().requires_grad_() for f in scale] for scale in a]
    real = [[f.detach().requires_grad_() for f in scale] for scale in b]
    feature_matching_loss(fake, real).backward()
    assert all(f.grad is not None for scale in fake for f in scale[:-1]) and all(s[-1].grad is None for s in fake)  # not the logits
    assert all(f.grad is None for scale in real for f in scale)  # the real features are targets, not trained towards


def _strokes(size: int = 48) -> torch.Tensor:
    """Dark 4-px strokes on white paper, in [-1, 1]: (1, 1, size, size)."""
    x = torch.ones(1, 1, size, size)
    for c in range(4, size, 12):
        x[..., c:c + 4] = -1.0
    return x


def test_gradient_similarity_penalises_soft_strokes():
    strokes = _strokes()
    assert gradient_similarity_loss(strokes, strokes) == pytest.approx(0.0, abs=1e-6)
    # The softer the strokes, the larger the loss (their edges weaken and spread where the target is flat).
    soft, softer = (torch.nn.functional.avg_pool2d(strokes, k, stride=1, padding=k // 2, count_include_pad=False)
                    for k in (3, 5))
    assert 0 < gradient_similarity_loss(soft, strokes) < gradient_similarity_loss(softer, strokes) <= 1
    # Finite gradients on blank paper (the sqrt's eps), and only toward the output.
    fake = torch.ones_like(strokes).requires_grad_()
    gradient_similarity_loss(fake, strokes).backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    # Three channels are compared by their luma, as FSIM does.
    assert gradient_similarity_loss(strokes.expand(1, 3, -1, -1), strokes) == pytest.approx(0.0, abs=1e-6)


def test_gradient_similarity_matches_fsim_gradient_term():
    # The loss's similarity map is FSIM eq. 6 of photosketch.metrics (same operator, same constant).
    from photosketch.metrics import GRADIENT_SIMILARITY_T, gradient_magnitude

    torch.manual_seed(0)
    a, b = torch.rand(1, 1, 24, 24) * 2 - 1, torch.rand(1, 1, 24, 24) * 2 - 1
    ga, gb = (gradient_magnitude(((t[0, 0] + 1) * 127.5).double()) for t in (a, b))
    expected = 1 - ((2 * ga * gb + GRADIENT_SIMILARITY_T) / (ga**2 + gb**2 + GRADIENT_SIMILARITY_T)).mean()
    assert float(gradient_similarity_loss(a, b)) == pytest.approx(float(expected), abs=1e-5)


def _gan(accelerator, d, **kw):
    opt = torch.optim.SGD(d.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    d, opt, sched = accelerator.prepare(d, opt, sched)
    args = argparse.Namespace(**{"gan_mode": "lsgan", "gan_weight": 2.0, "max_grad_norm": None, **kw})
    return ConditionalGAN(accelerator, d, opt, sched, args), d


def test_d_step_updates_the_discriminator_only(accelerator):
    torch.manual_seed(0)
    gan, d = _gan(accelerator, PatchDiscriminator(4, ndf=4, n_layers=1))
    g = torch.nn.Conv2d(3, 1, 1)  # stands in for the generator
    cond, real = torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16)
    before = [p.detach().clone() for p in d.parameters()]
    loss = gan.d_step(cond, g(cond), real)
    assert loss > 0 and not loss.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters()))
    assert g.weight.grad is None  # the fake is detached: G gets nothing from D's update
    assert all(p.grad is None for p in d.parameters())  # cleared after the step


def test_generator_terms_freeze_d_and_add_weighted_terms(accelerator):
    torch.manual_seed(0)
    gan, d = _gan(accelerator, MultiscaleDiscriminator(4, ndf=4, n_layers=1, num_scales=2), lambda_feature_matching=10.0)
    g = torch.nn.Conv2d(3, 1, 1)
    cond, real = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    losses = {}
    total = gan.add_generator_terms(torch.tensor(1.0), cond, g(cond), real, losses)
    assert list(losses) == ["loss/gan_generator", "loss/feature_matching"]
    assert torch.isclose(total, 1 + 2 * losses["loss/gan_generator"] + 10 * losses["loss/feature_matching"])
    total.backward()
    assert g.weight.grad is not None and all(p.grad is None and not p.requires_grad for p in d.parameters())

    # A plain PatchGAN, or no --lambda_feature_matching (distill): the adversarial term only.
    gan, _ = _gan(accelerator, PatchDiscriminator(4, ndf=4, n_layers=1))
    losses = {}
    total = gan.add_generator_terms(torch.tensor(0.0), cond, g(cond), real, losses)
    assert list(losses) == ["loss/gan_generator"] and torch.isclose(total, 2 * losses["loss/gan_generator"])
