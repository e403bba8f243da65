"""Command-line arguments: the groups every trainer takes (data, model, optimisation, checkpoints and
logging, hub; diffusers-examples names where one exists), the flags the GAN trainers share, the
checks that turn bad values into a one-line usage error, and the command line for the model card.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Iterable, Sequence

from ..models import GENERATORS
from .optim import LR_SCHEDULERS


def _default_report_to() -> str:
    return "tensorboard" if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX") else "none"


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
    g.add_argument("--train_crop", type=int, default=None,
                   help="Train on random N x N windows of the --resolution-sized pairs (fully convolutional: a step costs "
                        "what an N-px step costs, the model still learns the --resolution scale it is exported for). "
                        "--data_dir only. Default: the whole square.")
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
    g.add_argument("--grow_init", action=argparse.BooleanOptionalAction, default=False,
                   help="With --init_weights of a smaller model (smaller --ngf and/or fewer --n_blocks, all else equal): "
                        "grow it so the new generator starts out drawing exactly what it drew (Net2Net, Chen et al. "
                        "2016) instead of refusing the shape mismatch.")

    g = parser.add_argument_group("optimisation")
    g.add_argument("--train_batch_size", type=int, default=1, help="Per device.")
    g.add_argument("--num_epochs", type=int, default=200)
    g.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_epochs when set.")
    g.add_argument("--max_train_minutes", type=float, default=None,
                   help="Wall-clock budget: stop (checkpoint, export) when it is spent. The LR schedule is fitted to "
                        "the steps that fit, measured from 10%% of the budget on and refitted until the LR starts to decay.")
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


def trainer_parser(description: str, group: str) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
    """A trainer's parser with :func:`add_common_args` (``--data_dir`` optional: a pack or single folders
    can replace it), and the argument group for the trainer's own flags."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_args(parser, data_dir_required=False)
    return parser, parser.add_argument_group(group)


def add_gan_args(group, gan_mode: str = "vanilla", judged: str = "real and fake pairs") -> None:
    """``--gan_mode`` (default ``gan_mode``) and ``--norm_d``: how the discriminator is trained and normalised."""
    group.add_argument("--gan_mode", type=str, default=gan_mode, choices=("vanilla", "lsgan"),
                       help="vanilla: cross-entropy GAN loss (pix2pix eq. 1); lsgan: least squares (Mao et al. 2017; "
                            "CycleGAN sec. 4).")
    group.add_argument("--norm_d", type=str, default="instance", choices=("instance", "batch", "none"),
                       help=f"Discriminator norm ({judged} go through D in one batch).")


def add_paired_args(group, lambda_l1: float, gradient_target: str = "the target") -> None:
    """What the paired trainers (pix2pix, distill) share: the sketch source, the weights of L1 to the
    real target, of the gradient-similarity loss (to ``gradient_target``: pix2pix's real target,
    distill's teacher output) and of the GAN term, with the GAN flags of :func:`add_gan_args`."""
    from ..data import SKETCH_SOURCES

    group.add_argument("--sketch_source", type=str, default="real", choices=SKETCH_SOURCES,
                       help="Sketches: the real drawings (real), classical line drawings of the photos (lines), few-stroke "
                            "sparse drawings of them (sparse), real or lines (mixed, p=0.5 each) or all three (all, "
                            "p=1/3 each; sparse and all need --data_dir or a pack written with --sparse_per_pair).")
    group.add_argument("--photo_jitter", type=float, default=None,
                       help="With --augment: photo exposure/contrast/saturation vary by up to this factor. Default: 0.25 "
                            "when the photo is the input (photo2sketch; real portraits are badly lit), 0 when it is the "
                            "target (sketch2photo: the model should not learn washed-out photos).")
    group.add_argument("--grayscale_prob", type=float, default=None,
                       help="With --augment: share of photos made black-and-white. Default: 0.2 for photo2sketch (a B&W "
                            "portrait then gives a sketch as strong as a colour one), 0 for sketch2photo.")
    group.add_argument("--lambda_l1", type=float, default=lambda_l1, help="Weight of L1 to the real target (pix2pix: 100).")
    group.add_argument("--lambda_gradient", type=float, default=0.0,
                       help=f"Weight of the gradient-similarity loss to {gradient_target} (1 - FSIM eq. 6 / GMSD's "
                            "similarity map): rewards edges as strong as its own where it has them, where L1 settles "
                            "for the soft average. 0 = off.")
    group.add_argument("--gan_weight", type=float, default=1.0, help="Weight of the GAN term; 0 = no discriminator.")
    add_gan_args(group)


def photo_augmentation(args: argparse.Namespace) -> tuple[float, float]:
    """(photo_jitter, grayscale_prob) for a paired trainer: the flags, else the defaults of its direction."""
    photo_is_input = getattr(args, "direction", "photo2sketch") == "photo2sketch"
    jitter, gray = getattr(args, "photo_jitter", None), getattr(args, "grayscale_prob", None)
    jitter = jitter if jitter is not None else (0.25 if photo_is_input else 0.0)
    gray = gray if gray is not None else (0.2 if photo_is_input else 0.0)
    return jitter, gray


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Argument checks that end in a one-line ``parser.error`` instead of a traceback mid-run."""
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"--data_dir {args.data_dir}: no such folder")
    if args.resolution < 16:
        parser.error("--resolution must be at least 16")
    if args.train_crop is not None:
        if not 16 <= args.train_crop <= args.resolution:
            parser.error(f"--train_crop must be between 16 and --resolution ({args.resolution}); got {args.train_crop}")
        if getattr(args, "data_pack", None):
            parser.error("--train_crop needs --data_dir (a pack is augmented on the device, at full size)")
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
    if getattr(args, "lambda_gradient", 0.0) < 0:
        parser.error("--lambda_gradient must be >= 0")
    if getattr(args, "grow_init", False) and args.init_weights is None:
        parser.error("--grow_init needs --init_weights (the smaller model to grow)")
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


def format_command(argv: Iterable[str] | None, script: str) -> str:
    """``python <script> <argv>``, shell-quoted: the command line a model card shows."""
    import shlex

    return " ".join(["python", script, *(shlex.quote(a) for a in (argv or []))])
