"""What a run reports, all through accelerate's trackers: ``--report_to`` (TensorBoard, W&B) and
``OUTPUT_DIR/logs.jsonl`` (:class:`JsonlLogger`, one JSON object per logged step, always written),
validation grids as tracker images, and log lines from the main process only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.tracking import GeneralTracker
from PIL import Image


def tracker_names(report_to: str) -> str | list[str] | None:
    return None if report_to == "none" else report_to


def init_trackers(accelerator, args: argparse.Namespace, project_name: str) -> None:
    """Start the ``--report_to`` trackers on the main process, with the scalar arguments as config
    (trackers reject lists and None)."""
    if accelerator.is_main_process:
        config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers(project_name, config=config)


class JsonlLogger(GeneralTracker):
    """An accelerate tracker that appends one JSON object per ``log`` call to a file (``logs.jsonl``):
    ``{"step": ..., "time": ..., <the logged values>}``. A no-op when ``enabled`` is False (off the
    main process). :class:`~photosketch.training.loop.TrainingLoop` adds it to the run's trackers, so
    one ``accelerator.log`` reaches it and ``--report_to`` alike."""

    name = "jsonl"
    requires_logging_directory = False

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        super().__init__()
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict) -> None:
        """Nothing: the run's arguments are in ``training_args.json``."""

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "time": round(time.time(), 3)}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            record[k] = float(v) if isinstance(v, (np.floating, np.integer)) else v
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def drop_after(self, step: int) -> None:
        """Remove the records of steps after ``step`` (and a line cut short by a kill): a run resumed
        from ``step`` trains and logs those steps again, so each step keeps one record."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["step"]) <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        os.replace(tmp, self.path)


def log_validation_images(accelerator, tag: str, grid: Image.Image, step: int) -> None:
    """Send a validation grid to whichever trackers are active."""
    arr = np.asarray(grid)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image(tag, arr, step, dataformats="HWC")
        elif tracker.name == "wandb":
            import wandb

            tracker.log({tag: [wandb.Image(grid)]}, step=step)


def log_main(level: int, msg: str, *args) -> None:
    """Log on the main process only (accelerate's logger; needs the Accelerator to exist)."""
    from accelerate.logging import get_logger

    get_logger(__name__).log(level, msg, *args, main_process_only=True)
