#!/usr/bin/env python
"""Train unpaired photo <-> sketch generators with CycleGAN (Zhu et al. 2017).

Two generators, ``photo2sketch`` (G: photo -> sketch) and ``sketch2photo`` (F: sketch -> photo),
and two PatchGAN discriminators, ``disc_sketch`` (D_Y, real vs. generated sketches) and
``disc_photo`` (D_X, real vs. generated photos). The objective:

- eq. 1, adversarial loss, per direction: L_GAN(G, D_Y) for photo -> sketch and L_GAN(F, D_X) for
  sketch -> photo, in the least-squares form of sec. 4 (``--gan_mode lsgan``);
- eq. 2, cycle-consistency loss: ||F(G(photo)) - photo||_1 + ||G(F(sketch)) - sketch||_1;
- eq. 3, full objective: L_GAN(G, D_Y) + L_GAN(F, D_X) + lambda * L_cyc with lambda = 10
  (``--lambda_cycle``);
- sec. 5.2, identity loss: 0.5 * lambda * (||G(sketch) - sketch||_1 + ||F(photo) - photo||_1)
  (``--lambda_identity 0.5``; 0 turns it off).

The identity loss feeds each generator an image of its *output* domain. With 3-channel sketches
that is the plain identity. With 1-channel sketches (the default) the channel counts differ, so:
``photo2sketch`` gets the sketch repeated to 3 channels (a grey RGB image, what a grayscale photo
looks like to it) and must return the sketch; ``sketch2photo`` gets the luminance of the photo
(ITU-R 601, as PIL's ``convert("L")``, the only single-channel view of it) and must return the
photo itself. The second term is thus a colourisation term rather than an exact identity: it still
keeps ``sketch2photo`` from shifting the tone of its input, which is what sec. 5.2 wants.

Discriminators see a history of 50 generated images each (``--pool_size``, sec. 4); Adam
(2e-4, betas 0.5/0.999) with the LR constant for the first half and then decayed linearly to 0.

    python train/cyclegan.py --data_dir data/unpaired --output_dir runs/cyclegan
    python train/cyclegan.py --photo_dir faces/ --sketch_dir drawings/ --output_dir runs/cyclegan
    accelerate launch train/cyclegan.py --data_dir data/unpaired --mixed_precision bf16 ...

Data: ``DIR/train/{photos,sketches}`` (or ``DIR/{photos,sketches}``); photos and sketches need not
correspond. Validation grids (photo | fake sketch | reconstructed photo, and sketch | fake photo |
reconstructed sketch) use ``DIR/val`` when it exists, else the first training images, unaugmented;
``DIR/test`` is never used. At the end both generators are exported with ``save_pretrained`` to
``OUTPUT_DIR/photo2sketch/`` and ``OUTPUT_DIR/sketch2photo/``.
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
from photosketch.data import PHOTO_DIR, SKETCH_DIR, UnpairedDataset, split_root  # noqa: E402
from photosketch.models import PatchDiscriminator  # noqa: E402

logger = get_logger(__name__)

PHOTO_CHANNELS = 3
DIRECTIONS = ("photo2sketch", "sketch2photo")
# ITU-R 601 luma weights (PIL's convert("L")); they sum to 1, so they apply unchanged to [-1, 1] tensors.
_LUMA = (0.299, 0.587, 0.114)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train CycleGAN photo<->sketch generators on unpaired data (Zhu et al. 2017).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    T.add_common_args(parser, data_dir_required=False)
    g = parser.add_argument_group("cyclegan")
    g.add_argument("--photo_dir", type=str, default=None, help="Training photos (with --sketch_dir, instead of --data_dir).")
    g.add_argument("--sketch_dir", type=str, default=None, help="Training sketches (with --photo_dir, instead of --data_dir).")
    g.add_argument("--gan_mode", type=str, default="lsgan", choices=("lsgan", "vanilla"),
                   help="lsgan: least squares (CycleGAN sec. 4); vanilla: cross-entropy (eq. 1 as written).")
    g.add_argument("--lambda_cycle", type=float, default=10.0, help="lambda of eq. 3: weight of the cycle loss (eq. 2).")
    g.add_argument("--lambda_identity", type=float, default=0.5,
                   help="Identity loss weight relative to --lambda_cycle (sec. 5.2: 0.5); 0 = off.")
    g.add_argument("--pool_size", type=int, default=50, help="Generated images each discriminator keeps (sec. 4); 0 = off.")
    g.add_argument("--norm_d", type=str, default="instance", choices=("instance", "batch", "none"),
                   help="Discriminator norm (real and generated images go through D in one batch).")
    parser.set_defaults(generator="resnet")
    for action in parser._actions:
        if action.dest == "n_blocks":
            action.help = "Residual blocks; default: 9 at --resolution >= 256, else 6 (CycleGAN appendix 7.2)."
        elif action.dest == "face_crop":
            action.help = "Not available for unpaired data (the CycleGAN trainer rejects it)."
    return parser


def resolve_data_dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The training photo and sketch folders from --photo_dir/--sketch_dir or --data_dir[/train]."""
    if args.photo_dir or args.sketch_dir:
        return Path(args.photo_dir), Path(args.sketch_dir)
    base = split_root(args.data_dir, "train")
    return base / PHOTO_DIR, base / SKETCH_DIR


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.photo_dir) != bool(args.sketch_dir):
        parser.error("--photo_dir and --sketch_dir go together")
    if args.photo_dir and args.data_dir:
        parser.error("give either --data_dir or --photo_dir + --sketch_dir, not both")
    if not args.photo_dir and not args.data_dir:
        parser.error("the training data: --data_dir DIR, or --photo_dir + --sketch_dir")
    T.check_common_args(parser, args)
    T.refuse_args(parser, args, ("data_pack", "style_conditioning", "init_weights"), "train/cyclegan.py")
    if args.face_crop:
        parser.error("--face_crop: not supported for unpaired data yet; crop the images beforehand")
    if args.pool_size < 0:
        parser.error("--pool_size must be >= 0")
    if args.n_blocks is None and args.generator == "resnet":
        args.n_blocks = 9 if args.resolution >= 256 else 6  # CycleGAN appendix 7.2: 9 blocks at 256 px, 6 at 128 px
    try:  # list the data now: a bad folder is a one-line usage error, not a traceback mid-run
        args.train_photo_dir, args.train_sketch_dir = (str(p) for p in resolve_data_dirs(args))
        UnpairedDataset(args.train_photo_dir, args.train_sketch_dir, resolution=args.resolution,
                        sketch_channels=args.sketch_channels, augment=False)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"{'--data_dir' if args.data_dir else '--photo_dir/--sketch_dir'}: {exc}")
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/cyclegan.py")
    return args


def luminance(photo: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma in the same [-1, 1] range."""
    w = photo.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (photo * w).sum(1, keepdim=True)


def main(args: argparse.Namespace) -> dict[str, Path] | None:
    output_dir = Path(args.output_dir)
    # Also sets up logging, the seed and TF32, and writes OUTPUT_DIR/training_args.json.
    accelerator = T.init_accelerator(args)

    # ---- data
    sketch_ch = args.sketch_channels
    train_dataset = UnpairedDataset(
        args.train_photo_dir, args.train_sketch_dir, resolution=args.resolution, photo_channels=PHOTO_CHANNELS,
        sketch_channels=sketch_ch, augment=args.augment, seed=args.seed,
    )
    train_dataloader = T.make_train_dataloader(train_dataset, args, accelerator.num_processes)
    val_photos, val_sketches, val_source = T.validation_images(
        args.num_validation_images, resolution=args.resolution, sketch_channels=sketch_ch, seed=args.seed,
        data_dir=args.data_dir, photo_dir=args.train_photo_dir, sketch_dir=args.train_sketch_dir, paired=False,
    )

    # ---- models
    gen_kwargs = {"photo2sketch": T.generator_kwargs(args, PHOTO_CHANNELS, sketch_ch),
                  "sketch2photo": T.generator_kwargs(args, sketch_ch, PHOTO_CHANNELS)}
    photo2sketch = T.build_generator_from_args(args, PHOTO_CHANNELS, sketch_ch)
    sketch2photo = T.build_generator_from_args(args, sketch_ch, PHOTO_CHANNELS)
    disc_photo = T.init_weights(PatchDiscriminator(PHOTO_CHANNELS, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d))
    disc_sketch = T.init_weights(PatchDiscriminator(sketch_ch, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d))
    if args.channels_last:
        for net in (photo2sketch, sketch2photo, disc_photo, disc_sketch):
            net.to(memory_format=torch.channels_last)
    emas = {}
    if args.use_ema:
        from diffusers.training_utils import EMAModel

        emas = {"photo2sketch": EMAModel(photo2sketch.parameters(), decay=args.ema_decay),
                "sketch2photo": EMAModel(sketch2photo.parameters(), decay=args.ema_decay)}

    # One optimizer for both generators and one for both discriminators, as in the reference code.
    adam = dict(lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay)
    optimizer_g = torch.optim.Adam([*photo2sketch.parameters(), *sketch2photo.parameters()], **adam)
    optimizer_d = torch.optim.Adam([*disc_photo.parameters(), *disc_sketch.parameters()], **adam)

    # ---- schedule (step counts as in the diffusers examples: per process, then x num_processes)
    max_train_steps = T.max_train_steps_from_args(args, len(train_dataloader), accelerator.num_processes)
    scheduler_g = T.lr_scheduler_from_args(args, optimizer_g, max_train_steps, accelerator.num_processes)
    scheduler_d = T.lr_scheduler_from_args(args, optimizer_d, max_train_steps, accelerator.num_processes)

    if args.compile:
        photo2sketch, sketch2photo = torch.compile(photo2sketch), torch.compile(sketch2photo)
        disc_photo, disc_sketch = torch.compile(disc_photo), torch.compile(disc_sketch)

    # Checkpoint files follow this order: model.safetensors = photo2sketch, model_1 = sketch2photo,
    # model_2 = disc_photo, model_3 = disc_sketch.
    (photo2sketch, sketch2photo, disc_photo, disc_sketch, optimizer_g, optimizer_d, train_dataloader, scheduler_g,
     scheduler_d) = accelerator.prepare(photo2sketch, sketch2photo, disc_photo, disc_sketch, optimizer_g, optimizer_d,
                                        train_dataloader, scheduler_g, scheduler_d)
    state = T.TrainState()
    # The pools' contents (and, through accelerate, the RNG they draw from) are part of a resumable run.
    pool_photo, pool_sketch = T.ImagePool(args.pool_size), T.ImagePool(args.pool_size)
    for obj in (state, pool_photo, pool_sketch, *emas.values()):
        accelerator.register_for_checkpointing(obj)
    for ema in emas.values():
        ema.to(accelerator.device)
    gan_loss = T.GANLoss(args.gan_mode)
    # The generator step runs the discriminators unwrapped (no DDP hooks) with their parameters
    # frozen: they get no gradient from it, and DDP never sees a forward without a matching backward.
    disc_photo_raw, disc_sketch_raw = T.unwrap(disc_photo, accelerator), T.unwrap(disc_sketch, accelerator)
    generators = {"photo2sketch": photo2sketch, "sketch2photo": sketch2photo}
    lambda_idt = args.lambda_identity * args.lambda_cycle

    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)

    T.init_trackers(accelerator, args, "cyclegan")

    # ---- resume (models, optimizers, schedulers, RNGs, the sampler's epoch, state, pools and EMAs)
    resume = T.resume_from_checkpoint(accelerator, args, state, (scheduler_g, scheduler_d), steps_per_epoch)
    if resume.checkpoint is not None:
        for pool in (pool_photo, pool_sketch):  # loaded on the CPU
            pool.to(accelerator.device)

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        "cyclegan: %d photos, %d sketches, %d epochs of %d items, %d steps (batch %d total = %d per device x %d "
        "processes x %d accumulation), generators %s %s; validation images from %s",
        len(train_dataset.photos), len(train_dataset.sketches), num_epochs, len(train_dataset), max_train_steps,
        total_batch, args.train_batch_size, accelerator.num_processes, args.gradient_accumulation_steps, args.generator,
        gen_kwargs["photo2sketch"], val_source, main_process_only=True,
    )

    def validate(step: int) -> None:
        nets = {name: T.unwrap(net, accelerator) for name, net in generators.items()}
        was_training = {name: net.training for name, net in nets.items()}
        for name, net in nets.items():
            net.eval()
            if name in emas:
                emas[name].store(net.parameters())
                emas[name].copy_to(net.parameters())
        with torch.no_grad(), accelerator.autocast():
            real_photo, real_sketch = val_photos.to(accelerator.device), val_sketches.to(accelerator.device)
            fake_sketch = nets["photo2sketch"](real_photo)
            rec_photo = nets["sketch2photo"](fake_sketch)
            fake_photo = nets["sketch2photo"](real_sketch)
            rec_sketch = nets["photo2sketch"](fake_photo)
        for name, net in nets.items():
            if name in emas:
                emas[name].restore(net.parameters())
            net.train(was_training[name])
        cpu = [t.float().cpu() for t in (fake_sketch, rec_photo, fake_photo, rec_sketch)]
        # Rows: photo | fake sketch | reconstructed photo, then sketch | fake photo | reconstructed sketch.
        grids = {
            "photo2sketch2photo": T.save_validation_grid(val_photos, cpu[0], cpu[1],
                                                         output_dir / "validation" / f"step-{step}-photo.png"),
            "sketch2photo2sketch": T.save_validation_grid(val_sketches, cpu[2], cpu[3],
                                                          output_dir / "validation" / f"step-{step}-sketch.png"),
        }
        for tag, grid in grids.items():
            T.log_validation_images(accelerator, f"validation/{tag}", grid, step)

    # Progress bar, logging, checkpoints, validation grids and Ctrl-C around the steps below.
    loop = T.TrainingLoop(
        accelerator, args, state, max_train_steps=max_train_steps, images_per_step=total_batch, lr_scheduler=scheduler_g,
        validate=validate, resume=resume, emas=[(ema, generators[name]) for name, ema in emas.items()], desc="cyclegan",
        progress_skip=("loss/generator",),  # the bar has room for the terms, not their sum
        schedulers=(scheduler_g, scheduler_d),
    )
    losses: dict[str, torch.Tensor] = {}
    for net in (photo2sketch, sketch2photo, disc_photo, disc_sketch):
        net.train()

    # A first Ctrl-C ends the loop after the current step, a second one at once (see T.TrainingLoop).
    with loop:
        for epoch in range(resume.first_epoch, num_epochs):
            if loop.should_stop:
                break
            for batch in T.epoch_batches(accelerator, train_dataloader, train_dataset, epoch, resume):
                real_photo, real_sketch = batch["photo"], batch["sketch"]
                if args.channels_last:
                    real_photo = real_photo.contiguous(memory_format=torch.channels_last)
                    real_sketch = real_sketch.contiguous(memory_format=torch.channels_last)
                with accelerator.accumulate(photo2sketch, sketch2photo, disc_photo, disc_sketch):
                    # ---- generators: eq. 3 (+ the sec. 5.2 identity term), discriminators frozen
                    T.set_requires_grad([disc_photo_raw, disc_sketch_raw], False)
                    with accelerator.autocast():
                        fake_sketch = photo2sketch(real_photo)
                        rec_photo = sketch2photo(fake_sketch)
                        fake_photo = sketch2photo(real_sketch)
                        rec_sketch = photo2sketch(fake_photo)
                        # eq. 1, generator side: make D_Y / D_X call the fakes real
                        loss_gan_p2s = gan_loss(disc_sketch_raw(fake_sketch), True)
                        loss_gan_s2p = gan_loss(disc_photo_raw(fake_photo), True)
                    # eq. 2: cycle consistency, forward (photo) and backward (sketch) cycles
                    loss_cycle_photo = F.l1_loss(rec_photo.float(), real_photo.float())
                    loss_cycle_sketch = F.l1_loss(rec_sketch.float(), real_sketch.float())
                    loss_g = loss_gan_p2s + loss_gan_s2p + args.lambda_cycle * (loss_cycle_photo + loss_cycle_sketch)
                    if lambda_idt > 0:
                        # sec. 5.2: a generator fed an image of its output domain should return it
                        # (with 1-channel sketches: see the module docstring).
                        sketch_in = real_sketch if sketch_ch == PHOTO_CHANNELS else real_sketch.repeat(1, PHOTO_CHANNELS, 1, 1)
                        photo_in = real_photo if sketch_ch == PHOTO_CHANNELS else luminance(real_photo)
                        with accelerator.autocast():
                            idt_sketch = photo2sketch(sketch_in)
                            idt_photo = sketch2photo(photo_in)
                        loss_idt_sketch = F.l1_loss(idt_sketch.float(), real_sketch.float())
                        loss_idt_photo = F.l1_loss(idt_photo.float(), real_photo.float())
                        loss_g = loss_g + lambda_idt * (loss_idt_photo + loss_idt_sketch)
                        losses["loss/identity_photo"] = loss_idt_photo.detach()
                        losses["loss/identity_sketch"] = loss_idt_sketch.detach()
                    accelerator.backward(loss_g)
                    if args.max_grad_norm and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_([*photo2sketch.parameters(), *sketch2photo.parameters()],
                                                    args.max_grad_norm)
                    optimizer_g.step()
                    scheduler_g.step()
                    optimizer_g.zero_grad(set_to_none=True)

                    # ---- discriminators: real -> 1, pooled fakes -> 0, halved (sec. 7.1); one
                    # forward over fake + real so DDP sees a single forward per backward.
                    T.set_requires_grad([disc_photo_raw, disc_sketch_raw], True)
                    old_fake_sketch = pool_sketch.query(fake_sketch.detach())
                    old_fake_photo = pool_photo.query(fake_photo.detach())
                    with accelerator.autocast():
                        pred_fake, pred_real = disc_sketch(torch.cat([old_fake_sketch, real_sketch], 0)).chunk(2)
                        loss_d_sketch = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
                        pred_fake, pred_real = disc_photo(torch.cat([old_fake_photo, real_photo], 0)).chunk(2)
                        loss_d_photo = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
                    accelerator.backward(loss_d_sketch + loss_d_photo)
                    if args.max_grad_norm and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_([*disc_photo.parameters(), *disc_sketch.parameters()],
                                                    args.max_grad_norm)
                    optimizer_d.step()
                    scheduler_d.step()
                    optimizer_d.zero_grad(set_to_none=True)

                    losses.update({
                        "loss/gan_photo2sketch": loss_gan_p2s.detach(),
                        "loss/gan_sketch2photo": loss_gan_s2p.detach(),
                        "loss/cycle_photo": loss_cycle_photo.detach(),
                        "loss/cycle_sketch": loss_cycle_sketch.detach(),
                        "loss/disc_photo": loss_d_photo.detach(),
                        "loss/disc_sketch": loss_d_sketch.detach(),
                        "loss/generator": loss_g.detach(),
                    })

                if not accelerator.sync_gradients:
                    continue
                if loop.end_of_step(epoch, losses):
                    break
    loop.exit_if_interrupted()  # after Ctrl-C / SIGTERM: checkpoint, resume hint, exit 130 / 143

    # ---- end of training: a resumable final checkpoint, a last validation grid, both exports
    loop.finish()
    global_step = loop.global_step
    exports: dict[str, Path] | None = None
    if accelerator.is_main_process:
        exports = {}
        for name in DIRECTIONS:
            export_dir = output_dir / name
            repo_id = f"{args.hub_model_id}-{name}" if args.hub_model_id else T.default_hub_model_id(output_dir, name)
            class_name = type(T.unwrap(generators[name], accelerator)).__name__
            card_repo_id = repo_id if (args.push_to_hub or args.hub_model_id) else None
            card = _model_card_kwargs(args, name, class_name, gen_kwargs[name], card_repo_id, global_step, train_dataset)
            T.export_generator(generators[name], export_dir, card, ema=emas.get(name), accelerator=accelerator)
            logger.info("exported %s to %s", name, export_dir)
            exports[name] = export_dir
            if args.push_to_hub:
                url = T.push_folder_to_hub(export_dir, repo_id, token=args.hub_token,
                                           commit_message=f"CycleGAN {name}, {global_step} steps")
                logger.info("pushed %s to %s", name, url)
    accelerator.end_training()
    return exports


def _model_card_kwargs(args, direction: str, class_name: str, gen_kwargs: dict, repo_id: str | None, steps: int,
                       dataset: UnpairedDataset) -> dict:
    source, target = ("photo", "sketch") if direction == "photo2sketch" else ("sketch", "photo")
    data = (f"`{Path(args.data_dir).resolve().name}`" if args.data_dir
            else f"`{Path(args.photo_dir).resolve().name}` + `{Path(args.sketch_dir).resolve().name}`")
    loss = (f"{args.gan_mode} GAN (70x70 PatchGAN) + cycle L1 x {args.lambda_cycle:g}"
            + (f" + identity L1 x {args.lambda_identity * args.lambda_cycle:g}" if args.lambda_identity > 0 else ""))
    return T.model_card_kwargs(
        args,
        title=f"photosketch CycleGAN {source} → {target} ({args.generator})",
        summary=f"A {source} → {target} face generator trained with CycleGAN on unpaired photos and sketches.",
        method=f"CycleGAN (Zhu et al. 2017) on unpaired data, {source} -> {target} generator, trained with "
               f"`train/cyclegan.py` together with the opposite direction:",
        data=f"{data} ({len(dataset.photos)} photos, {len(dataset.sketches)} sketches, unpaired)",
        loss=f"{loss}, image pool {args.pool_size}",
        steps=steps, class_name=class_name, gen_kwargs=gen_kwargs, repo_id=repo_id,
    )


if __name__ == "__main__":
    main(parse_args())
