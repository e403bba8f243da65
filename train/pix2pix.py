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
``save_pretrained`` to ``OUTPUT_DIR/<direction>/`` at the end.
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
from photosketch.data import SKETCH_SOURCES, PairedDataset  # noqa: E402
from photosketch.models import PatchDiscriminator  # noqa: E402

logger = get_logger(__name__)

DIRECTIONS = ("photo2sketch", "sketch2photo")
PHOTO_CHANNELS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a pix2pix photo<->sketch generator (Isola et al. 2017).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    T.add_common_args(parser)
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
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    T.check_common_args(parser, args)
    try:  # list the data now: a bad --data_dir is a one-line usage error, not a traceback mid-run
        PairedDataset(args.data_dir, split="train", resolution=args.resolution, sketch_channels=args.sketch_channels,
                      augment=False, sketch_source=args.sketch_source)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--data_dir: {exc}")
    args.command = T.format_command(sys.argv[1:] if argv is None else argv, "train/pix2pix.py")
    return args


def _validation_batch(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(inputs, targets, source): the first --num_validation_images pairs of DIR/val, else of the
    training pairs, unaugmented (``training.validation_images``; DIR/test is never shown)."""
    photos, sketches, source = T.validation_images(
        args.num_validation_images, resolution=args.resolution, sketch_channels=args.sketch_channels, seed=args.seed,
        data_dir=args.data_dir, paired=True, sketch_source=args.sketch_source,
    )
    return (photos, sketches, source) if args.direction == "photo2sketch" else (sketches, photos, source)


def main(args: argparse.Namespace) -> Path | None:
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
    photo2sketch = args.direction == "photo2sketch"
    in_ch, out_ch = (PHOTO_CHANNELS, args.sketch_channels) if photo2sketch else (args.sketch_channels, PHOTO_CHANNELS)
    train_dataset = PairedDataset(
        args.data_dir, split="train", resolution=args.resolution, photo_channels=PHOTO_CHANNELS,
        sketch_channels=args.sketch_channels, augment=args.augment, sketch_source=args.sketch_source,
        face_crop=args.face_crop, seed=args.seed,
    )
    train_dataloader = torch.utils.data.DataLoader(
        train_dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        drop_last=len(train_dataset) >= args.train_batch_size * accelerator.num_processes,
        pin_memory=torch.cuda.is_available(),
        # Worker base seeds come from here, not from the global RNG that dropout uses: a resumed
        # run then draws the same dropout masks as an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_inputs, val_targets, val_source = _validation_batch(args)

    # ---- models
    gen_kwargs = T.generator_kwargs(args, in_ch, out_ch)
    generator = T.init_weights(T.build_generator_from_args(args, in_ch, out_ch))
    use_gan = args.gan_weight > 0
    discriminator = (
        T.init_weights(PatchDiscriminator(in_ch + out_ch, ndf=args.ndf, n_layers=args.n_layers_d, norm=args.norm_d))
        if use_gan else None
    )
    nets = [generator] + ([discriminator] if use_gan else [])
    if args.channels_last:
        for net in nets:
            net.to(memory_format=torch.channels_last)
    ema = None
    if args.use_ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(generator.parameters(), decay=args.ema_decay)

    adam = dict(lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), weight_decay=args.adam_weight_decay)
    optimizer_g = torch.optim.Adam(generator.parameters(), **adam)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), **adam) if use_gan else None

    # ---- schedule (step counts as in the diffusers examples: per process, then x num_processes)
    steps_per_epoch = math.ceil(math.ceil(len(train_dataloader) / accelerator.num_processes) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_epochs * steps_per_epoch
    sched_kwargs = dict(num_training_steps=max_train_steps * accelerator.num_processes,
                        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                        decay_start_fraction=args.decay_start_fraction)
    scheduler_g = T.get_lr_scheduler(args.lr_scheduler, optimizer_g, **sched_kwargs)
    scheduler_d = T.get_lr_scheduler(args.lr_scheduler, optimizer_d, **sched_kwargs) if use_gan else None

    if args.compile:
        generator = torch.compile(generator)
        if use_gan:
            discriminator = torch.compile(discriminator)

    if use_gan:
        generator, discriminator, optimizer_g, optimizer_d, train_dataloader, scheduler_g, scheduler_d = accelerator.prepare(
            generator, discriminator, optimizer_g, optimizer_d, train_dataloader, scheduler_g, scheduler_d
        )
    else:
        generator, optimizer_g, train_dataloader, scheduler_g = accelerator.prepare(
            generator, optimizer_g, train_dataloader, scheduler_g
        )
    schedulers = [s for s in (scheduler_g, scheduler_d) if s is not None]
    state = T.TrainState()
    accelerator.register_for_checkpointing(state)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    gan_loss = T.GANLoss(args.gan_mode)
    # The generator step runs D unwrapped (no DDP hooks) with its parameters frozen: D gets no
    # gradient from it, and DDP never sees a forward without a matching backward.
    discriminator_raw = T.unwrap(discriminator, accelerator) if use_gan else None

    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)

    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(f"pix2pix-{args.direction}", config=config)
    jsonl = T.JsonlLogger(output_dir / "logs.jsonl", enabled=accelerator.is_main_process)

    # ---- resume
    first_epoch, skip_batches = 0, 0
    checkpoint = T.resolve_resume_checkpoint(output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and checkpoint is None:
        logger.info("no checkpoint in %s; starting a new run", output_dir, main_process_only=True)
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint, main_process_only=True)
        accelerator.load_state(str(checkpoint))
        for s in schedulers:  # this run's --max_train_steps decides the LR from here on
            T.sync_scheduler_lr(s)
        first_epoch = state.global_step // steps_per_epoch
        skip_batches = (state.global_step % steps_per_epoch) * args.gradient_accumulation_steps
    global_step = state.global_step

    total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        "pix2pix %s: %d pairs, %d epochs, %d steps (batch %d total = %d per device x %d processes x %d accumulation), "
        "generator %s %s; validation images from %s",
        args.direction, len(train_dataset), num_epochs, max_train_steps, total_batch, args.train_batch_size,
        accelerator.num_processes, args.gradient_accumulation_steps, args.generator, gen_kwargs, val_source,
        main_process_only=True,
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
        net = T.unwrap(generator, accelerator)
        was_training = net.training
        net.eval()
        if ema is not None:
            ema.store(net.parameters())
            ema.copy_to(net.parameters())
        with torch.no_grad(), accelerator.autocast():
            outputs = net(val_inputs.to(accelerator.device)).float().cpu()
        if ema is not None:
            ema.restore(net.parameters())
        net.train(was_training)
        grid = T.save_validation_grid(val_inputs, outputs, val_targets, output_dir / "validation" / f"step-{step}.png")
        T.log_validation_images(accelerator, "validation", grid, step)

    progress = tqdm(range(max_train_steps), initial=global_step, desc=f"pix2pix {args.direction}",
                    disable=not accelerator.is_local_main_process)
    throughput = T.Throughput()
    last_saved = global_step if checkpoint is not None else -1
    interrupted = False
    losses: dict[str, torch.Tensor] = {}
    for net in (generator, discriminator):
        if net is not None:
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
                cond, real = (batch["photo"], batch["sketch"]) if photo2sketch else (batch["sketch"], batch["photo"])
                if args.channels_last:
                    cond = cond.contiguous(memory_format=torch.channels_last)
                    real = real.contiguous(memory_format=torch.channels_last)
                with accelerator.accumulate(*[n for n in (generator, discriminator) if n is not None]):
                    with accelerator.autocast():
                        fake = generator(cond)
                    if use_gan:
                        # D step: real pairs -> 1, fake pairs -> 0, halved (pix2pix sec. 3.3); one
                        # forward over both halves so DDP sees a single forward per backward.
                        T.set_requires_grad(discriminator_raw, True)
                        with accelerator.autocast():
                            pairs = torch.cat([torch.cat([cond, fake.detach()], 1), torch.cat([cond, real], 1)], 0)
                            pred_fake, pred_real = discriminator(pairs).chunk(2)
                        loss_d = 0.5 * (gan_loss(pred_fake, False) + gan_loss(pred_real, True))
                        accelerator.backward(loss_d)
                        if args.max_grad_norm and accelerator.sync_gradients:
                            accelerator.clip_grad_norm_(discriminator.parameters(), args.max_grad_norm)
                        optimizer_d.step()
                        scheduler_d.step()
                        optimizer_d.zero_grad(set_to_none=True)
                        losses["loss/discriminator"] = loss_d.detach()

                    # G step: fool D on the fake pair, and stay close to the target in L1 (eq. 4).
                    loss_l1 = F.l1_loss(fake.float(), real.float())
                    loss_g = args.lambda_l1 * loss_l1
                    if use_gan:
                        T.set_requires_grad(discriminator_raw, False)
                        with accelerator.autocast():
                            pred_fake = discriminator_raw(torch.cat([cond, fake], 1))
                        loss_gan = gan_loss(pred_fake, True)
                        loss_g = loss_g + args.gan_weight * loss_gan
                        losses["loss/gan_generator"] = loss_gan.detach()
                    accelerator.backward(loss_g)
                    if args.max_grad_norm and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(generator.parameters(), args.max_grad_norm)
                    optimizer_g.step()
                    scheduler_g.step()
                    optimizer_g.zero_grad(set_to_none=True)
                    losses["loss/l1"] = loss_l1.detach()
                    losses["loss/generator"] = loss_g.detach()

                if not accelerator.sync_gradients:
                    continue
                global_step += 1
                state.global_step = global_step
                progress.update(1)
                throughput.add(total_batch)
                if ema is not None:
                    ema.step(T.unwrap(generator, accelerator).parameters())

                if global_step % args.logging_steps == 0 or global_step == max_train_steps:
                    logs = {k: v.item() for k, v in losses.items()}
                    logs["lr"] = scheduler_g.get_last_lr()[0]
                    logs["perf/images_per_s"] = throughput.rate()
                    logs["epoch"] = epoch
                    progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss/")})
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

    # ---- end of training: a resumable final checkpoint, a last validation grid, the export
    if args.checkpointing_steps and last_saved != global_step:
        save(global_step)
    accelerator.wait_for_everyone()
    export_dir = None
    if accelerator.is_main_process:
        if args.validation_steps and global_step % args.validation_steps != 0:
            validate(global_step)
        export_dir = output_dir / args.direction
        repo_id = args.hub_model_id or T.default_hub_model_id(output_dir, args.direction)
        class_name = type(T.unwrap(generator, accelerator)).__name__
        card_repo_id = repo_id if (args.push_to_hub or args.hub_model_id) else None
        T.export_generator(generator, export_dir, _model_card_kwargs(args, class_name, gen_kwargs, card_repo_id, global_step,
                                                                      len(train_dataset)),
                           ema=ema, accelerator=accelerator)
        logger.info("exported the generator to %s", export_dir)
        if args.push_to_hub:
            url = T.push_folder_to_hub(export_dir, repo_id, token=args.hub_token,
                                       commit_message=f"pix2pix {args.direction}, {global_step} steps")
            logger.info("pushed to %s", url)
    accelerator.end_training()
    return export_dir


def _model_card_kwargs(args, class_name: str, gen_kwargs: dict, repo_id: str | None, steps: int, n_pairs: int) -> dict:
    source, target = ("photo", "sketch") if args.direction == "photo2sketch" else ("sketch", "photo")
    loss = f"L1 x {args.lambda_l1:g}" + (f" + {args.gan_mode} GAN x {args.gan_weight:g} (conditional 70x70 PatchGAN)"
                                         if args.gan_weight > 0 else " only (no discriminator)")
    sketches = {"real": "the dataset's drawn sketches", "lines": "classical line drawings of the photos",
                "mixed": "drawn sketches and classical line drawings (p=0.5 each)"}[args.sketch_source]
    training = "\n".join([
        f"pix2pix (Isola et al. 2017), {source} -> {target}, trained with `train/pix2pix.py`:",
        "",
        "```bash",
        args.command,
        "```",
        "",
        f"- data: `{Path(args.data_dir).resolve().name}` ({n_pairs} training pairs), sketches: {sketches}",
        f"- steps: {steps}, resolution: {args.resolution}x{args.resolution}, batch size: "
        f"{args.train_batch_size} x {args.gradient_accumulation_steps} accumulation",
        f"- loss: {loss}",
        f"- optimiser: Adam lr {args.learning_rate:g}, betas ({args.adam_beta1:g}, {args.adam_beta2:g}), "
        f"schedule `{args.lr_scheduler}`" + (", EMA weights" if args.use_ema else ""),
        f"- seed: {args.seed}, mixed precision: {args.mixed_precision or 'no'}",
    ])
    return {
        "title": f"photosketch pix2pix {source} → {target} ({args.generator})",
        "summary": f"A {source} → {target} face generator trained with pix2pix on paired data.",
        "repo_id": repo_id,
        "class_name": class_name,
        "architecture": f"`{class_name}` with `{json.dumps(gen_kwargs, sort_keys=True)}`.",
        "training": training,
    }


if __name__ == "__main__":
    main(parse_args())
