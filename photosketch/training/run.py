"""The skeleton every trainer in ``train/`` shares (:class:`Run`): set up accelerate, prepare the
networks, optimizers, schedules and data, resume, run the epochs around the trainer's own step,
export. A trainer keeps only what differs: its networks, its losses and its step.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .checkpoints import TrainState, resume_from_checkpoint
from .data import PairedInputs, TrainData, epoch_batches, paired_channels, paired_train_data
from .export import export_and_push, model_card_kwargs
from .logs import init_trackers, log_main, tracker_names
from .loop import TrainingLoop
from .nets import unwrap
from .optim import adam, lr_scheduler_from_args, max_train_steps_from_args
from .validation import paired_validation, write_validation_grid


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


def prepare_named(accelerator, **objects) -> dict[str, Any]:
    """``accelerator.prepare`` on the objects that are not ``None``, returned by name.

    ``prepare`` keeps the order it is given, which also names the checkpoint files (``model.safetensors``,
    ``model_1.safetensors``, ...), so keep the keyword order stable between versions of a trainer.
    """
    names = [k for k, v in objects.items() if v is not None]
    prepared = accelerator.prepare(*[objects[k] for k in names])
    prepared = prepared if isinstance(prepared, tuple) else (prepared,)
    return {**objects, **dict(zip(names, prepared))}


class Run:
    """One training run. A trainer builds its data and networks, then::

        run = Run(args, "pix2pix-photo2sketch")   # the Accelerator, logging, seed, training_args.json
        ...                                       # data (TrainData) and networks
        p = run.prepare(data, models={"generator": g, "discriminator": d},
                        optimizers={"g": g.parameters(), "d": d.parameters()}, ema_of=("generator",))
        run.log_plan("pix2pix photo2sketch: 6 pairs, ...")
        run.fit(step, validate, desc="pix2pix")   # step(batch) -> {"loss/...": tensor}: one optimizer step
        run.finish("pix2pix", {"photo2sketch": ("generator", card)})   # export (Hub layout, push), end

    ``step`` runs inside ``accelerator.accumulate`` of every prepared model; :class:`TrainingLoop`
    does the bookkeeping after each optimizer step (logging, checkpoints, validation grids, EMA,
    the time budget, Ctrl-C / SIGTERM).
    """

    def __init__(self, args: argparse.Namespace, project: str):
        self.args, self.project = args, project
        self.output_dir = Path(args.output_dir)
        # Also sets up logging, the seed and TF32, and writes OUTPUT_DIR/training_args.json.
        self.accelerator = init_accelerator(args)
        self.emas: dict[str, Any] = {}
        self.global_step = 0

    def prepare(self, data: TrainData, models: dict[str, nn.Module | None], optimizers: dict[str, Iterable | None],
                ema_of: Sequence[str] = (), checkpointed: Sequence[Any] = ()) -> dict[str, Any]:
        """Everything between building the networks and the first step, in this order:

        ``--channels_last``; with ``--use_ema`` a diffusers ``EMAModel`` of each model named in ``ema_of``;
        Adam (:func:`~.optim.adam`) over each entry of ``optimizers`` (``"g"`` -> ``optimizer_g`` and its
        schedule ``scheduler_g``; the first one's LR is logged); the schedule's length; ``--compile``;
        ``accelerator.prepare`` of models, optimizers, the data loader and schedules in that order, which
        names the checkpoint files (``model.safetensors``, ``model_1.safetensors``... in the order of
        ``models``: keep it stable); the step, ``checkpointed`` objects (e.g. image pools: anything with
        ``state_dict``) and the EMAs registered for checkpoints; the trackers; ``--resume_from_checkpoint``.

        ``None`` models and optimizers (a trainer without D) are left out. Returns the prepared objects
        by name (``generator``, ``optimizer_g``, ``scheduler_g``, ``dataloader``...).
        """
        args, accelerator = self.args, self.accelerator
        self.data = data
        if args.channels_last:
            for net in models.values():
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        if args.use_ema:
            from diffusers.training_utils import EMAModel

            self.emas = {name: EMAModel(models[name].parameters(), decay=args.ema_decay) for name in ema_of}
        opts = {k: adam(args, params) if params is not None else None for k, params in optimizers.items()}
        # Step counts as in the diffusers examples: per process, then x num_processes.
        self.max_train_steps = max_train_steps_from_args(args, data.num_batches, accelerator.num_processes)
        schedulers = {k: lr_scheduler_from_args(args, opt, self.max_train_steps, accelerator.num_processes)
                      if opt is not None else None for k, opt in opts.items()}
        if args.compile:
            models = {k: torch.compile(net) if net is not None else None for k, net in models.items()}
        self.prepared = prepare_named(accelerator, **models, **{f"optimizer_{k}": o for k, o in opts.items()},
                                      dataloader=data.dataloader, **{f"scheduler_{k}": s for k, s in schedulers.items()})
        self.models = [self.prepared[k] for k, net in models.items() if net is not None]
        self.schedulers = [self.prepared[f"scheduler_{k}"] for k, s in schedulers.items() if s is not None]

        self.state = TrainState()
        for obj in (self.state, *checkpointed):
            accelerator.register_for_checkpointing(obj)
        for ema in self.emas.values():
            ema.to(accelerator.device)
            accelerator.register_for_checkpointing(ema)
        loader = self.prepared["dataloader"]
        batches_per_epoch = len(loader) if loader is not None else data.num_batches // accelerator.num_processes
        self.steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
        self.num_epochs = math.ceil(self.max_train_steps / self.steps_per_epoch)
        self.total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps

        init_trackers(accelerator, args, self.project)
        # Models, optimizers, schedulers, RNGs, the sampler's epoch, the step, checkpointed objects and EMAs.
        self.resume = resume_from_checkpoint(accelerator, args, self.state, self.schedulers, self.steps_per_epoch)
        if self.resume.checkpoint is not None:
            for obj in checkpointed:  # loaded on the CPU
                if hasattr(obj, "to"):
                    obj.to(accelerator.device)
        return self.prepared

    def log_plan(self, what: str) -> None:
        """One log line: ``what`` the trainer trains on, then epochs, steps and the batch arithmetic."""
        args = self.args
        log_main(logging.INFO, "%s; %d epochs, %d steps (batch %d total = %d per device x %d processes x %d accumulation)",
                 what, self.num_epochs, self.max_train_steps, self.total_batch, args.train_batch_size,
                 self.accelerator.num_processes, args.gradient_accumulation_steps)

    def fit(self, step: Callable[[dict], dict[str, torch.Tensor]], validate: Callable[[int], None], desc: str,
            progress_skip: Sequence[str] = ()) -> int:
        """The epochs: ``step(batch)`` for each batch (in ``accelerator.accumulate``; it returns the losses
        to log), :class:`TrainingLoop` after each optimizer step, ``validate(step)`` at its cadence. After
        Ctrl-C / SIGTERM: a checkpoint and exit 130 / 143. Returns the global step reached."""
        args, accelerator = self.args, self.accelerator
        loop = TrainingLoop(
            accelerator, args, self.state, max_train_steps=self.max_train_steps, images_per_step=self.total_batch,
            lr_scheduler=self.schedulers[0], validate=validate, resume=self.resume,
            emas=[(ema, self.prepared[name]) for name, ema in self.emas.items()], desc=desc,
            progress_skip=progress_skip, schedulers=self.schedulers,
        )
        losses: dict[str, torch.Tensor] = {}
        for net in self.models:
            net.train()
        # A first Ctrl-C ends the loop after the current step, a second one at once (see TrainingLoop).
        with loop:
            for epoch in range(self.resume.first_epoch, self.num_epochs):
                if loop.should_stop:
                    break
                for batch in epoch_batches(accelerator, self.prepared["dataloader"], self.data.dataset, epoch,
                                           self.resume, args.train_batch_size):
                    with accelerator.accumulate(*self.models):
                        losses.update(step(batch))
                    if not accelerator.sync_gradients:
                        continue
                    if loop.end_of_step(epoch, losses):
                        break
        loop.exit_if_interrupted()  # after Ctrl-C / SIGTERM: checkpoint, resume hint, exit 130 / 143
        # The end of a complete run: a resumable final checkpoint and a last validation grid.
        loop.finish()
        self.global_step = loop.global_step
        return self.global_step

    def save_grid(self, step: int, columns: Sequence[torch.Tensor], suffix: str = "", tag: str = "validation") -> None:
        """A validation grid, one column per NCHW batch: ``OUTPUT_DIR/validation/step-{step}{suffix}.png``
        and the trackers (:func:`~.validation.write_validation_grid`)."""
        write_validation_grid(self.accelerator, self.output_dir, step, columns, suffix=suffix, tag=tag)

    def finish(self, method: str, exports: dict[str, tuple[str, dict]], repo_suffix: bool = False) -> dict[str, Path | None]:
        """Export, then end the run (trackers, process group). ``exports`` maps a folder name to (a prepared
        model's name, its model card fields): each model, with its EMA weights if any, is saved on the main
        process to ``OUTPUT_DIR/<folder>/`` in Hub layout and pushed with ``--push_to_hub``
        (:func:`~.export.export_and_push`; commit ``"<method> <folder>, <N> steps"``; ``repo_suffix``:
        ``--hub_model_id`` gets ``-<folder>``). The card fields are ``title``, ``summary``, ``method``, ``data``,
        ``loss`` and ``gen_kwargs`` (:func:`~.export.model_card_kwargs` adds steps, class name and repo id).
        Returns the export folders (None off the main process)."""
        paths: dict[str, Path | None] = {}
        for name, (model, card) in exports.items():
            paths[name] = self._export(name, model, card, f"{method} {name}, {self.global_step} steps", repo_suffix)
        self.accelerator.end_training()
        return paths

    def _export(self, name: str, model: str, card: dict, commit_message: str, repo_suffix: bool) -> Path | None:
        if not self.accelerator.is_main_process:
            return None
        net, steps = self.prepared[model], self.global_step
        class_name = type(unwrap(net, self.accelerator)).__name__

        def card_kwargs(repo_id: str | None) -> dict:
            return model_card_kwargs(self.args, **card, steps=steps, class_name=class_name, repo_id=repo_id)

        return export_and_push(net, self.args, name, card_kwargs, self.accelerator, ema=self.emas.get(model),
                               commit_message=commit_message, repo_suffix=repo_suffix)


class PairedRun(Run):
    """A :class:`Run` on paired data (pix2pix, distill), which also sets up, in this order: ``data``
    (``--data_pack``, decoded once into device memory and augmented there, else ``--data_dir``:
    :func:`~.data.paired_train_data`), ``val`` (:func:`~.validation.paired_validation`), ``inputs``
    (a batch -> (condition, target): :class:`~.data.PairedInputs`) and the generator's ``in_channels`` /
    ``out_channels`` for ``--direction``."""

    def __init__(self, args: argparse.Namespace, project: str):
        super().__init__(args, project)
        self.in_channels, self.out_channels = paired_channels(args)
        self.data = paired_train_data(args, self.accelerator)
        self.val = paired_validation(args)
        self.inputs = PairedInputs(args, self.accelerator.device)
