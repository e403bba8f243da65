#!/usr/bin/env python
"""Distil a trained generator (the teacher) into a smaller, faster one (the student).

After GAN Compression (Li et al. 2020, sec. 3.1): the student learns from the teacher's outputs
and intermediate features as well as from the real data. For a paired batch (x, y) with teacher
T and student S, the generator objective is

    lambda_teacher * ||T(x) - S(x)||_1              # match the teacher's output (eq. 2, L_recon)
  + lambda_l1      * ||y - S(x)||_1                 # and the real target (pix2pix eq. 3)
  + lambda_feature * ||f_T(x) - r(f_S(x))||_2^2     # bottleneck features, r = learned 1x1 conv (eq. 3)
  + gan_weight     * GAN(S, D)                      # conditional PatchGAN on (x, S(x)) vs (x, y)

No loss needs downloaded weights (no VGG/LPIPS): the teacher's own features are the "perceptual"
signal. The teacher runs frozen, in eval mode, on the same augmented input as the student, so its
outputs act as unlimited extra pairs.

    python train/distill.py --data_dir data/combined --teacher photo2sketch --output_dir runs/student
    accelerate launch train/distill.py --data_dir data/combined --teacher runs/p2s/photo2sketch ...

The teacher is a registry name (``photo2sketch``: the shipped model), a model folder or a Hub repo
id; the direction and the default ``--resolution`` come from it. The student is ``--generator``
(default: ``compact`` at ``--ngf 8``, BatchNorm, which folds into the convs at inference). Same
conventions as the other trainers: accelerate, ``checkpoint-{step}`` folders, ``--resume_from_checkpoint
latest``, validation grids from ``DIR/val`` (rows: input | student | teacher | target; ``DIR/test``
is never read), export with ``save_pretrained`` to ``OUTPUT_DIR/<direction>/``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if (_REPO_ROOT / "photosketch").is_dir() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from accelerate.logging import get_logger  # noqa: E402
from torch import nn  # noqa: E402

from photosketch import training as T  # noqa: E402
from photosketch.data import SKETCH_SOURCES  # noqa: E402
from photosketch.hub import ModelNotAvailableError, load_model, resolve_direction  # noqa: E402
from photosketch.models import PatchDiscriminator, PhotoSketchModel, ResnetBlock, SeparableResBlock, count_params  # noqa: E402
from photosketch.pipeline import default_style  # noqa: E402

logger = get_logger(__name__)

PHOTO_CHANNELS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Distil a trained photo<->sketch generator into a smaller student (GAN Compression, Li et al. 2020).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    T.add_common_args(parser, data_dir_required=False)
    # A student small enough for real time on 2 vCPUs (see benchmarks/latency.py); the resolution
    # defaults to the teacher's training size, where its outputs are best.
    parser.set_defaults(generator="compact", ngf=8, norm="batch", resolution=None)
    g = parser.add_argument_group("distillation")
    g.add_argument("--teacher", type=str, default="photo2sketch",
                   help="Teacher: a registry name (photo2sketch / sketch2photo = the shipped models), a model folder or a Hub repo id.")
    g.add_argument("--teacher_style", type=str, default=None,
                   help="For a style-conditioned teacher: the style the (single-style) student learns; default: the "
                        "pipeline's default style for that teacher (photosketch.pipeline.default_style).")
    g.add_argument("--sketch_source", type=str, default="real", choices=SKETCH_SOURCES,
                   help="Sketches: the real drawings, classical line drawings of the photos, or both (p=0.5 per item).")
    g.add_argument("--lambda_teacher", type=float, default=100.0, help="Weight of L1 to the teacher's output.")
    g.add_argument("--lambda_l1", type=float, default=25.0, help="Weight of L1 to the real target.")
    g.add_argument("--lambda_feature", type=float, default=1.0,
                   help="Weight of the bottleneck feature loss (needs residual generators on both sides; 0 = off).")
    g.add_argument("--gan_weight", type=float, default=1.0, help="Weight of the GAN term; 0 = no discriminator.")
    g.add_argument("--gan_mode", type=str, default="vanilla", choices=("vanilla", "lsgan"))
    g.add_argument("--norm_d", type=str, default="instance", choices=("instance", "batch", "none"),
                   help="Discriminator norm (real and fake pairs go through D in one batch).")
    return parser


def bottleneck(model: nn.Module) -> nn.Module | None:
    """The last residual block of a ResNet-style generator (its bottleneck output), else ``None``."""
    blocks = [m for m in model.modules() if isinstance(m, (ResnetBlock, SeparableResBlock))]
    return blocks[-1] if blocks else None


def _bottleneck_channels(model: nn.Module) -> int:
    block = bottleneck(model)
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d)).out_channels


def load_teacher(name: str) -> nn.Module:
    """The teacher, frozen and in eval mode; raises ValueError for anything that is not a learned generator."""
    model = load_model(name)
    if not isinstance(model, PhotoSketchModel):
        raise ValueError(f"{name!r} is a classical style, not a learned generator; distil from a trained model")
    model.requires_grad_(False)
    return model.eval()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        teacher = load_teacher(args.teacher)
    except (KeyError, ModelNotAvailableError, OSError, ValueError) as exc:
        parser.error(f"--teacher: {exc.args[0] if exc.args else exc}")
    config = teacher._hub_mixin_config or {}
    args.direction = resolve_direction(args.teacher, teacher)
    if args.direction is None:
        parser.error(f"--teacher {args.teacher}: cannot tell its direction from {config.get('in_channels')} -> "
                     f"{config.get('out_channels')} channels (expected 3 -> 1 or 1 -> 3)")
    if args.resolution is None:
        args.resolution = int(config.get("sample_size") or 256)
    args.sketch_channels = int(config["out_channels"] if args.direction == "photo2sketch" else config["in_channels"])
    T.check_common_args(parser, args)
    T.refuse_args(parser, args, ("style_conditioning",), "train/distill.py")
    styles = tuple(getattr(teacher, "styles", ()) or ())
    if args.teacher_style is not None and args.teacher_style not in styles:
        parser.error(f"--teacher_style {args.teacher_style!r}: the teacher draws "
                     + (", ".join(styles) if styles else "one style only (drop --teacher_style)"))
    args.teacher_style = args.teacher_style or default_style(styles)
    if args.lambda_feature > 0 and (bottleneck(teacher) is None or args.generator == "unet"):
        parser.error("--lambda_feature needs residual generators (resnet / compact) as teacher and student; pass --lambda_feature 0")
    T.check_paired_data(parser, args)
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/distill.py")
    return args


class FeatureTap:
    """Keeps the output of one module from the latest forward pass (a forward hook)."""

    def __init__(self, module: nn.Module):
        self.value: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.value = output

    def remove(self) -> None:
        # Hooks are part of a module's state: gone before export (deepcopy) so the student is saved bare.
        self._handle.remove()
        self.value = None


def main(args: argparse.Namespace) -> Path | None:
    output_dir = Path(args.output_dir)
    # Also sets up logging, the seed and TF32, and writes OUTPUT_DIR/training_args.json.
    accelerator = T.init_accelerator(args)

    # ---- data
    photo2sketch = args.direction == "photo2sketch"
    in_ch, out_ch = (PHOTO_CHANNELS, args.sketch_channels) if photo2sketch else (args.sketch_channels, PHOTO_CHANNELS)
    # --data_pack: decoded once into device memory, batches made and augmented there; else --data_dir.
    train_dataset, train_dataloader, num_batches = T.paired_train_data(args, accelerator, PHOTO_CHANNELS)
    photos, sketches, _, val_source = T.paired_validation(args)
    val_inputs, val_targets = (photos, sketches) if photo2sketch else (sketches, photos)
    line_drawings = T.PackLineDrawings.for_args(args, accelerator.device)  # --data_pack with lines / mixed

    # ---- models: the frozen teacher (not prepared: it has no gradients or optimiser state) and the student
    teacher = load_teacher(args.teacher).to(accelerator.device)
    gen_kwargs = T.generator_kwargs(args, in_ch, out_ch)
    student = T.build_generator_from_args(args, in_ch, out_ch)
    use_gan = args.gan_weight > 0
    use_features = args.lambda_feature > 0
    discriminator = (
        T.init_weights(PatchDiscriminator(in_ch + out_ch, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d))
        if use_gan else None
    )
    # GAN Compression eq. 3: a learnable 1x1 conv maps student features to the teacher's width.
    adapter = nn.Conv2d(_bottleneck_channels(student), _bottleneck_channels(teacher), 1) if use_features else None
    taps = (FeatureTap(bottleneck(teacher)), FeatureTap(bottleneck(student))) if use_features else None
    if args.channels_last:
        for net in (student, discriminator, teacher):
            if net is not None:
                net.to(memory_format=torch.channels_last)
    ema = T.make_ema(args, student)

    adam = dict(lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay)
    g_params = list(student.parameters()) + (list(adapter.parameters()) if use_features else [])
    optimizer_g = torch.optim.Adam(g_params, **adam)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), **adam) if use_gan else None

    # ---- schedule (step counts as in the diffusers examples: per process, then x num_processes)
    max_train_steps = T.max_train_steps_from_args(args, num_batches, accelerator.num_processes)
    scheduler_g = T.lr_scheduler_from_args(args, optimizer_g, max_train_steps, accelerator.num_processes)
    scheduler_d = T.lr_scheduler_from_args(args, optimizer_d, max_train_steps, accelerator.num_processes) if use_gan else None

    if args.compile:
        student, teacher = torch.compile(student), torch.compile(teacher)
        if use_gan:
            discriminator = torch.compile(discriminator)

    # No D / no adapter: those entries are None and left out of prepare().
    p = T.prepare_named(accelerator, student=student, discriminator=discriminator, adapter=adapter, optimizer_g=optimizer_g,
                        optimizer_d=optimizer_d, dataloader=train_dataloader, scheduler_g=scheduler_g, scheduler_d=scheduler_d)
    student, discriminator, adapter, optimizer_g, optimizer_d = (p[k] for k in ("student", "discriminator", "adapter",
                                                                                "optimizer_g", "optimizer_d"))
    train_dataloader, scheduler_g, scheduler_d = p["dataloader"], p["scheduler_g"], p["scheduler_d"]
    schedulers = [s for s in (scheduler_g, scheduler_d) if s is not None]
    state = T.register_run_state(accelerator, ema)
    gan_loss = T.GANLoss(args.gan_mode)
    # The student step runs D unwrapped with its parameters frozen (see train/pix2pix.py).
    discriminator_raw = T.unwrap(discriminator, accelerator) if use_gan else None

    batches_per_epoch = len(train_dataloader) if train_dataloader is not None else num_batches // accelerator.num_processes
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)

    T.init_trackers(accelerator, args, f"distill-{args.direction}")

    # ---- resume (student, D, adapter, optimizers, schedulers, RNGs, the sampler's epoch, state and EMA)
    resume = T.resume_from_checkpoint(accelerator, args, state, schedulers, steps_per_epoch)

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        "distill %s: teacher %s (%d parameters) -> student %s %s (%d parameters); %d pairs, %d epochs, %d steps "
        "(batch %d total); validation images from %s",
        args.direction, args.teacher, count_params(teacher), args.generator, gen_kwargs,
        count_params(T.unwrap(student, accelerator)), len(train_dataset), num_epochs, max_train_steps, total_batch,
        val_source, main_process_only=True,
    )

    # The frozen teacher's answers for the fixed validation inputs never change: computed once.
    def teacher_style(n: int, device) -> torch.Tensor | None:
        """The one style the student learns, as the teacher's style weights (None: an unstyled teacher)."""
        return teacher.style_weights(args.teacher_style, n, device) if args.teacher_style else None

    teacher_outputs = (T.validation_outputs(teacher, val_inputs, accelerator, style=teacher_style(len(val_inputs), "cpu"))
                       if args.validation_steps else None)

    def validate(step: int) -> None:
        outputs = T.validation_outputs(student, val_inputs, accelerator, ema)
        rows = [[val_inputs[i], outputs[i], teacher_outputs[i], val_targets[i]] for i in range(val_inputs.shape[0])]
        grid = T.make_grid(rows)
        path = output_dir / "validation" / f"step-{step}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        T.log_validation_images(accelerator, "validation", grid, step)

    loop = T.TrainingLoop(
        accelerator, args, state, max_train_steps=max_train_steps, images_per_step=total_batch, lr_scheduler=scheduler_g,
        validate=validate, resume=resume, emas=[(ema, student)] if ema is not None else [],
        desc=f"distill {args.direction}", schedulers=schedulers,
    )
    losses: dict[str, torch.Tensor] = {}
    for net in (student, discriminator, adapter):
        if net is not None:
            net.train()

    trained = [n for n in (student, discriminator, adapter) if n is not None]
    with loop:
        for epoch in range(resume.first_epoch, num_epochs):
            if loop.should_stop:
                break
            for batch in T.epoch_batches(accelerator, train_dataloader, train_dataset, epoch, resume, args.train_batch_size):
                if line_drawings is not None:
                    batch = line_drawings(batch)
                cond, real = (batch["photo"], batch["sketch"]) if photo2sketch else (batch["sketch"], batch["photo"])
                if args.channels_last:
                    cond = cond.contiguous(memory_format=torch.channels_last)
                    real = real.contiguous(memory_format=torch.channels_last)
                with accelerator.accumulate(*trained):
                    with torch.no_grad(), accelerator.autocast():
                        # the teacher's answer for this exact (augmented) input, in the student's style
                        w = teacher_style(cond.shape[0], cond.device)
                        target_t = teacher(cond) if w is None else teacher(cond, style=w)
                    with accelerator.autocast():
                        fake = student(cond)
                    if use_gan:  # real pairs -> 1, student pairs -> 0
                        losses["loss/discriminator"] = T.conditional_d_step(
                            accelerator, discriminator, discriminator_raw, gan_loss, cond, fake, real, optimizer_d,
                            scheduler_d, args.max_grad_norm)

                    # Student step: the objective in the module docstring.
                    loss_teacher = F.l1_loss(fake.float(), target_t.float())
                    loss_l1 = F.l1_loss(fake.float(), real.float())
                    loss_g = args.lambda_teacher * loss_teacher + args.lambda_l1 * loss_l1
                    if use_features:
                        teacher_tap, student_tap = taps
                        with accelerator.autocast():
                            mapped = adapter(student_tap.value)
                        loss_feature = F.mse_loss(mapped.float(), teacher_tap.value.detach().float())
                        loss_g = loss_g + args.lambda_feature * loss_feature
                        losses["loss/feature"] = loss_feature.detach()
                    if use_gan:
                        loss_gan = T.conditional_g_gan_loss(accelerator, discriminator_raw, gan_loss, cond, fake)
                        loss_g = loss_g + args.gan_weight * loss_gan
                        losses["loss/gan_generator"] = loss_gan.detach()
                    accelerator.backward(loss_g)
                    T.optimizer_step(accelerator, optimizer_g, scheduler_g, g_params, args.max_grad_norm)
                    losses["loss/teacher_l1"] = loss_teacher.detach()
                    losses["loss/l1"] = loss_l1.detach()
                    losses["loss/generator"] = loss_g.detach()

                if not accelerator.sync_gradients:
                    continue
                if loop.end_of_step(epoch, losses):
                    break
    loop.exit_if_interrupted()  # after Ctrl-C / SIGTERM: checkpoint, resume hint, exit 130 / 143

    # ---- end of training: a resumable final checkpoint, a last validation grid, the export (student only)
    loop.finish()
    for tap in taps or ():
        tap.remove()
    global_step = loop.global_step
    export_dir = None
    if accelerator.is_main_process:
        class_name = type(T.unwrap(student, accelerator)).__name__
        export_dir = T.export_and_push(
            student, args, args.direction, accelerator=accelerator, ema=ema,
            card_kwargs=lambda repo_id: _model_card_kwargs(args, class_name, gen_kwargs, repo_id, global_step, len(train_dataset)),
            commit_message=f"distilled {args.direction}, {global_step} steps")
    accelerator.end_training()
    return export_dir


def _model_card_kwargs(args, class_name: str, gen_kwargs: dict, repo_id: str | None, steps: int, n_pairs: int) -> dict:
    source, target = ("photo", "sketch") if args.direction == "photo2sketch" else ("sketch", "photo")
    terms = [f"L1 to the teacher x {args.lambda_teacher:g}", f"L1 to the real target x {args.lambda_l1:g}"]
    if args.lambda_feature > 0:
        terms.append(f"bottleneck feature MSE x {args.lambda_feature:g}")
    if args.gan_weight > 0:
        terms.append(f"{args.gan_mode} GAN x {args.gan_weight:g} (conditional 70x70 PatchGAN)")
    return T.model_card_kwargs(
        args,
        title=f"photosketch distilled {source} → {target} ({args.generator})",
        summary=f"A small, fast {source} → {target} face generator distilled from `{args.teacher}`.",
        method=f"Distillation (GAN Compression, Li et al. 2020) from the teacher `{args.teacher}`, trained with `train/distill.py`:",
        data=f"`{Path(args.data_pack or args.data_dir).resolve().name}` ({n_pairs} training pairs) and the teacher's outputs on them",
        loss=" + ".join(terms), steps=steps, class_name=class_name, gen_kwargs=gen_kwargs, repo_id=repo_id,
    )


if __name__ == "__main__":
    main(parse_args())
