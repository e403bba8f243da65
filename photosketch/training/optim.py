"""Optimisers and learning-rate schedules: Adam from the command line, the optimizer step (with
clipping), pix2pix/CycleGAN's constant-then-linear schedule or any diffusers schedule, and the
schedule's length (``--max_train_steps`` / ``--num_epochs``, refitted by ``--max_train_minutes``).

Step counts follow the diffusers examples: accelerate's prepared scheduler steps once per process
per optimizer step, so the schedules are built with counts multiplied by the number of processes.
"""

from __future__ import annotations

import argparse
import math
from typing import Iterable

import torch

#: ``--lr_scheduler`` choices: pix2pix/CycleGAN's schedule, then diffusers' ``get_scheduler`` names.
LR_SCHEDULERS = ("constant_then_linear", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


def adam(args: argparse.Namespace, params: Iterable) -> torch.optim.Adam:
    """Adam with ``--learning_rate``, ``--adam_beta1/2`` and ``--adam_weight_decay`` (pix2pix and CycleGAN:
    2e-4, betas (0.5, 0.999))."""
    return torch.optim.Adam(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                            weight_decay=args.adam_weight_decay)


def optimizer_step(accelerator, optimizer, scheduler, parameters, max_grad_norm: float | None = None) -> None:
    """Clip (when asked, on synchronising steps), step the optimizer and its LR schedule, clear gradients."""
    if max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def backward_step(accelerator, loss: torch.Tensor, optimizer, scheduler, parameters, max_grad_norm: float | None = None) -> None:
    """``accelerator.backward(loss)``, then :func:`optimizer_step`."""
    accelerator.backward(loss)
    optimizer_step(accelerator, optimizer, scheduler, parameters, max_grad_norm)


def get_lr_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    num_warmup_steps: int = 0,
    decay_start_fraction: float = 0.5,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A step-based schedule: ``constant_then_linear`` (pix2pix/CycleGAN: constant LR for the first
    ``decay_start_fraction`` of training, then linear decay to zero) or any diffusers scheduler name.

    Pass step counts multiplied by the number of processes: accelerate's prepared scheduler steps
    once per process per optimizer step (as in the diffusers examples).
    """
    if name == "constant_then_linear":
        horizon = {"steps": num_training_steps}

        def factor(step: int) -> float:
            # A plain function, not a callable object: LambdaLR would save and restore an object's
            # fields, and a resumed run with a new --max_train_steps must follow the new schedule.
            total = horizon["steps"]
            decay_start = max(num_warmup_steps, int(total * decay_start_fraction))
            if step < num_warmup_steps:
                return (step + 1) / (num_warmup_steps + 1)
            if step < decay_start:
                return 1.0
            return max(0.0, (total - step) / max(1, total - decay_start))

        # --max_train_minutes moves the end of the schedule once the step time is known (set_lr_horizon).
        factor.horizon = horizon
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    from diffusers.optimization import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps)


def max_train_steps_from_args(args: argparse.Namespace, num_batches: int, num_processes: int) -> int:
    """``--max_train_steps``, else ``--num_epochs`` worth of optimizer steps. ``num_batches`` is the
    length of the loader *before* ``accelerator.prepare`` (which splits it across processes)."""
    steps_per_epoch = math.ceil(math.ceil(num_batches / num_processes) / args.gradient_accumulation_steps)
    return args.max_train_steps or args.num_epochs * steps_per_epoch


def lr_scheduler_from_args(args: argparse.Namespace, optimizer: torch.optim.Optimizer, max_train_steps: int,
                           num_processes: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``--lr_scheduler`` over ``max_train_steps``, in the per-process step counts that
    :func:`get_lr_scheduler` wants."""
    return get_lr_scheduler(args.lr_scheduler, optimizer, num_training_steps=max_train_steps * num_processes,
                            num_warmup_steps=args.lr_warmup_steps * num_processes,
                            decay_start_fraction=args.decay_start_fraction)


def set_lr_horizon(scheduler, num_training_steps: int) -> bool:
    """Move the end of a ``constant_then_linear`` schedule to ``num_training_steps`` (per-process
    counts, as :func:`get_lr_scheduler`); False for schedules that cannot move (they keep theirs)."""
    inner = getattr(scheduler, "scheduler", scheduler)
    horizons = [getattr(fn, "horizon", None) for fn in getattr(inner, "lr_lambdas", [])]
    if not horizons or any(h is None for h in horizons):
        return False
    for h in horizons:
        h["steps"] = int(num_training_steps)
    return True


def sync_scheduler_lr(scheduler) -> None:
    """After ``load_state``, recompute the optimizer's LR from the restored step with *this* run's
    schedule (the saved LR was computed with the old run's ``--max_train_steps``)."""
    inner = getattr(scheduler, "scheduler", scheduler)
    lambdas = getattr(inner, "lr_lambdas", None)
    if lambdas is None:
        return
    for group, base, fn in zip(inner.optimizer.param_groups, inner.base_lrs, lambdas):
        group["lr"] = base * fn(inner.last_epoch)
    inner._last_lr = [g["lr"] for g in inner.optimizer.param_groups]
