"""photosketch.training.optim: Adam from the flags, the clipped optimizer step, moving a schedule's end."""

import argparse

import pytest
import torch

from photosketch.training.optim import adam, backward_step, get_lr_scheduler, set_lr_horizon


def test_adam_from_the_flags():
    args = argparse.Namespace(learning_rate=1e-3, adam_beta1=0.5, adam_beta2=0.9, adam_weight_decay=0.01)
    group = adam(args, [torch.nn.Parameter(torch.zeros(1))]).param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-3, (0.5, 0.9), 0.01)


def test_backward_step_clips_steps_and_clears(accelerator):
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    backward_step(accelerator, (p * torch.tensor([30.0, 40.0])).sum(), opt, sched, [p], max_grad_norm=5.0)
    assert p.detach().tolist() == pytest.approx([-3.0, -4.0])  # gradient (30, 40) clipped to norm 5
    assert p.grad is None and sched.last_epoch == 1
    backward_step(accelerator, (p * torch.tensor([30.0, 40.0])).sum(), opt, sched, [p])  # no clipping
    assert p.detach().tolist() == pytest.approx([-33.0, -44.0])


def test_set_lr_horizon_moves_constant_then_linear_only():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_lr_scheduler("constant_then_linear", opt, num_training_steps=100)
    assert set_lr_horizon(sched, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])  # decays over 10 steps now, not 100
    cosine = get_lr_scheduler("cosine", torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), num_training_steps=5)
    assert not set_lr_horizon(cosine, 10)  # diffusers' schedules keep their length
