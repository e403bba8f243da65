"""What the trainers in ``train/`` share: losses, the image pool, arguments, run setup,
schedules, resuming, the bookkeeping around each optimizer step, checkpoints, validation grids,
logging and export. The model-specific parts (networks, losses, optimizer steps, validation
images, export) stay in the trainers.

Only the trainers import this module; it needs ``accelerate`` and ``diffusers`` (both runtime
dependencies) but nothing optional (TensorBoard is used when installed).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .image import tensor_to_pil
from .models import GENERATORS, StyleNorm, build_generator

logger = logging.getLogger(__name__)

__all__ = [
    "GANLoss",
    "ImagePool",
    "ResumePoint",
    "TrainState",
    "TrainingLoop",
    "init_weights",
    "JsonlLogger",
    "add_common_args",
    "build_generator_from_args",
    "checkpoint_step",
    "enforce_checkpoint_limit",
    "epoch_batches",
    "export_generator",
    "find_latest_checkpoint",
    "UnsafeCheckpointError",
    "get_lr_scheduler",
    "init_accelerator",
    "init_trackers",
    "lr_scheduler_from_args",
    "make_train_dataloader",
    "max_train_steps_from_args",
    "log_validation_images",
    "model_card_kwargs",
    "push_folder_to_hub",
    "resolve_resume_checkpoint",
    "resume_from_checkpoint",
    "save_validation_grid",
    "sync_scheduler_lr",
    "unwrap",
    "validation_images",
    "validation_split",
]


# ---------------------------------------------------------------------------------------------
# Losses and the image pool
# ---------------------------------------------------------------------------------------------


class GANLoss(nn.Module):
    """Adversarial loss against an all-real or all-fake target map.

    ``"lsgan"``: least squares, MSE against 1 / 0 (Mao et al. 2017; CycleGAN sec. 4 uses it for
    stability). ``"vanilla"``: the original cross-entropy GAN loss on logits (pix2pix eq. 1).
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan mode must be 'lsgan' or 'vanilla'; got {mode!r}")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, prediction, target_is_real: bool) -> torch.Tensor:
        if isinstance(prediction, (list, tuple)):
            # A multi-scale discriminator's output: per scale, its features with the logits last
            # (pix2pixHD eq. 2: the GAN terms of the scales are summed; we average to keep the scale of
            # one PatchGAN's loss, so --gan_weight means the same with any --num_scales_d).
            logits = [p[-1] if isinstance(p, (list, tuple)) else p for p in prediction]
            return sum(self(p, target_is_real) for p in logits) / len(logits)
        prediction = prediction.float()  # losses in fp32 under mixed precision
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return nn.functional.mse_loss(prediction, target)
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)


def optimizer_step(accelerator, optimizer, scheduler, parameters, max_grad_norm: float | None = None) -> None:
    """Clip (when asked, on synchronising steps), step the optimizer and its LR schedule, clear gradients."""
    if max_grad_norm and accelerator.sync_gradients:
        accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _halves(pred):
    """Split a discriminator output computed on ``cat([a, b])`` into the outputs for ``a`` and ``b``
    (a tensor, or a multi-scale list of feature lists)."""
    if isinstance(pred, torch.Tensor):
        return pred.chunk(2)
    pairs = [_halves(p) for p in pred]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def feature_matching_loss(pred_fake, pred_real) -> torch.Tensor:
    """pix2pixHD eq. 4 (Wang et al. 2018): L1 between the discriminator's intermediate features of the
    real and the generated pair, every layer but the logits, averaged over layers and scales. The
    real features are targets (detached). Makes the generator match the statistics of real strokes
    at several scales, which steadies GAN training and sharpens lines."""
    terms = [F.l1_loss(f.float(), r.detach().float())
             for fake_scale, real_scale in zip(pred_fake, pred_real)
             for f, r in zip(fake_scale[:-1], real_scale[:-1])]
    return sum(terms) / max(1, len(terms))


def conditional_d_step(accelerator, discriminator, discriminator_raw, gan_loss: GANLoss, cond: torch.Tensor,
                       fake: torch.Tensor, real: torch.Tensor, optimizer, scheduler,
                       max_grad_norm: float | None = None) -> torch.Tensor:
    """One update of a conditional PatchGAN (pix2pix sec. 3.3): (cond, real) -> 1, (cond, fake) -> 0, halved.

    Both halves go through D in one forward, so DDP sees a single forward per backward. Returns the
    detached loss.
    """
    set_requires_grad(discriminator_raw, True)
    with accelerator.autocast():
        pairs = torch.cat([torch.cat([cond, fake.detach()], 1), torch.cat([cond, real], 1)], 0)
        pred_fake, pred_real = _halves(discriminator(pairs))
    loss_d = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
    accelerator.backward(loss_d)
    optimizer_step(accelerator, optimizer, scheduler, discriminator.parameters(), max_grad_norm)
    return loss_d.detach()


def conditional_g_gan_loss(accelerator, discriminator_raw, gan_loss: GANLoss, cond: torch.Tensor,
                           fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term: D (unwrapped, frozen: no gradient and no DDP hooks) should call
    (cond, fake) real (pix2pix eq. 1)."""
    return conditional_g_losses(accelerator, discriminator_raw, gan_loss, cond, fake)[0]


def conditional_g_losses(accelerator, discriminator_raw, gan_loss: GANLoss, cond: torch.Tensor, fake: torch.Tensor,
                         real: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(adversarial term, feature-matching term or None). With ``real`` (and a multi-scale D), fake and
    real pairs go through the frozen D in one batch and :func:`feature_matching_loss` compares them."""
    set_requires_grad(discriminator_raw, False)
    fake_pair = torch.cat([cond, fake], 1)
    with accelerator.autocast():
        if real is None:
            return gan_loss(discriminator_raw(fake_pair), True), None
        pred_fake, pred_real = _halves(discriminator_raw(torch.cat([fake_pair, torch.cat([cond, real], 1)], 0)))
    fm = feature_matching_loss(pred_fake, pred_real) if not isinstance(pred_fake, torch.Tensor) else None
    return gan_loss(pred_fake, True), fm


@torch.no_grad()
def validation_outputs(generator, inputs: torch.Tensor, accelerator, ema=None, style=None) -> torch.Tensor:
    """``generator(inputs)`` (with ``style`` when given) in eval mode (EMA weights when given), as float32
    on the CPU; the generator's mode and weights are restored afterwards."""
    net = unwrap(generator, accelerator)
    was_training = net.training
    net.eval()
    if ema is not None:
        ema.store(net.parameters())
        ema.copy_to(net.parameters())
    try:
        with accelerator.autocast():
            if style is None:
                return net(inputs.to(accelerator.device)).float().cpu()
            return net(inputs.to(accelerator.device), style=style.to(accelerator.device)).float().cpu()
    finally:
        if ema is not None:
            ema.restore(net.parameters())
        net.train(was_training)


class ImagePool:
    """History of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN sec. 4).

    ``query(images)`` returns a batch of the same size where each image is, with probability 0.5,
    swapped for one generated earlier, so the discriminator does not chase the latest generator
    only. ``size=0`` disables the pool. Its contents are part of a resumable run:
    ``accelerator.register_for_checkpointing(pool)`` saves them through ``state_dict``.

    Random draws use the global torch RNG, which accelerate checkpoints and restores.
    """

    def __init__(self, size: int = 50):
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                i = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[i].clone().to(image.device, image.dtype))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.detach().cpu() for t in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size = int(state["size"])
        self.images = [t.clone() for t in state["images"]]

    def to(self, device) -> "ImagePool":
        self.images = [t.to(device) for t in self.images]
        return self


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """N(0, 0.02) conv weights, zero biases, N(1, 0.02) batch-norm scales (pix2pix sec. 3.3 /
    the reference implementation's ``init_type='normal'``)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, StyleNorm):  # styles start as the plain norm (see StyleNorm)
            nn.init.zeros_(m.film.weight)
            nn.init.zeros_(m.film.bias)
    return net


def load_init_weights(generator: nn.Module, folder: str | os.PathLike) -> nn.Module:
    """Warm start (``--init_weights``): copy a Hub-layout folder's ``model.safetensors`` into ``generator``.

    Shapes must match exactly. The only keys allowed to be missing are the style layers
    (``StyleNorm.film``), so an unconditioned model warm-starts a style-conditioned one of the same
    architecture; those layers keep their identity initialisation. Optimizer state starts fresh.
    """
    from safetensors.torch import load_file

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"--init_weights {folder}: no model.safetensors there")
    loaded = load_file(str(path))
    own = generator.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in loaded.items() if k in own and v.shape != own[k].shape]
    unexpected = sorted(set(loaded) - set(own))
    missing = sorted(k for k in set(own) - set(loaded) if ".film." not in k)
    if mismatched or unexpected or missing:
        problems = mismatched[:3] + [f"unexpected {k}" for k in unexpected[:3]] + [f"missing {k}" for k in missing[:3]]
        raise ValueError(f"--init_weights {folder} does not fit this generator: " + "; ".join(problems))
    with torch.no_grad():
        for k, v in loaded.items():
            own[k].copy_(v.to(own[k].dtype))
    logger.info("warm start from %s (%d tensors)", folder, len(loaded))
    return generator


class TrainState:
    """The global step, checkpointed with the run (``accelerator.register_for_checkpointing``) so a
    resumed run does not depend on the checkpoint folder's name."""

    def __init__(self, global_step: int = 0):
        self.global_step = global_step

    def state_dict(self) -> dict:
        return {"global_step": self.global_step}

    def load_state_dict(self, state: dict) -> None:
        self.global_step = int(state["global_step"])


def prepare_named(accelerator, **objects) -> dict[str, Any]:
    """``accelerator.prepare`` on the objects that are not ``None``, returned by name.

    ``prepare`` keeps the order it is given, which also names the checkpoint files (``model.safetensors``,
    ``model_1.safetensors``, ...), so keep the keyword order stable between versions of a trainer.
    """
    names = [k for k, v in objects.items() if v is not None]
    prepared = accelerator.prepare(*[objects[k] for k in names])
    prepared = prepared if isinstance(prepared, tuple) else (prepared,)
    return {**objects, **dict(zip(names, prepared))}


def register_run_state(accelerator, ema=None) -> "TrainState":
    """A fresh :class:`TrainState` (and the EMA, moved to the device) registered for ``save_state``."""
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return state


def make_ema(args: argparse.Namespace, generator: nn.Module):
    """diffusers' ``EMAModel`` of the generator with ``--use_ema``, else ``None``."""
    if not args.use_ema:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(generator.parameters(), decay=args.ema_decay)


def set_requires_grad(modules: nn.Module | Sequence[nn.Module], flag: bool) -> None:
    """Freeze the discriminator(s) while the generator is updated (saves their gradient compute)."""
    for m in [modules] if isinstance(modules, nn.Module) else modules:
        for p in m.parameters():
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


def _default_report_to() -> str:
    return "tensorboard" if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX") else "none"


LR_SCHEDULERS = ("constant_then_linear", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


def add_common_args(parser: argparse.ArgumentParser, data_dir_required: bool = True) -> argparse.ArgumentParser:
    """Arguments every trainer takes (diffusers-examples names where one exists).

    ``data_dir_required=False`` for trainers that can also take their folders one by one
    (``train/cyclegan.py --photo_dir ... --sketch_dir ...``).
    """
    g = parser.add_argument_group("data")
    g.add_argument("--data_dir", type=str, required=data_dir_required, default=None,
                   help="DIR with photos/ + sketches/, or DIR/{train,val,test}/{photos,sketches}: trains on DIR/train; "
                        "validation grids show DIR/val when it exists, else the first training images (unaugmented). "
                        "DIR/test is never used in training (keep it for evaluation).")
    g.add_argument("--output_dir", type=str, default="runs/photosketch", help="Checkpoints, logs, validation grids and the exported model.")
    g.add_argument("--resolution", type=int, default=256, help="Training images are resized/cropped to this square size.")
    g.add_argument("--sketch_channels", type=int, default=1, choices=(1, 3), help="1 = grayscale sketches.")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="Flip, +-5 degree rotation, 0.9-1.0 random resized crop, photo colour jitter.")
    g.add_argument("--face_crop", action=argparse.BooleanOptionalAction, default=False, help="Crop around the detected face first.")
    g.add_argument("--dataloader_num_workers", type=int, default=0, help="0 loads in the main process.")
    g.add_argument("--data_pack", type=str, default=None,
                   help="A pack file from scripts/gpu_pack.py instead of --data_dir: every pair is decoded once into "
                        "device memory and augmented there (for GPUs).")

    g = parser.add_argument_group("model")
    g.add_argument("--generator", type=str, default="unet", choices=sorted(GENERATORS))
    g.add_argument("--ngf", type=int, default=64, help="Generator width.")
    g.add_argument("--n_blocks", type=int, default=None, help="Residual blocks (resnet: 9, compact: 6 by default).")
    g.add_argument("--num_downs", type=int, default=None, help="U-Net levels; default log2(resolution), at most 8.")
    g.add_argument("--norm", type=str, default=None, choices=("instance", "batch", "none"), help="Generator norm; default: the architecture's.")
    g.add_argument("--dropout", type=float, default=None, help="Generator dropout (resnet/unet); default: the architecture's.")
    g.add_argument("--ndf", type=int, default=64, help="Discriminator width.")
    g.add_argument("--n_layers_d", type=int, default=3, help="PatchGAN layers (3 = 70x70 patches).")
    g.add_argument("--style_conditioning", action=argparse.BooleanOptionalAction, default=False,
                   help="Condition the generator on each pair's sketch style (styles.csv / the pack): one model, "
                        "several named styles (config.json 'styles').")
    g.add_argument("--init_weights", type=str, default=None,
                   help="Warm start the generator from a Hub-layout folder (same architecture; optimizer fresh).")

    g = parser.add_argument_group("optimisation")
    g.add_argument("--train_batch_size", type=int, default=1, help="Per device.")
    g.add_argument("--num_epochs", type=int, default=200)
    g.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_epochs when set.")
    g.add_argument("--max_train_minutes", type=float, default=None,
                   help="Wall-clock budget: stop (checkpoint, export) when it is spent. The LR schedule is fitted to "
                        "the steps that fit, measured once 10%% of the budget has passed.")
    g.add_argument("--learning_rate", type=float, default=2e-4)
    g.add_argument("--adam_beta1", type=float, default=0.5)
    g.add_argument("--adam_beta2", type=float, default=0.999)
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument("--lr_scheduler", type=str, default="constant_then_linear", choices=LR_SCHEDULERS,
                   help="constant_then_linear: constant, then linear decay to 0 from --decay_start_fraction "
                        "(pix2pix/CycleGAN); the rest are diffusers' get_scheduler names.")
    g.add_argument("--decay_start_fraction", type=float, default=0.5, help="For constant_then_linear.")
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--max_grad_norm", type=float, default=None, help="Clip gradients to this norm (off by default).")
    g.add_argument("--mixed_precision", type=str, default=None, choices=("no", "fp16", "bf16"),
                   help="Default: accelerate config / `accelerate launch --mixed_precision`, else no.")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--use_ema", action=argparse.BooleanOptionalAction, default=False, help="Keep an EMA of the generator and export it.")
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the networks.")
    g.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=False, help="NHWC memory format (faster on GPUs).")
    g.add_argument("--allow_tf32", action=argparse.BooleanOptionalAction, default=True, help="TF32 matmuls on Ampere+ GPUs.")

    g = parser.add_argument_group("checkpoints and logging")
    g.add_argument("--checkpointing_steps", type=int, default=1000, help="Save a resumable checkpoint-{step} every N steps (0: never).")
    g.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep at most this many checkpoints.")
    g.add_argument("--resume_from_checkpoint", type=str, default=None, help="'latest' or a checkpoint folder.")
    g.add_argument("--validation_steps", type=int, default=500, help="Write validation/step-N.png every N steps (0: never).")
    g.add_argument("--num_validation_images", type=int, default=4)
    g.add_argument("--logging_steps", type=int, default=10, help="Log losses to trackers and logs.jsonl every N steps.")
    g.add_argument("--report_to", type=str, default=_default_report_to(), choices=("none", "tensorboard", "wandb", "all"))
    g.add_argument("--logging_dir", type=str, default="logs", help="Tracker folder, relative to --output_dir.")

    g = parser.add_argument_group("hub")
    g.add_argument("--push_to_hub", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--hub_model_id", type=str, default=None, help="user/name; default: the output folder name.")
    g.add_argument("--hub_token", type=str, default=None, help="Default: HF_TOKEN / the saved login.")
    return parser


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argument checks that end in a one-line ``parser.error`` instead of a traceback mid-run."""
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"--data_dir {args.data_dir}: no such folder")
    if args.resolution < 16:
        parser.error("--resolution must be at least 16")
    for name in ("train_batch_size", "gradient_accumulation_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.max_train_steps is not None and args.max_train_steps < 1:
        parser.error("--max_train_steps must be >= 1")
    if args.max_train_minutes is not None and args.max_train_minutes <= 0:
        parser.error("--max_train_minutes must be > 0")
    if args.data_dir is None and getattr(args, "data_pack", None) is None and not getattr(args, "photo_dir", None):
        parser.error("give --data_dir (or --data_pack)")
    if getattr(args, "data_pack", None) is not None and not os.path.isfile(args.data_pack):
        parser.error(f"--data_pack {args.data_pack}: no such file")
    if args.init_weights is not None and not os.path.isfile(os.path.join(args.init_weights, "model.safetensors")):
        parser.error(f"--init_weights {args.init_weights}: no model.safetensors there")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        parser.error("--checkpoints_total_limit must be >= 1")
    if not 0.0 <= args.decay_start_fraction <= 1.0:
        parser.error("--decay_start_fraction must be in [0, 1]")
    if args.resume_from_checkpoint not in (None, "latest") and not os.path.isdir(args.resume_from_checkpoint):
        parser.error(f"--resume_from_checkpoint {args.resume_from_checkpoint}: no such checkpoint folder")


def refuse_args(parser: argparse.ArgumentParser, args: argparse.Namespace, names: Sequence[str], trainer: str) -> None:
    """A one-line usage error for shared options this trainer does not implement (rather than ignoring them)."""
    for name in names:
        if getattr(args, name, None) not in (None, False):
            parser.error(f"--{name} is not supported by {trainer} (train/pix2pix.py has it)")


def generator_kwargs(args: argparse.Namespace, in_channels: int, out_channels: int, styles: Sequence[str] | None = None) -> dict:
    """Constructor arguments of ``--generator`` from the command line (only those it takes)."""
    kwargs: dict[str, Any] = {"in_channels": in_channels, "out_channels": out_channels, "ngf": args.ngf, "sample_size": args.resolution}
    if styles:
        kwargs["styles"] = list(styles)
    if args.generator in ("resnet", "compact") and args.n_blocks is not None:
        kwargs["n_blocks"] = args.n_blocks
    if args.generator == "unet":
        # U-Net-256 has 8 levels, U-Net-128 7: the bottleneck reaches 1x1 (pix2pix appendix 6.1.1).
        kwargs["num_downs"] = args.num_downs or max(5, min(8, int(math.log2(args.resolution))))
    if args.norm is not None:
        kwargs["norm"] = args.norm
    elif args.generator == "unet":
        # pix2pix trains at batch size 1 and keeps batch norm in training mode at test time, i.e.
        # instance norm; using instance norm outright gives the exported (eval-mode) model the same
        # behaviour as during training.
        kwargs["norm"] = "instance"
    if args.dropout is not None and args.generator in ("resnet", "unet"):
        kwargs["dropout"] = args.dropout
    return kwargs


def build_generator_from_args(args: argparse.Namespace, in_channels: int, out_channels: int,
                              styles: Sequence[str] | None = None) -> nn.Module:
    """The generator, initialised (pix2pix sec. 3.3), warm-started from ``--init_weights`` when given."""
    generator = init_weights(build_generator(args.generator, **generator_kwargs(args, in_channels, out_channels, styles)))
    if getattr(args, "init_weights", None):
        load_init_weights(generator, args.init_weights)
    return generator


def tracker_names(report_to: str) -> str | list[str] | None:
    return None if report_to == "none" else report_to


# ---------------------------------------------------------------------------------------------
# Run setup
# ---------------------------------------------------------------------------------------------


def init_accelerator(args: argparse.Namespace):
    """The run's ``Accelerator``, then what every trainer sets up before building anything: log
    format and levels, the seed, TF32, and ``--output_dir`` with ``training_args.json``."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed

    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=tracker_names(args.report_to),
        # Checkpoints are named checkpoint-{step} by save_checkpoint, not by accelerate's automatic
        # counter (which a resumed run would have to advance by hand).
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / args.logging_dir),
                                            automatic_checkpoint_naming=False),
        # Seeded shuffling independent of the global RNG, with its epoch saved in checkpoints.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if accelerator.is_main_process else logging.WARNING)
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per saved file otherwise
    set_seed(args.seed)
    if args.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if torch.cuda.is_available():
        # Every batch has the same shape: let cuDNN time its convolution algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")
    return accelerator


def make_train_dataloader(dataset, args: argparse.Namespace, num_processes: int) -> torch.utils.data.DataLoader:
    """The shuffled training loader (``accelerator.prepare`` it afterwards)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        # A dataset smaller than one global batch keeps its last, partial batch rather than none.
        drop_last=len(dataset) >= args.train_batch_size * num_processes,
        pin_memory=torch.cuda.is_available(),
        # Worker base seeds come from here, not from the global RNG that dropout and the image
        # pools draw from: a resumed run then draws the same as an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed),
    )


def init_trackers(accelerator, args: argparse.Namespace, project_name: str) -> None:
    """Start the ``--report_to`` trackers on the main process, with the scalar arguments as config
    (trackers reject lists and None)."""
    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(project_name, config=config)


# ---------------------------------------------------------------------------------------------
# Validation images
# ---------------------------------------------------------------------------------------------


def validation_split(data_dir: str | os.PathLike | None) -> str:
    """Where validation grids come from: ``"val"`` when ``DIR/val/photos`` exists, else ``"train"``.

    Never ``"test"``: grids are looked at to pick checkpoints and settings, so showing test images
    there would leak the test split into model selection.
    """
    from .data import PHOTO_DIR

    return "val" if data_dir is not None and (Path(data_dir) / "val" / PHOTO_DIR).is_dir() else "train"


def validation_images(
    n: int,
    *,
    resolution: int,
    sketch_channels: int,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    photo_dir: str | os.PathLike | None = None,
    sketch_dir: str | os.PathLike | None = None,
    paired: bool = True,
    sketch_source: str = "real",
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The first ``n`` validation photos and sketches (unaugmented, NCHW in [-1, 1]) for both trainers.

    From ``DIR/val`` when it exists (:func:`validation_split`), else from the training data: pairs
    of ``data_dir`` (``paired=True``, pix2pix) or the photos of ``photo_dir`` and sketches of
    ``sketch_dir`` (``paired=False``, CycleGAN, also used when there is no ``data_dir``).
    Returns ``(photos, sketches, source)`` where ``source`` says where they came from, for the log.
    """
    from .data import PHOTO_DIR, SKETCH_DIR, PairedDataset, UnpairedDataset, split_root

    split = validation_split(data_dir)
    common = dict(resolution=resolution, sketch_channels=sketch_channels, augment=False, seed=seed)
    if paired:
        ds = PairedDataset(data_dir, split=split, sketch_source="lines" if sketch_source == "lines" else "real", **common)
        source = f"{split_root(data_dir, split)} ({split})"
    else:
        if split == "val":
            photo_dir, sketch_dir = Path(data_dir) / "val" / PHOTO_DIR, Path(data_dir) / "val" / SKETCH_DIR
        ds = UnpairedDataset(photo_dir, sketch_dir, **common)
        source = f"{photo_dir} + {sketch_dir} ({split})"
    items = [ds[i] for i in range(min(n, len(ds)))]
    photos = torch.stack([it["photo"] for it in items])
    sketches = torch.stack([it["sketch"] for it in items])
    return photos, sketches, source


def check_paired_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """For the paired trainers: ``--data_dir`` or ``--data_pack`` (not both) holds training pairs, as a
    one-line usage error otherwise; returns the style names of the training pairs (``""`` for none)."""
    from .data import PairedDataset
    from .packed import pack_info

    if args.data_pack and args.data_dir:
        parser.error("give either --data_dir or --data_pack, not both")
    if args.data_pack and args.face_crop:
        parser.error("--data_pack holds pairs already cropped: --face_crop needs --data_dir")
    try:  # list the data now: a bad folder is a one-line usage error, not a traceback mid-run
        if args.data_pack:
            info = pack_info(args.data_pack)
            if not info["pairs"].get("train"):
                raise ValueError("the pack has no training pairs")
            return list(info["styles"])
        return PairedDataset(args.data_dir, split="train", resolution=args.resolution, sketch_channels=args.sketch_channels,
                             augment=False, sketch_source=args.sketch_source).style_names
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"{'--data_pack' if args.data_pack else '--data_dir'}: {exc}")


class PairedTrainData(NamedTuple):
    """A paired trainer's training data: the dataset (a folder's ``PairedDataset`` or a ``PackedPairs``
    on the device; both list their pairs' styles as ``style_names``), its ``DataLoader`` (None for a
    pack: it batches itself) and the number of batches per epoch over all processes (before ``prepare``)."""

    dataset: Any
    dataloader: Any
    num_batches: int


def paired_train_data(args: argparse.Namespace, accelerator, photo_channels: int = 3) -> PairedTrainData:
    """``--data_pack`` (decoded once into device memory, augmented there) or ``--data_dir``."""
    from .data import PairedDataset
    from .packed import PackAugment, PackedPairs

    if args.data_pack:
        ds = PackedPairs(args.data_pack, "train", device=accelerator.device, sketch_channels=args.sketch_channels,
                         augment=PackAugment() if args.augment else None, seed=args.seed)
        n = ds.num_batches(args.train_batch_size, accelerator.num_processes) * accelerator.num_processes
        return PairedTrainData(ds, None, n)
    ds = PairedDataset(args.data_dir, split="train", resolution=args.resolution, photo_channels=photo_channels,
                       sketch_channels=args.sketch_channels, augment=args.augment, sketch_source=args.sketch_source,
                       face_crop=args.face_crop, seed=args.seed)
    loader = make_train_dataloader(ds, args, accelerator.num_processes)
    return PairedTrainData(ds, loader, len(loader))


def paired_validation(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """(photos, sketches, styles, source): the first ``--num_validation_images`` pairs of DIR/val (or the
    pack's val split), else of the training pairs, unaugmented; DIR/test is never shown."""
    from .data import PairedDataset
    from .packed import PackedPairs, pack_info

    if args.data_pack:
        split = "val" if pack_info(args.data_pack)["pairs"].get("val") else "train"
        first = PackedPairs(args.data_pack, split, sketch_channels=args.sketch_channels, augment=None).first(args.num_validation_images)
        photos, sketches = first["photo"], first["sketch"]
        if args.sketch_source == "lines":  # as PairedDataset's validation images: line drawings of the photos
            from .classical import LineDrawing

            with torch.no_grad():
                sketches = LineDrawing().eval()(photos)
        return photos, sketches, first["style"], f"{args.data_pack} ({split})"
    photos, sketches, source = validation_images(
        args.num_validation_images, resolution=args.resolution, sketch_channels=args.sketch_channels, seed=args.seed,
        data_dir=args.data_dir, paired=True, sketch_source=args.sketch_source,
    )
    ds = PairedDataset(args.data_dir, split=validation_split(args.data_dir), augment=False)
    return photos, sketches, [ds.styles.get(p.stem, "") for p, _ in ds.pairs[: len(photos)]], source


class PackLineDrawings:
    """``--data_pack`` with ``--sketch_source lines`` / ``mixed``: line drawings of each batch's (augmented)
    photos, drawn on the device by the same classical ``LineDrawing`` that ``PairedDataset`` uses on the
    CPU; ``mixed`` swaps them in for about half the pairs (the batch's ``coin`` draws)."""

    def __init__(self, sketch_source: str, device):
        from .classical import LineDrawing

        self.p = 1.0 if sketch_source == "lines" else 0.5
        self.drawer = LineDrawing().to(device).eval()

    @classmethod
    def for_args(cls, args: argparse.Namespace, device) -> "PackLineDrawings | None":
        return cls(args.sketch_source, device) if args.data_pack and args.sketch_source != "real" else None

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        lines = self.drawer(batch["photo"])
        use = batch["coin"] < self.p
        return {**batch, "sketch": torch.where(use[:, None, None, None], lines, batch["sketch"])}


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: str | os.PathLike) -> int:
    """The global step in a ``checkpoint-{step}`` folder name."""
    m = _CHECKPOINT_RE.match(Path(path).name)
    if not m:
        raise ValueError(f"{path}: not a checkpoint-<step> folder")
    return int(m.group(1))


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """``checkpoint-{step}`` folders in ``output_dir``, oldest (lowest step) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=checkpoint_step)


CHECKPOINT_MARKER = "checkpoint_complete.json"


class UnsafeCheckpointError(ValueError):
    """A checkpoint file that only loads with full unpickling (it could run code), or an incomplete
    checkpoint: resuming from it is refused."""


def _fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def mark_checkpoint_complete(path: str | os.PathLike, step: int) -> Path:
    """fsync every file in the checkpoint folder ``path``, then write (and fsync) the marker that
    lists them with their sizes. Only a folder with a matching marker is resumed from."""
    path = Path(path)
    files = {}
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.name != CHECKPOINT_MARKER:
            _fsync_path(f)
            files[f.relative_to(path).as_posix()] = f.stat().st_size
    marker = path / CHECKPOINT_MARKER
    with marker.open("w", encoding="utf-8") as fh:
        json.dump({"step": int(step), "files": files}, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_path(path)
    return marker


def checkpoint_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a complete checkpoint (``None`` when it is): no marker (its save never
    finished), or a file the marker lists is missing or has another size (truncated)."""
    path = Path(path)
    try:
        files = json.loads((path / CHECKPOINT_MARKER).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return f"no {CHECKPOINT_MARKER} (its save did not finish)"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable {CHECKPOINT_MARKER} ({e})"
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} were saved (truncated or changed)"
    return None


def find_latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest *complete* checkpoint in ``output_dir`` (None if there is none). Newer folders
    that are incomplete (a save cut short, a truncated file) are skipped with a warning naming them."""
    skipped = []
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            break
        skipped.append(f"{path.name} ({problem})")
    else:
        path = None
    if skipped:
        logger.warning("skipping incomplete checkpoint%s %s; %s", "s" if len(skipped) > 1 else "", ", ".join(skipped),
                       f"using {path}" if path is not None else "no complete checkpoint left")
    return path


def resolve_resume_checkpoint(output_dir: str | os.PathLike, resume: str | None) -> Path | None:
    """``"latest"`` -> newest complete checkpoint in ``output_dir`` (None if there is none); a path
    -> itself, if it is a complete checkpoint (else :class:`UnsafeCheckpointError`)."""
    if not resume:
        return None
    if resume == "latest":
        return find_latest_checkpoint(output_dir)
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"{resume}: no such checkpoint folder")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise UnsafeCheckpointError(f"{resume}: not a complete checkpoint: {problem}; "
                                    "resume from an earlier one, or with --resume_from_checkpoint latest")
    return path


def check_checkpoint_files(path: str | os.PathLike) -> None:
    """Load every pickle-format file of the checkpoint ``path`` with ``weights_only=True``: tensors,
    numbers, strings and plain containers only, so loading it cannot run code. Raises
    :class:`UnsafeCheckpointError` naming the first file that holds anything else."""
    import pickle

    from accelerate.utils import load as accelerate_load  # torch.load plus numpy arrays (RNG states) as safe types

    for f in sorted(Path(path).rglob("*")):
        if not f.is_file() or f.name == CHECKPOINT_MARKER or f.suffix == ".safetensors":
            continue
        try:
            accelerate_load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsafeCheckpointError(
                f"{f}: refusing to resume: this file holds Python objects other than tensors and plain "
                f"containers, and loading it could run code ({first_line}). Resume only from checkpoints "
                "these trainers wrote.") from None
        except Exception as e:  # not a torch file at all, or truncated
            raise UnsafeCheckpointError(f"{f}: unreadable checkpoint file ({type(e).__name__}: {e})") from None


def enforce_checkpoint_limit(output_dir: str | os.PathLike, total_limit: int | None) -> list[Path]:
    """After a checkpoint is complete, delete the oldest complete ones so at most ``total_limit``
    remain, and incomplete ones older than the newest complete one (never resumed from). Each is
    renamed out of the way first, so a folder being deleted is never taken for a checkpoint."""
    if not total_limit:
        return []
    found = list_checkpoints(output_dir)
    complete = [p for p in found if checkpoint_problem(p) is None]
    removed = complete[:max(0, len(complete) - total_limit)]
    if complete:
        newest = checkpoint_step(complete[-1])
        removed += [p for p in found if p not in complete and checkpoint_step(p) < newest]
    for path in sorted(removed, key=checkpoint_step):
        logger.info("removing old checkpoint %s (--checkpoints_total_limit %d)", path, total_limit)
        doomed = path.with_name(f".{path.name}.tmp-delete")
        shutil.rmtree(doomed, ignore_errors=True)
        path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return sorted(removed, key=checkpoint_step)


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, total_limit: int | None) -> Path:
    """``accelerator.save_state`` into ``output_dir/checkpoint-{step}``, crash-safe.

    The state goes to a hidden sibling folder first; once every process has written its files, the
    main process fsyncs them, writes the completion marker and renames the folder into place
    (atomic), and only then deletes checkpoints beyond ``total_limit``. A run killed at any moment
    leaves its earlier checkpoints intact and never a partial ``checkpoint-{step}``.
    """
    output_dir = Path(output_dir)
    path = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        for stale in output_dir.glob(".checkpoint-*.tmp*"):  # left by a run killed mid-save
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process's files (e.g. its RNG state) are in tmp
    if accelerator.is_main_process:
        mark_checkpoint_complete(tmp, step)
        if path.exists():  # the same step saved again (a new run in an old --output_dir)
            old = output_dir / f".checkpoint-{step}.tmp-old"
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
        _fsync_path(output_dir)
        enforce_checkpoint_limit(output_dir, total_limit)
    accelerator.wait_for_everyone()
    logger.info("saved checkpoint %s", path)
    return path


# ---------------------------------------------------------------------------------------------
# Validation images and logging
# ---------------------------------------------------------------------------------------------


def _to_rgb(t: torch.Tensor) -> np.ndarray:
    return np.asarray(tensor_to_pil(t).convert("RGB"))


def make_grid(rows: Sequence[Sequence[torch.Tensor]], pad: int = 2) -> Image.Image:
    """Rows of (C, H, W) tensors in [-1, 1] (1 or 3 channels, same H and W) -> one RGB image."""
    arrays = [[_to_rgb(t) for t in row] for row in rows]
    h, w = arrays[0][0].shape[:2]
    n_cols = max(len(r) for r in arrays)
    grid = np.full((len(arrays) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(arrays):
        for j, arr in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = arr[:h, :w]
    return Image.fromarray(grid)


def save_validation_grid(
    inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor | None, path: str | os.PathLike
) -> Image.Image:
    """Write a PNG with one row per image: input | output | target (NCHW batches in [-1, 1])."""
    rows = []
    for i in range(inputs.shape[0]):
        row = [inputs[i], outputs[i]]
        if targets is not None:
            row.append(targets[i])
        rows.append(row)
    grid = make_grid(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid


def log_validation_images(accelerator, tag: str, grid: Image.Image, step: int) -> None:
    """Send a validation grid to whichever trackers are active."""
    arr = np.asarray(grid)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(tag, arr, step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({tag: [wandb.Image(grid)]}, step=step)


class JsonlLogger:
    """Append one JSON object per log call to a file; a no-op off the main process."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, values: dict, step: int) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "time": round(time.time(), 3)}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            record[k] = float(v) if isinstance(v, (np.floating, np.integer)) else v
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def drop_after(self, step: int) -> None:
        """Remove the records of steps after ``step`` (and a line cut short by a kill): a run resumed
        from ``step`` trains and logs those steps again, so each step keeps one record."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["step"]) <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# Export and the Hub
# ---------------------------------------------------------------------------------------------


def unwrap(model: nn.Module, accelerator=None) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    if accelerator is not None:
        return accelerator.unwrap_model(model, keep_torch_compile=False)
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            return model


def export_generator(
    model: nn.Module,
    path: str | os.PathLike,
    model_card_kwargs: dict | None = None,
    ema=None,
    accelerator=None,
) -> Path:
    """Save a trained generator in Hub layout (config.json, model.safetensors, README.md).

    The model is unwrapped and copied to fp32 on CPU (the training copy is untouched); with an
    ``ema`` (diffusers ``EMAModel``) its averaged weights are exported. ``path`` is replaced as a
    whole so no stale file from an earlier export survives.
    """
    net = copy.deepcopy(unwrap(model, accelerator)).to("cpu", torch.float32).to(memory_format=torch.contiguous_format)
    if ema is not None:
        ema.copy_to(net.parameters())
    net.eval()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    net.save_pretrained(tmp, model_card_kwargs=model_card_kwargs or {})
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    logger.info("exported %s to %s", type(net).__name__, path)
    return path


def model_card_kwargs(
    args: argparse.Namespace,
    *,
    title: str,
    summary: str,
    method: str,
    data: str,
    loss: str,
    steps: int,
    class_name: str,
    gen_kwargs: dict,
    repo_id: str | None,
) -> dict:
    """``export_generator``'s model card fields in the layout every trainer's card shares: the
    trainer-specific ``method`` line, the command that trained it, then data, steps, loss,
    optimiser and seed, so cards of different trainers read (and compare) the same way."""
    training = "\n".join([
        method,
        "",
        "```bash",
        args.command,
        "```",
        "",
        f"- data: {data}",
        f"- steps: {steps}, resolution: {args.resolution}x{args.resolution}, batch size: "
        f"{args.train_batch_size} x {args.gradient_accumulation_steps} accumulation",
        f"- loss: {loss}",
        f"- optimiser: Adam lr {args.learning_rate:g}, betas ({args.adam_beta1:g}, {args.adam_beta2:g}), "
        f"schedule `{args.lr_scheduler}`" + (", EMA weights" if args.use_ema else ""),
        f"- seed: {args.seed}, mixed precision: {args.mixed_precision or 'no'}",
    ])
    return {
        "title": title,
        "summary": summary,
        "repo_id": repo_id,
        "class_name": class_name,
        "architecture": f"`{class_name}` with `{json.dumps(gen_kwargs, sort_keys=True)}`.",
        "training": training,
    }


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, token: str | None = None, commit_message: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` to it; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(folder),
        commit_message=commit_message or "Upload photosketch generator",
    )
    logger.info("uploaded %s to %s", folder, repo_id)
    return str(getattr(info, "commit_url", info))


def export_and_push(generator, args: argparse.Namespace, name: str, card_kwargs: Callable[[str | None], dict],
                    accelerator, ema=None, commit_message: str = "") -> Path:
    """Export ``generator`` to ``OUTPUT_DIR/<name>/`` (Hub layout) and, with ``--push_to_hub``, upload it.

    ``card_kwargs(repo_id)`` builds the model card fields; the repo id is ``--hub_model_id`` or one
    derived from the output folder, and is written into the card only when the model goes to the Hub.
    """
    export_dir = Path(args.output_dir) / name
    repo_id = args.hub_model_id or default_hub_model_id(args.output_dir, name)
    card_repo_id = repo_id if (args.push_to_hub or args.hub_model_id) else None
    export_generator(generator, export_dir, card_kwargs(card_repo_id), ema=ema, accelerator=accelerator)
    logger.info("exported the generator to %s", export_dir)
    if args.push_to_hub:
        url = push_folder_to_hub(export_dir, repo_id, token=args.hub_token, commit_message=commit_message or None)
        logger.info("pushed to %s", url)
    return export_dir


def default_hub_model_id(output_dir: str | os.PathLike, suffix: str = "") -> str:
    name = Path(output_dir).resolve().name + (f"-{suffix}" if suffix else "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "photosketch"


def format_command(argv: Iterable[str] | None, script: str) -> str:
    import shlex

    return " ".join(["python", script, *(shlex.quote(a) for a in (argv or []))])


class Throughput:
    """Images per second over the steps since the last call."""

    def __init__(self):
        self.t0, self.n = time.perf_counter(), 0

    def add(self, n: int) -> None:
        self.n += n

    def rate(self) -> float:
        now = time.perf_counter()
        r = self.n / max(now - self.t0, 1e-9)
        self.t0, self.n = now, 0
        return r


# ---------------------------------------------------------------------------------------------
# Resuming and the step loop
# ---------------------------------------------------------------------------------------------


def _log_main(level: int, msg: str, *args) -> None:
    """Log on the main process only (accelerate's logger; needs the Accelerator to exist)."""
    from accelerate.logging import get_logger

    get_logger(__name__).log(level, msg, *args, main_process_only=True)


class ResumePoint(NamedTuple):
    """Where a run starts: the checkpoint it resumed from (None for a new run), the epoch, and how
    many batches of that epoch were already trained on."""

    checkpoint: Path | None
    first_epoch: int
    skip_batches: int


def resume_from_checkpoint(accelerator, args: argparse.Namespace, state: TrainState, schedulers: Iterable,
                           steps_per_epoch: int) -> ResumePoint:
    """Load ``--resume_from_checkpoint`` (if any) into the prepared objects and everything
    registered for checkpointing, and say where in the data the run goes on.

    ``steps_per_epoch`` counts optimizer steps per epoch of the *prepared* loader.
    """
    checkpoint = resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and checkpoint is None:
        _log_main(logging.INFO, "no checkpoint in %s; starting a new run", args.output_dir)
    if checkpoint is None:
        return ResumePoint(None, 0, 0)
    _log_main(logging.INFO, "resuming from %s", checkpoint)
    check_checkpoint_files(checkpoint)
    # accelerate loads registered objects (image pools, EMA, the step) with weights_only=False; the
    # files were just checked, and this makes every torch.load inside load_state weights-only too.
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    previous = {k: os.environ.pop(k, None) for k in names}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        accelerator.load_state(str(checkpoint))
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for s in schedulers:  # this run's --max_train_steps decides the LR from here on
        sync_scheduler_lr(s)
    return ResumePoint(checkpoint, state.global_step // steps_per_epoch,
                       (state.global_step % steps_per_epoch) * args.gradient_accumulation_steps)


def epoch_batches(accelerator, dataloader, dataset, epoch: int, resume: ResumePoint, batch_size: int | None = None):
    """The batches of one epoch: the sampler and the dataset's augmentation set to ``epoch``, and
    in a resumed run's first epoch without the batches its checkpoint already trained on (so the
    resumed run sees the same data, in the same order, as an uninterrupted one).

    A :class:`~photosketch.packed.PackedPairs` (``--data_pack``; ``dataloader`` is None) makes its
    batches itself, on the device, this process's share of each epoch."""
    skip = resume.skip_batches if epoch == resume.first_epoch else 0
    if dataloader is None:
        return dataset.batches(epoch, batch_size, num_processes=accelerator.num_processes,
                               process_index=accelerator.process_index, skip=skip)
    dataloader.set_epoch(epoch)
    dataset.set_epoch(epoch)
    if epoch == resume.first_epoch and resume.skip_batches:
        return accelerator.skip_first_batches(dataloader, resume.skip_batches)
    return dataloader


class TrainingLoop:
    """What a trainer does around its optimizer steps, the same for every model:

    - ``with loop:`` installs SIGINT and SIGTERM handlers, so the first Ctrl-C or SIGTERM
      (``docker stop``, Kubernetes, ``timeout``, Spaces) finishes the current step, saves a
      checkpoint and stops (a second one aborts at once); on the way out it restores the previous
      handlers and closes the progress bar, and turns a ``KeyboardInterrupt`` into
      ``loop.interrupted``.
    - :meth:`end_of_step` after each optimizer step (``accelerator.sync_gradients``): counts the
      step, steps the EMAs, logs every ``--logging_steps`` to the trackers and ``logs.jsonl``,
      checkpoints every ``--checkpointing_steps``, writes a validation grid every
      ``--validation_steps`` (main process), and stops at ``max_train_steps`` or after a Ctrl-C.
    - :meth:`exit_if_interrupted`, then :meth:`finish` after the loop.

    ``validate(step)`` is the trainer's own (what to generate and how to lay it out); ``emas``
    pairs each diffusers ``EMAModel`` with the (prepared) model it averages. The global step lives
    in ``state`` (a :class:`TrainState` registered for checkpointing).
    """

    def __init__(
        self,
        accelerator,
        args: argparse.Namespace,
        state: TrainState,
        *,
        max_train_steps: int,
        images_per_step: int,
        lr_scheduler,
        validate: Callable[[int], None],
        resume: ResumePoint,
        emas: Iterable[tuple[Any, nn.Module]] = (),
        desc: str = "training",
        progress_skip: Sequence[str] = (),
        schedulers: Sequence = (),
    ):
        from tqdm.auto import tqdm

        self.accelerator, self.args, self.state = accelerator, args, state
        self.max_train_steps, self.images_per_step = max_train_steps, images_per_step
        self.lr_scheduler, self.validate = lr_scheduler, validate
        self.emas = list(emas)
        self.progress_skip = set(progress_skip)  # loss keys too long or redundant for the progress bar
        self.output_dir = Path(args.output_dir)
        self.jsonl = JsonlLogger(self.output_dir / "logs.jsonl", enabled=accelerator.is_main_process)
        if resume.checkpoint is not None:
            self.jsonl.drop_after(state.global_step)  # the steps after the checkpoint are logged again
        self.progress = tqdm(range(max_train_steps), initial=state.global_step, desc=desc,
                             disable=not accelerator.is_local_main_process)
        self.throughput = Throughput()
        # A resumed run's current step is already saved: no second checkpoint of it at the end.
        self.last_saved = state.global_step if resume.checkpoint is not None else -1
        self.stop_requested = False  # set by the first Ctrl-C or SIGTERM
        self.interrupted = False
        self.stop_signal = signal.SIGINT  # which one; the exit status is 128 + its number
        self._previous_handlers: dict[int, Any] = {}
        # --max_train_minutes: the budget, every schedule to fit to it, and when the clock started.
        self.budget_s = args.max_train_minutes * 60 if getattr(args, "max_train_minutes", None) else None
        self.schedulers = list(schedulers) or [lr_scheduler]
        self.started = time.monotonic()
        self.first_step = state.global_step
        self.budget_spent = False
        self._horizon_fitted = False
        self._t_second: tuple[int, float] | None = None  # (step, elapsed s) once the first step is done

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def should_stop(self) -> bool:
        return self.interrupted or self.budget_spent or self.global_step >= self.max_train_steps

    def _check_budget(self, step: int) -> None:
        """--max_train_minutes, at logging steps. Once 10 % of the budget has passed, the steps that fit
        in the rest are estimated from the time per step so far and the LR schedule is fitted to end
        there; when the budget is spent the run stops as if it had reached --max_train_steps. The main
        process's clock decides, so every process stops at the same step."""
        from accelerate.utils import broadcast

        elapsed = time.monotonic() - self.started
        elapsed = float(broadcast(torch.tensor([elapsed], device=self.accelerator.device)).item())
        if elapsed >= self.budget_s:
            self.budget_spent = True
            _log_main(logging.INFO, "--max_train_minutes %g spent at step %d", self.args.max_train_minutes, step)
            return
        if self._t_second is None or step - self._t_second[0] < 2:
            return
        if not self._horizon_fitted and elapsed >= 0.1 * self.budget_s:
            self._horizon_fitted = True
            # Time per step from the second step on: the first one carries start-up (cuDNN autotuning,
            # compilation, allocator warm-up) and would make the estimate too pessimistic.
            t_step, t_time = self._t_second
            per_step = (elapsed - t_time) / (step - t_step)
            fit = step + int((self.budget_s - elapsed) / per_step)
            if fit < self.max_train_steps:
                self.max_train_steps = fit
                self.progress.total = fit
                for s in self.schedulers:
                    set_lr_horizon(s, fit * self.accelerator.num_processes)
                _log_main(logging.INFO, "%.2f s per step: %d steps fit in --max_train_minutes %g; LR schedule fitted to them",
                          per_step, fit, self.args.max_train_minutes)

    # ---- Ctrl-C and SIGTERM

    def _on_sigint(self, signum, frame) -> None:
        """The first SIGINT or SIGTERM: stop after this step; the same signal again acts at once."""
        self.stop_requested = True
        self.stop_signal = signal.Signals(signum)
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, self._previous_handlers.get(signum) or default)
        _log_main(logging.WARNING, "%s: saving a checkpoint after this step (%s again to abort)",
                  "interrupt" if signum == signal.SIGINT else self.stop_signal.name,
                  "Ctrl-C" if signum == signal.SIGINT else self.stop_signal.name)

    def __enter__(self) -> "TrainingLoop":
        # Signal handlers can only be installed from the main thread (not, e.g., in a test runner's worker).
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[signum] = signal.signal(signum, self._on_sigint)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        for signum, handler in self._previous_handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        self.progress.close()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True  # a second Ctrl-C, or one outside the step loop
            return True
        return False

    # ---- each step

    def save(self, step: int) -> Path:
        self.state.global_step = step
        path = save_checkpoint(self.accelerator, self.output_dir, step, self.args.checkpoints_total_limit)
        self.last_saved = step
        return path

    def end_of_step(self, epoch: int, losses: dict[str, torch.Tensor]) -> bool:
        """Bookkeeping after an optimizer step; True when the loop should stop (``break``)."""
        args, accelerator = self.args, self.accelerator
        self.state.global_step += 1
        step = self.state.global_step
        self.progress.update(1)
        self.throughput.add(self.images_per_step)
        for ema, model in self.emas:
            ema.step(unwrap(model, accelerator).parameters())

        if self.budget_s and self._t_second is None:
            self._t_second = (step, time.monotonic() - self.started)
        if self.budget_s and step % args.logging_steps == 0:
            self._check_budget(step)
        if step % args.logging_steps == 0 or step == self.max_train_steps or self.budget_spent:
            logs = {k: v.item() for k, v in losses.items()}
            logs["lr"] = self.lr_scheduler.get_last_lr()[0]
            logs["perf/images_per_s"] = self.throughput.rate()
            logs["epoch"] = epoch
            self.progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items()
                                       if k.startswith("loss/") and k not in self.progress_skip})
            accelerator.log(logs, step=step)
            self.jsonl.log(logs, step=step)
        if args.checkpointing_steps and step % args.checkpointing_steps == 0:
            self.save(step)
        if args.validation_steps and step % args.validation_steps == 0 and accelerator.is_main_process:
            self.validate(step)

        # Every process stops at the same step: the trigger is reduced across processes.
        if self.stop_requested:
            accelerator.set_trigger()
        if accelerator.check_trigger():
            self.interrupted = True
        return self.should_stop

    # ---- after the loop

    def exit_if_interrupted(self) -> None:
        """After a Ctrl-C or SIGTERM: save a checkpoint of the last finished step (unless it was just
        saved), say how to resume, end the trackers and exit with 128 + the signal number (what a
        shell reports for it: 130 for SIGINT, 143 for SIGTERM)."""
        if not self.interrupted:
            return
        step = self.global_step
        if step > 0:
            path = self.save(step) if self.last_saved != step else self.output_dir / f"checkpoint-{step}"
            path = path if path.is_dir() else "latest"  # a resumed run stopped before its first step
            _log_main(logging.WARNING, "interrupted at step %d; resume with --resume_from_checkpoint %s", step, path)
        self.accelerator.end_training()
        raise SystemExit(128 + int(self.stop_signal))

    def finish(self) -> None:
        """The end of a complete run: a resumable final checkpoint (when checkpointing is on and
        this step has none yet) and a last validation grid (main process) unless this step had one."""
        args, step = self.args, self.global_step
        if args.checkpointing_steps and self.last_saved != step:
            self.save(step)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process and args.validation_steps and step % args.validation_steps != 0:
            self.validate(step)
