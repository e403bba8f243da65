"""Resumable checkpoints: ``OUTPUT_DIR/checkpoint-{step}`` folders written by ``accelerator.save_state``.

accelerate saves and loads the state (models, optimizers, schedulers, RNGs, the sampler's epoch and
every object registered with ``register_for_checkpointing``); this module adds what its own
``ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=N)`` does not give:

- names by global step (``checkpoint-1500``), not by a save counter a resumed run would have to
  advance by hand;
- crash safety: a save goes to a hidden folder, is fsynced, gets a completion marker listing its
  files and sizes, and is renamed into place; rotation (``--checkpoints_total_limit``) deletes old
  ones only after that, so a run killed at any instant keeps a complete checkpoint;
- ``--resume_from_checkpoint latest`` = the newest *complete* checkpoint (incomplete or truncated
  ones are skipped with a warning);
- resuming loads every pickle file ``weights_only`` and refuses one that could run code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, NamedTuple

from .logs import log_main
from .optim import sync_scheduler_lr

logger = logging.getLogger(__name__)


class TrainState:
    """The global step, checkpointed with the run (``accelerator.register_for_checkpointing``) so a
    resumed run does not depend on the checkpoint folder's name."""

    def __init__(self, global_step: int = 0):
        self.global_step = global_step

    def state_dict(self) -> dict:
        return {"global_step": self.global_step}

    def load_state_dict(self, state: dict) -> None:
        self.global_step = int(state["global_step"])


class ResumePoint(NamedTuple):
    """Where a run starts: the checkpoint it resumed from (None for a new run), the epoch, and how
    many batches of that epoch were already trained on."""

    checkpoint: Path | None
    first_epoch: int
    skip_batches: int


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


def resume_from_checkpoint(accelerator, args: argparse.Namespace, state: TrainState, schedulers: Iterable,
                           steps_per_epoch: int) -> ResumePoint:
    """Load ``--resume_from_checkpoint`` (if any) into the prepared objects and everything
    registered for checkpointing, and say where in the data the run goes on.

    ``steps_per_epoch`` counts optimizer steps per epoch of the *prepared* loader.
    """
    checkpoint = resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    if args.resume_from_checkpoint and checkpoint is None:
        log_main(logging.INFO, "no checkpoint in %s; starting a new run", args.output_dir)
    if checkpoint is None:
        return ResumePoint(None, 0, 0)
    log_main(logging.INFO, "resuming from %s", checkpoint)
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
