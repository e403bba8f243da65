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
import json
import logging
import math
import signal
import sys
import threading
from pathlib import Path

# Run from a checkout without `pip install -e .`.
_REPO_ROOT = Path(__file__).resolve().parent.parent
if (_REPO_ROOT / "photosketch").is_dir() and str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.logging import get_logger  # noqa: E402
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

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
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=T.tracker_names(args.report_to),
        # Checkpoints are named checkpoint-{step} by T.save_checkpoint, not by accelerate's automatic
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
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")

    # ---- data
    sketch_ch = args.sketch_channels
    train_dataset = UnpairedDataset(
        args.train_photo_dir, args.train_sketch_dir, resolution=args.resolution, photo_channels=PHOTO_CHANNELS,
        sketch_channels=sketch_ch, augment=args.augment, seed=args.seed,
    )
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        drop_last=len(train_dataset) >= args.train_batch_size * accelerator.num_processes,
        pin_memory=torch.cuda.is_available(),
        # Worker base seeds come from here, not from the global RNG that the image pools use.
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_photos, val_sketches, val_source = T.validation_images(
        args.num_validation_images, resolution=args.resolution, sketch_channels=sketch_ch, seed=args.seed,
        data_dir=args.data_dir, photo_dir=args.train_photo_dir, sketch_dir=args.train_sketch_dir, paired=False,
    )

    # ---- models
    gen_kwargs = {"photo2sketch": T.generator_kwargs(args, PHOTO_CHANNELS, sketch_ch),
                  "sketch2photo": T.generator_kwargs(args, sketch_ch, PHOTO_CHANNELS)}
    photo2sketch = T.init_weights(T.build_generator_from_args(args, PHOTO_CHANNELS, sketch_ch))
    sketch2photo = T.init_weights(T.build_generator_from_args(args, sketch_ch, PHOTO_CHANNELS))
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
    steps_per_epoch = math.ceil(math.ceil(len(train_dataloader) / accelerator.num_processes) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    sched_kwargs = dict(num_training_steps=max_train_steps * accelerator.num_processes,
                        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                        decay_start_fraction=args.decay_start_fraction)
    scheduler_g = T.get_lr_scheduler(args.lr_scheduler, optimizer_g, **sched_kwargs)
    scheduler_d = T.get_lr_scheduler(args.lr_scheduler, optimizer_d, **sched_kwargs)

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

    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("cyclegan", config=config)
    jsonl = T.JsonlLogger(output_dir / "logs.jsonl", enabled=accelerator.is_main_process)

    # ---- resume
    first_epoch, skip_batches = 0, 0
    checkpoint = T.resolve_resume_checkpoint(output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and checkpoint is None:
        logger.info("no checkpoint in %s; starting a new run", output_dir, main_process_only=True)
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint, main_process_only=True)
        accelerator.load_state(str(checkpoint))
        for s in (scheduler_g, scheduler_d):  # this run's --max_train_steps decides the LR from here on
            T.sync_scheduler_lr(s)
        for pool in (pool_photo, pool_sketch):
            pool.to(accelerator.device)
        first_epoch = state.global_step // steps_per_epoch
        skip_batches = (state.global_step % steps_per_epoch) * args.gradient_accumulation_steps
    global_step = state.global_step

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        "cyclegan: %d photos, %d sketches, %d epochs of %d items, %d steps (batch %d total = %d per device x %d "
        "processes x %d accumulation), generators %s %s; validation images from %s",
        len(train_dataset.photos), len(train_dataset.sketches), num_epochs, len(train_dataset), max_train_steps,
        total_batch, args.train_batch_size, accelerator.num_processes, args.gradient_accumulation_steps, args.generator,
        gen_kwargs["photo2sketch"], val_source, main_process_only=True,
    )

    # First Ctrl-C: finish the current step, save a checkpoint and stop. A second one aborts.
    stop = {"requested": False}
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        def _on_sigint(signum, frame):
            stop["requested"] = True
            signal.signal(signal.SIGINT, previous_handler or signal.default_int_handler)
            logger.warning("interrupt: saving a checkpoint after this step (Ctrl-C again to abort)")

        previous_handler = signal.signal(signal.SIGINT, _on_sigint)

    def save(step: int) -> Path:
        state.global_step = step
        return T.save_checkpoint(accelerator, output_dir, step, args.checkpoints_total_limit)

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

    progress = tqdm(range(max_train_steps), initial=global_step, desc="cyclegan",
                    disable=not accelerator.is_local_main_process)
    throughput = T.Throughput()
    last_saved = global_step if checkpoint is not None else -1
    interrupted = False
    losses: dict[str, torch.Tensor] = {}
    for net in (photo2sketch, sketch2photo, disc_photo, disc_sketch):
        net.train()

    try:
        for epoch in range(first_epoch, num_epochs):
            if global_step >= max_train_steps:
                break
            train_dataloader.set_epoch(epoch)
            train_dataset.set_epoch(epoch)
            batches = train_dataloader
            if epoch == first_epoch and skip_batches:
                batches = accelerator.skip_first_batches(train_dataloader, skip_batches)
            for batch in batches:
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
                global_step += 1
                state.global_step = global_step
                progress.update(1)
                throughput.add(total_batch)
                for name, ema in emas.items():
                    ema.step(T.unwrap(generators[name], accelerator).parameters())

                if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                    logs = {k: v.item() for k, v in losses.items()}
                    logs["lr"] = scheduler_g.get_last_lr()[0]
                    logs["perf/images_per_s"] = throughput.rate()
                    logs["epoch"] = epoch
                    progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items()
                                          if k.startswith("loss/") and k != "loss/generator"})
                    accelerator.log(logs, step=global_step)
                    jsonl.log(logs, step=global_step)
                if args.checkpointing_steps and global_step % args.checkpointing_steps == 0:
                    save(global_step)
                    last_saved = global_step
                if args.validation_steps and global_step % args.validation_steps == 0 and accelerator.is_main_process:
                    validate(global_step)

                if stop["requested"]:
                    accelerator.set_trigger()
                if accelerator.check_trigger():
                    interrupted = True
                    break
                if global_step >= max_train_steps:
                    break
            if interrupted:
                break
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the step loop
        interrupted = True
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
        progress.close()

    if interrupted:
        if global_step > 0 and last_saved != global_step:
            path = save(global_step)
            logger.warning("interrupted at step %d; resume with --resume_from_checkpoint %s", global_step, path,
                           main_process_only=True)
        accelerator.end_training()
        raise SystemExit(130)

    # ---- end of training: a resumable final checkpoint, a last validation grid, both exports
    if args.checkpointing_steps and last_saved != global_step:
        save(global_step)
    accelerator.wait_for_everyone()
    exports: dict[str, Path] | None = None
    if accelerator.is_main_process:
        if args.validation_steps and global_step % args.validation_steps != 0:
            validate(global_step)
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
    training = "\n".join([
        f"CycleGAN (Zhu et al. 2017) on unpaired data, {source} -> {target} generator, trained with `train/cyclegan.py`"
        f" together with the opposite direction:",
        "",
        "```bash",
        args.command,
        "```",
        "",
        f"- data: {data} ({len(dataset.photos)} photos, {len(dataset.sketches)} sketches, unpaired)",
        f"- steps: {steps}, resolution: {args.resolution}x{args.resolution}, batch size: "
        f"{args.train_batch_size} x {args.gradient_accumulation_steps} accumulation",
        f"- loss: {loss}, image pool {args.pool_size}",
        f"- optimiser: Adam lr {args.learning_rate:g}, betas ({args.adam_beta1:g}, {args.adam_beta2:g}), "
        f"schedule `{args.lr_scheduler}`" + (", EMA weights" if args.use_ema else ""),
        f"- seed: {args.seed}, mixed precision: {args.mixed_precision or 'no'}",
    ])
    return {
        "title": f"photosketch CycleGAN {source} → {target} ({args.generator})",
        "summary": f"A {source} → {target} face generator trained with CycleGAN on unpaired photos and sketches.",
        "repo_id": repo_id,
        "class_name": class_name,
        "architecture": f"`{class_name}` with `{json.dumps(gen_kwargs, sort_keys=True)}`.",
        "training": training,
    }


if __name__ == "__main__":
    main(parse_args())
