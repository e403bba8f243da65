"""The bookkeeping around a trainer's optimizer steps (:class:`TrainingLoop`): the step count, EMAs,
logging, checkpoint and validation cadence, the ``--max_train_minutes`` budget, and stopping on
Ctrl-C / SIGTERM with a checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from .checkpoints import ResumePoint, TrainState, save_checkpoint
from .logs import JsonlLogger, log_main
from .nets import unwrap
from .optim import set_lr_horizon


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
        # logs.jsonl is one more accelerate tracker next to --report_to's: accelerator.log reaches them all.
        self.jsonl = JsonlLogger(self.output_dir / "logs.jsonl", enabled=accelerator.is_main_process)
        if accelerator.is_main_process:
            accelerator.trackers[:] = [t for t in accelerator.trackers if t.name != JsonlLogger.name] + [self.jsonl]
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
        self._fitted_inside_decay = False  # the first fitted horizon put the run past its decay's start
        self.step_cap = max_train_steps  # --max_train_steps / --num_epochs: a fitted horizon never passes it
        self._t_second: tuple[int, float] | None = None  # (step, elapsed s) once the first step is done
        self._pace: list[tuple[int, float]] = []  # (step, elapsed s) at each budget check

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def should_stop(self) -> bool:
        return self.interrupted or self.budget_spent or self.global_step >= self.max_train_steps

    def _check_budget(self, step: int) -> None:
        """--max_train_minutes, at logging steps. Once 10 % of the budget has passed, the steps that fit
        in the rest are estimated from the time per step so far and the LR schedule is fitted to end
        there, and refitted at each logging step until the LR starts to decay; when the budget is spent
        the run stops as if it had reached --max_train_steps. The main process's clock decides, so every
        process stops at the same step."""
        from accelerate.utils import broadcast

        elapsed = time.monotonic() - self.started
        elapsed = float(broadcast(torch.tensor([elapsed], device=self.accelerator.device)).item())
        if elapsed >= self.budget_s:
            self.budget_spent = True
            log_main(logging.INFO, "--max_train_minutes %g spent at step %d", self.args.max_train_minutes, step)
            return
        self._pace.append((step, elapsed))
        if self._t_second is None or step - self._t_second[0] < 2 or elapsed < 0.1 * self.budget_s:
            return
        # Refit at every logging step until the LR starts to decay, not just once at 10 %: a run whose
        # first minutes were slow (another job on the machine) would otherwise keep a horizon fitted to
        # that pace and stop well before its budget. Once the decay has begun the horizon stays put, so
        # the LR keeps falling smoothly to zero. A run resumed with a budget short against the steps it
        # has made is inside its decay from its first fitted horizon on: it had no smooth decay of its own
        # to keep, so it goes on refitting (else a horizon fitted during a slow start would stop it with
        # much of its budget unspent).
        decay_fraction = getattr(self.args, "decay_start_fraction", 0.5)
        decay_from = decay_fraction * self.max_train_steps
        if self._horizon_fitted and step >= decay_from and not self._fitted_inside_decay:
            return
        # Time per step over the last 10 % of the budget (at first: since the second step, as the first
        # carries start-up: cuDNN autotuning, compilation, allocator warm-up). Recent steps predict the
        # rest better than an average since the start: earlier ones may have run at another pace (a busy
        # machine, --d_warmup_steps' cheaper D-only steps).
        r_step, r_time = self._t_second
        for s, e in self._pace:
            if e >= elapsed - 0.1 * self.budget_s and s >= r_step and step - s >= 2:
                r_step, r_time = s, e
                break
        per_step = (elapsed - r_time) / (step - r_step)
        fit = min(self.step_cap, step + int((self.budget_s - elapsed) / per_step))
        first, previous = not self._horizon_fitted, self.max_train_steps
        if first:
            self._fitted_inside_decay = step >= decay_fraction * fit
        self._horizon_fitted = True
        if fit == previous:
            return
        self.max_train_steps = fit
        self.progress.total = fit
        for s in self.schedulers:
            set_lr_horizon(s, fit * self.accelerator.num_processes)
        # Every logging step may move the horizon a little; say so when it is new or moves by > 5 %.
        level = logging.INFO if first or abs(fit - previous) > 0.05 * previous else logging.DEBUG
        log_main(level, "%.2f s per step: %d steps fit in --max_train_minutes %g; LR schedule fitted to them",
                 per_step, fit, self.args.max_train_minutes)

    # ---- Ctrl-C and SIGTERM

    def _on_sigint(self, signum, frame) -> None:
        """The first SIGINT or SIGTERM: stop after this step; the same signal again acts at once."""
        self.stop_requested = True
        self.stop_signal = signal.Signals(signum)
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, self._previous_handlers.get(signum) or default)
        log_main(logging.WARNING, "%s: saving a checkpoint after this step (%s again to abort)",
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
            accelerator.log(logs, step=step)  # --report_to and logs.jsonl
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
            log_main(logging.WARNING, "interrupted at step %d; resume with --resume_from_checkpoint %s", step, path)
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
