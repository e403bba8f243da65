#!/usr/bin/env python
"""Train a paired photo <-> sketch generator with pix2pix (Isola et al. 2017).

A generator G (U-Net by default) maps the condition x to an output; a conditional PatchGAN D
judges concat(x, y) pairs. Objective (pix2pix eq. 4): GAN(G, D) + lambda_L1 * ||y - G(x)||_1.
``--gan_weight 0`` drops D and trains the plain L1 baseline.

    python train/pix2pix.py --data_dir data/cufs --output_dir runs/p2s --direction photo2sketch
    accelerate launch train/pix2pix.py --data_dir data/cufs --mixed_precision bf16 ...

Data: ``DIR/train/{photos,sketches}`` (or ``DIR/{photos,sketches}``). Validation grids show the
first pairs of ``DIR/val`` when it exists, else the first training pairs unaugmented; ``DIR/test``
is never used here, so it stays out of model selection. The generator is exported with
``save_pretrained`` to ``OUTPUT_DIR/<direction>/`` at the end. ``--data_pack FILE``
(``scripts/gpu_pack.py``) replaces ``--data_dir`` with one file decoded into device memory.

``--style_conditioning``: one generator for every sketch style in the data (``styles.csv``); the
style enters through conditional norms (``photosketch.models.StyleNorm``) and is also given to D as
constant input planes, so D judges "a sketch of this style for this photo".
``--num_scales_d 2 --lambda_feature_matching 10``: pix2pixHD's multi-scale discriminator and
feature-matching loss (Wang et al. 2018, eq. 4), for crisper strokes.
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

from photosketch import training as T  # noqa: E402
from photosketch.data import SKETCH_SOURCES  # noqa: E402
from photosketch.models import MultiscaleDiscriminator, PatchDiscriminator  # noqa: E402

logger = get_logger(__name__)

DIRECTIONS = ("photo2sketch", "sketch2photo")
PHOTO_CHANNELS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a pix2pix photo<->sketch generator (Isola et al. 2017).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    T.add_common_args(parser, data_dir_required=False)
    g = parser.add_argument_group("pix2pix")
    g.add_argument("--direction", type=str, default="photo2sketch", choices=DIRECTIONS)
    g.add_argument("--sketch_source", type=str, default="real", choices=SKETCH_SOURCES,
                   help="Sketches: the real drawings, classical line drawings of the photos, or both (p=0.5 per item).")
    g.add_argument("--gan_mode", type=str, default="vanilla", choices=("vanilla", "lsgan"),
                   help="vanilla: cross-entropy GAN loss (the paper); lsgan: least squares (Mao et al. 2017).")
    g.add_argument("--lambda_l1", type=float, default=100.0, help="Weight of the L1 term (pix2pix: 100).")
    g.add_argument("--gan_weight", type=float, default=1.0, help="Weight of the GAN term; 0 = L1-only baseline without D.")
    g.add_argument("--norm_d", type=str, default="instance", choices=("instance", "batch", "none"),
                   help="Discriminator norm (real and fake pairs go through D in one batch).")
    g.add_argument("--num_scales_d", type=int, default=1,
                   help="PatchGANs at full, 1/2, 1/4... resolution (pix2pixHD: 2-3); 1 = the pix2pix discriminator.")
    g.add_argument("--lambda_feature_matching", type=float, default=0.0,
                   help="Weight of D's feature matching (pix2pixHD eq. 4: 10); needs --num_scales_d >= 1 and a GAN.")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    T.check_common_args(parser, args)
    if args.num_scales_d < 1:
        parser.error("--num_scales_d must be >= 1")
    if args.lambda_feature_matching and args.gan_weight <= 0:
        parser.error("--lambda_feature_matching needs the discriminator (--gan_weight > 0)")
    styles = T.check_paired_data(parser, args)
    if args.style_conditioning and (not styles or "" in styles):
        parser.error(f"{'--data_pack' if args.data_pack else '--data_dir'}: --style_conditioning needs a style for every "
                     "training pair (styles.csv: name,style)")
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/pix2pix.py")
    return args


def _validation_batch(args) -> tuple[torch.Tensor, torch.Tensor, list[str], str]:
    """(inputs, targets, styles, source) for the validation grids (``training.paired_validation``)."""
    photos, sketches, styles, source = T.paired_validation(args)
    if args.direction == "photo2sketch":
        return photos, sketches, styles, source
    return sketches, photos, styles, source


def main(args: argparse.Namespace) -> Path | None:
    output_dir = Path(args.output_dir)
    # Also sets up logging, the seed and TF32, and writes OUTPUT_DIR/training_args.json.
    accelerator = T.init_accelerator(args)

    # ---- data
    photo2sketch = args.direction == "photo2sketch"
    in_ch, out_ch = (PHOTO_CHANNELS, args.sketch_channels) if photo2sketch else (args.sketch_channels, PHOTO_CHANNELS)
    # --data_pack: decoded once into device memory, batches made and augmented there; else --data_dir.
    train_dataset, train_dataloader, num_batches = T.paired_train_data(args, accelerator, PHOTO_CHANNELS)
    styles = list(train_dataset.style_names) if args.style_conditioning else []
    val_inputs, val_targets, val_styles, val_source = _validation_batch(args)
    line_drawings = T.PackLineDrawings.for_args(args, accelerator.device)  # --data_pack with lines / mixed

    # ---- models
    gen_kwargs = T.generator_kwargs(args, in_ch, out_ch, styles)
    generator = T.build_generator_from_args(args, in_ch, out_ch, styles)
    use_gan = args.gan_weight > 0
    # D sees (condition, output) and, with styles, one constant plane per style: "this style, for this input".
    d_in = in_ch + out_ch + len(styles)
    discriminator = None
    if use_gan and (args.num_scales_d > 1 or args.lambda_feature_matching):
        discriminator = T.init_weights(MultiscaleDiscriminator(d_in, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d,
                                                               num_scales=args.num_scales_d))
    elif use_gan:
        discriminator = T.init_weights(PatchDiscriminator(d_in, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d))
    nets = [generator] + ([discriminator] if use_gan else [])
    if args.channels_last:
        for net in nets:
            net.to(memory_format=torch.channels_last)
    ema = T.make_ema(args, generator)

    adam = dict(lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay)
    optimizer_g = torch.optim.Adam(generator.parameters(), **adam)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), **adam) if use_gan else None

    # ---- schedule (step counts as in the diffusers examples: per process, then x num_processes)
    max_train_steps = T.max_train_steps_from_args(args, num_batches, accelerator.num_processes)
    scheduler_g = T.lr_scheduler_from_args(args, optimizer_g, max_train_steps, accelerator.num_processes)
    scheduler_d = T.lr_scheduler_from_args(args, optimizer_d, max_train_steps, accelerator.num_processes) if use_gan else None

    if args.compile:
        generator = torch.compile(generator)
        if use_gan:
            discriminator = torch.compile(discriminator)

    p = T.prepare_named(accelerator, generator=generator, discriminator=discriminator, optimizer_g=optimizer_g,
                        optimizer_d=optimizer_d, dataloader=train_dataloader, scheduler_g=scheduler_g, scheduler_d=scheduler_d)
    generator, discriminator, optimizer_g, optimizer_d = p["generator"], p["discriminator"], p["optimizer_g"], p["optimizer_d"]
    train_dataloader, scheduler_g, scheduler_d = p["dataloader"], p["scheduler_g"], p["scheduler_d"]
    schedulers = [s for s in (scheduler_g, scheduler_d) if s is not None]
    state = T.register_run_state(accelerator, ema)
    gan_loss = T.GANLoss(args.gan_mode)
    # The generator step runs D unwrapped (no DDP hooks) with its parameters frozen: D gets no
    # gradient from it, and DDP never sees a forward without a matching backward.
    discriminator_raw = T.unwrap(discriminator, accelerator) if use_gan else None

    batches_per_epoch = len(train_dataloader) if train_dataloader is not None else num_batches // accelerator.num_processes
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)

    T.init_trackers(accelerator, args, f"pix2pix-{args.direction}")

    # ---- resume (models, optimizers, schedulers, RNGs, the sampler's epoch, state and EMA)
    resume = T.resume_from_checkpoint(accelerator, args, state, schedulers, steps_per_epoch)

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        "pix2pix %s: %d pairs, %d epochs, %d steps (batch %d total = %d per device x %d processes x %d accumulation), "
        "generator %s %s; validation images from %s",
        args.direction, len(train_dataset), num_epochs, max_train_steps, total_batch, args.train_batch_size,
        accelerator.num_processes, args.gradient_accumulation_steps, args.generator, gen_kwargs, val_source,
        main_process_only=True,
    )

    generator_raw = T.unwrap(generator, accelerator)

    def style_weights(names: list[str], device) -> torch.Tensor | None:
        return generator_raw.style_weights(list(names), len(names), device) if styles else None

    def validate(step: int) -> None:
        outputs = T.validation_outputs(generator, val_inputs, accelerator, ema, style=style_weights(val_styles, "cpu"))
        grid = T.save_validation_grid(val_inputs, outputs, val_targets, output_dir / "validation" / f"step-{step}.png")
        T.log_validation_images(accelerator, "validation", grid, step)

    # Progress bar, logging, checkpoints, validation grids and Ctrl-C around the steps below.
    loop = T.TrainingLoop(
        accelerator, args, state, max_train_steps=max_train_steps, images_per_step=total_batch, lr_scheduler=scheduler_g,
        validate=validate, resume=resume, emas=[(ema, generator)] if ema is not None else [],
        desc=f"pix2pix {args.direction}", schedulers=schedulers,
    )
    losses: dict[str, torch.Tensor] = {}
    for net in (generator, discriminator):
        if net is not None:
            net.train()

    # A first Ctrl-C ends the loop after the current step, a second one at once (see T.TrainingLoop).
    with loop:
        for epoch in range(resume.first_epoch, num_epochs):
            if loop.should_stop:
                break
            for batch in T.epoch_batches(accelerator, train_dataloader, train_dataset, epoch, resume, args.train_batch_size):
                if line_drawings is not None:
                    batch = line_drawings(batch)
                cond, real = (batch["photo"], batch["sketch"]) if photo2sketch else (batch["sketch"], batch["photo"])
                w = style_weights(batch["style"], cond.device)
                if args.channels_last:
                    cond = cond.contiguous(memory_format=torch.channels_last)
                    real = real.contiguous(memory_format=torch.channels_last)
                # What D is conditioned on: the input, plus the style as constant planes.
                cond_d = cond if w is None else torch.cat([cond, w[:, :, None, None].expand(-1, -1, *cond.shape[-2:])], 1)
                with accelerator.accumulate(*[n for n in (generator, discriminator) if n is not None]):
                    with accelerator.autocast():
                        fake = generator(cond) if w is None else generator(cond, style=w)
                    if use_gan:
                        losses["loss/discriminator"] = T.conditional_d_step(
                            accelerator, discriminator, discriminator_raw, gan_loss, cond_d, fake, real, optimizer_d,
                            scheduler_d, args.max_grad_norm)

                    # G step: fool D on the fake pair, and stay close to the target in L1 (eq. 4).
                    loss_l1 = F.l1_loss(fake.float(), real.float())
                    loss_g = args.lambda_l1 * loss_l1
                    if use_gan:
                        loss_gan, loss_fm = T.conditional_g_losses(accelerator, discriminator_raw, gan_loss, cond_d, fake,
                                                                   real if args.lambda_feature_matching else None)
                        loss_g = loss_g + args.gan_weight * loss_gan
                        losses["loss/gan_generator"] = loss_gan.detach()
                        if loss_fm is not None:  # pix2pixHD eq. 4
                            loss_g = loss_g + args.lambda_feature_matching * loss_fm
                            losses["loss/feature_matching"] = loss_fm.detach()
                    accelerator.backward(loss_g)
                    T.optimizer_step(accelerator, optimizer_g, scheduler_g, generator.parameters(), args.max_grad_norm)
                    losses["loss/l1"] = loss_l1.detach()
                    losses["loss/generator"] = loss_g.detach()

                if not accelerator.sync_gradients:
                    continue
                if loop.end_of_step(epoch, losses):
                    break
    loop.exit_if_interrupted()  # after Ctrl-C / SIGTERM: checkpoint, resume hint, exit 130 / 143

    # ---- end of training: a resumable final checkpoint, a last validation grid, the export
    loop.finish()
    global_step = loop.global_step
    export_dir = None
    if accelerator.is_main_process:
        class_name = type(T.unwrap(generator, accelerator)).__name__
        export_dir = T.export_and_push(
            generator, args, args.direction, accelerator=accelerator, ema=ema,
            card_kwargs=lambda repo_id: _model_card_kwargs(args, class_name, gen_kwargs, repo_id, global_step, len(train_dataset)),
            commit_message=f"pix2pix {args.direction}, {global_step} steps")
    accelerator.end_training()
    return export_dir


def _model_card_kwargs(args, class_name: str, gen_kwargs: dict, repo_id: str | None, steps: int, n_pairs: int) -> dict:
    source, target = ("photo", "sketch") if args.direction == "photo2sketch" else ("sketch", "photo")
    scales = f"{args.num_scales_d}-scale " if args.num_scales_d > 1 else ""
    loss = f"L1 x {args.lambda_l1:g}" + (f" + {args.gan_mode} GAN x {args.gan_weight:g} (conditional {scales}70x70 PatchGAN)"
                                         if args.gan_weight > 0 else " only (no discriminator)")
    if args.gan_weight > 0 and args.lambda_feature_matching:
        loss += f" + feature matching x {args.lambda_feature_matching:g} (pix2pixHD eq. 4)"
    sketches = {"real": "the dataset's drawn sketches", "lines": "classical line drawings of the photos",
                "sparse": "few-stroke sparse drawings of the photos (`classical.sparse_drawing`)",
                "mixed": "drawn sketches and classical line drawings (p=0.5 each)",
                "all": "drawn sketches, classical line drawings and few-stroke sparse drawings (p=1/3 each)"}[args.sketch_source]
    data_name = Path(args.data_pack or args.data_dir).resolve().name
    styles = gen_kwargs.get("styles")
    if styles:
        sketches += f"; one model for the styles {', '.join(styles)} (`style=` at inference)"
    return T.model_card_kwargs(
        args,
        title=f"photosketch pix2pix {source} → {target} ({args.generator})",
        summary=f"A {source} → {target} face generator trained with pix2pix on paired data.",
        method=f"pix2pix (Isola et al. 2017), {source} -> {target}, trained with `train/pix2pix.py`:",
        data=f"`{data_name}` ({n_pairs} training pairs), sketches: {sketches}",
        loss=loss, steps=steps, class_name=class_name, gen_kwargs=gen_kwargs, repo_id=repo_id,
    )


if __name__ == "__main__":
    main(parse_args())
