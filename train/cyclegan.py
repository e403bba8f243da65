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
import sys
from pathlib import Path

# Run from a checkout without `pip install -e .`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if (_REPO_ROOT / "photosketch").is_dir() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from photosketch import training as T  # noqa: E402
from photosketch.data import UnpairedDataset  # noqa: E402
from photosketch.image import luminance  # noqa: E402

PHOTO_CHANNELS = 3
DIRECTIONS = ("photo2sketch", "sketch2photo")


def build_parser() -> argparse.ArgumentParser:
    parser, g = T.trainer_parser("Train CycleGAN photo<->sketch generators on unpaired data (Zhu et al. 2017).", "cyclegan")
    g.add_argument("--photo_dir", type=str, default=None, help="Training photos (with --sketch_dir, instead of --data_dir).")
    g.add_argument("--sketch_dir", type=str, default=None, help="Training sketches (with --photo_dir, instead of --data_dir).")
    g.add_argument("--lambda_cycle", type=float, default=10.0, help="lambda of eq. 3: weight of the cycle loss (eq. 2).")
    g.add_argument("--lambda_identity", type=float, default=0.5,
                   help="Identity loss weight relative to --lambda_cycle (sec. 5.2: 0.5); 0 = off.")
    g.add_argument("--pool_size", type=int, default=50, help="Generated images each discriminator keeps (sec. 4); 0 = off.")
    T.add_gan_args(g, gan_mode="lsgan", judged="real and generated images")  # --gan_mode (sec. 4: lsgan), --norm_d
    parser.set_defaults(generator="resnet")
    for action in parser._actions:
        if action.dest == "n_blocks":
            action.help = "Residual blocks; default: 9 at --resolution >= 256, else 6 (CycleGAN appendix 7.2)."
        elif action.dest == "face_crop":
            action.help = "Not available for unpaired data (the CycleGAN trainer rejects it)."
    return parser


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
    T.refuse_args(parser, args, ("data_pack", "style_conditioning", "init_weights", "grow_init"), "train/cyclegan.py")
    if args.face_crop:
        parser.error("--face_crop: not supported for unpaired data yet; crop the images beforehand")
    if args.pool_size < 0:
        parser.error("--pool_size must be >= 0")
    if args.n_blocks is None and args.generator == "resnet":
        args.n_blocks = 9 if args.resolution >= 256 else 6  # CycleGAN appendix 7.2: 9 blocks at 256 px, 6 at 128 px
    T.check_unpaired_data(parser, args)  # sets args.train_photo_dir / train_sketch_dir
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/cyclegan.py")
    return args


def main(args: argparse.Namespace) -> dict[str, Path] | None:
    run = T.Run(args, "cyclegan")
    accelerator = run.accelerator
    sketch_ch = args.sketch_channels
    data = T.unpaired_train_data(args, accelerator, PHOTO_CHANNELS)
    val_photos, val_sketches, val_source = T.unpaired_validation(args)

    # ---- models: G (photo2sketch), F (sketch2photo), D_X (disc_photo) and D_Y (disc_sketch). prepare()'s
    # order names the checkpoint files: model.safetensors = photo2sketch, model_1 = sketch2photo, model_2 =
    # disc_photo, model_3 = disc_sketch. One optimizer for both G and one for both D, as in the reference code.
    gen_kwargs = {"photo2sketch": T.generator_kwargs(args, PHOTO_CHANNELS, sketch_ch),
                  "sketch2photo": T.generator_kwargs(args, sketch_ch, PHOTO_CHANNELS)}
    photo2sketch = T.build_generator_from_args(args, PHOTO_CHANNELS, sketch_ch)
    sketch2photo = T.build_generator_from_args(args, sketch_ch, PHOTO_CHANNELS)
    disc_photo, disc_sketch = T.build_discriminator(args, PHOTO_CHANNELS), T.build_discriminator(args, sketch_ch)
    # The pools' contents (and, through accelerate, the RNG they draw from) are part of a resumable run.
    pool_photo, pool_sketch = T.ImagePool(args.pool_size), T.ImagePool(args.pool_size)
    nets = {"photo2sketch": photo2sketch, "sketch2photo": sketch2photo, "disc_photo": disc_photo, "disc_sketch": disc_sketch}
    p = run.prepare(data, models=nets, optimizers={"g": [*photo2sketch.parameters(), *sketch2photo.parameters()],
                                                   "d": [*disc_photo.parameters(), *disc_sketch.parameters()]},
                    ema_of=DIRECTIONS, checkpointed=(pool_photo, pool_sketch))
    photo2sketch, sketch2photo, disc_photo, disc_sketch = (p[name] for name in nets)
    gan_loss = T.GANLoss(args.gan_mode)
    # The generator step runs the discriminators unwrapped (no DDP hooks) with their parameters
    # frozen: they get no gradient from it, and DDP never sees a forward without a matching backward.
    disc_photo_raw, disc_sketch_raw = T.unwrap(disc_photo, accelerator), T.unwrap(disc_sketch, accelerator)
    lambda_idt = args.lambda_identity * args.lambda_cycle
    run.log_plan(f"cyclegan: {len(data.dataset.photos)} photos, {len(data.dataset.sketches)} sketches, epochs of "
                 f"{len(data.dataset)} items, generators {args.generator} {gen_kwargs['photo2sketch']}; "
                 f"validation images from {val_source}")

    def step(batch: dict) -> dict[str, torch.Tensor]:
        real_photo, real_sketch = batch["photo"], batch["sketch"]
        if args.channels_last:
            real_photo = real_photo.contiguous(memory_format=torch.channels_last)
            real_sketch = real_sketch.contiguous(memory_format=torch.channels_last)
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
        losses = {}
        if lambda_idt > 0:
            # sec. 5.2: a generator fed an image of its output domain should return it
            # (with 1-channel sketches: see the module docstring).
            sketch_in = real_sketch if sketch_ch == PHOTO_CHANNELS else real_sketch.repeat(1, PHOTO_CHANNELS, 1, 1)
            photo_in = real_photo if sketch_ch == PHOTO_CHANNELS else luminance(real_photo)
            with accelerator.autocast():
                idt_sketch = photo2sketch(sketch_in)
                idt_photo = sketch2photo(photo_in)
            losses["loss/identity_photo"] = loss_idt_photo = F.l1_loss(idt_photo.float(), real_photo.float())
            losses["loss/identity_sketch"] = loss_idt_sketch = F.l1_loss(idt_sketch.float(), real_sketch.float())
            loss_g = loss_g + lambda_idt * (loss_idt_photo + loss_idt_sketch)
        T.backward_step(accelerator, loss_g, p["optimizer_g"], p["scheduler_g"],
                        [*photo2sketch.parameters(), *sketch2photo.parameters()], args.max_grad_norm)

        # ---- discriminators: real -> 1, pooled fakes -> 0, halved (sec. 7.1); one forward over
        # fake + real so DDP sees a single forward per backward.
        T.set_requires_grad([disc_photo_raw, disc_sketch_raw], True)
        old_fake_sketch = pool_sketch.query(fake_sketch.detach())
        old_fake_photo = pool_photo.query(fake_photo.detach())
        with accelerator.autocast():
            loss_d_sketch = gan_loss.discriminator_loss(*disc_sketch(torch.cat([old_fake_sketch, real_sketch], 0)).chunk(2))
            loss_d_photo = gan_loss.discriminator_loss(*disc_photo(torch.cat([old_fake_photo, real_photo], 0)).chunk(2))
        T.backward_step(accelerator, loss_d_sketch + loss_d_photo, p["optimizer_d"], p["scheduler_d"],
                        [*disc_photo.parameters(), *disc_sketch.parameters()], args.max_grad_norm)
        terms = {"gan_photo2sketch": loss_gan_p2s, "gan_sketch2photo": loss_gan_s2p, "cycle_photo": loss_cycle_photo,
                 "cycle_sketch": loss_cycle_sketch, "disc_photo": loss_d_photo, "disc_sketch": loss_d_sketch, "generator": loss_g}
        return {k: v.detach() for k, v in losses.items()} | {f"loss/{k}": v.detach() for k, v in terms.items()}

    def validate(step: int) -> None:
        with T.eval_weights(accelerator, *[(p[name], run.emas.get(name)) for name in DIRECTIONS]) as (to_sketch, to_photo):
            real_photo, real_sketch = val_photos.to(accelerator.device), val_sketches.to(accelerator.device)
            fake_sketch = to_sketch(real_photo)
            rec_photo = to_photo(fake_sketch)
            fake_photo = to_photo(real_sketch)
            rec_sketch = to_sketch(fake_photo)
        cpu = [t.float().cpu() for t in (fake_sketch, rec_photo, fake_photo, rec_sketch)]
        # Rows: photo | fake sketch | reconstructed photo, then sketch | fake photo | reconstructed sketch.
        run.save_grid(step, [val_photos, cpu[0], cpu[1]], suffix="-photo", tag="validation/photo2sketch2photo")
        run.save_grid(step, [val_sketches, cpu[2], cpu[3]], suffix="-sketch", tag="validation/sketch2photo2sketch")

    run.fit(step, validate, desc="cyclegan", progress_skip=("loss/generator",))  # the bar shows the terms
    cards = {name: (name, _model_card(args, name, gen_kwargs[name], data.dataset)) for name in DIRECTIONS}
    exports = run.finish("CycleGAN", cards, repo_suffix=True)  # both exports (and pushes), then the end
    return exports if accelerator.is_main_process else None


def _model_card(args, direction: str, gen_kwargs: dict, dataset: UnpairedDataset) -> dict:
    """The model card fields of this trainer (photosketch.training.export.model_card_kwargs)."""
    source, target = ("photo", "sketch") if direction == "photo2sketch" else ("sketch", "photo")
    data = (f"`{Path(args.data_dir).resolve().name}`" if args.data_dir
            else f"`{Path(args.photo_dir).resolve().name}` + `{Path(args.sketch_dir).resolve().name}`")
    loss = (f"{args.gan_mode} GAN (70x70 PatchGAN) + cycle L1 x {args.lambda_cycle:g}"
            + (f" + identity L1 x {args.lambda_identity * args.lambda_cycle:g}" if args.lambda_identity > 0 else ""))
    return dict(
        title=f"photosketch CycleGAN {source} → {target} ({args.generator})",
        summary=f"A {source} → {target} face generator trained with CycleGAN on unpaired photos and sketches.",
        method=f"CycleGAN (Zhu et al. 2017) on unpaired data, {source} -> {target} generator, trained with "
               f"`train/cyclegan.py` together with the opposite direction:",
        data=f"{data} ({len(dataset.photos)} photos, {len(dataset.sketches)} sketches, unpaired)",
        loss=f"{loss}, image pool {args.pool_size}",
        gen_kwargs=gen_kwargs,
    )


if __name__ == "__main__":
    main(parse_args())
