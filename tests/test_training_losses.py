"""photosketch.training.losses: the GAN loss, feature matching, the conditional D and its update."""

import argparse

import pytest
import torch

from photosketch.models import MultiscaleDiscriminator, PatchDiscriminator
from photosketch.training.losses import ConditionalGAN, GANLoss, feature_matching_loss


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
