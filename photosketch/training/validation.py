"""Validation grids: which images they show (``DIR/val``, else the first training images,
unaugmented; never ``DIR/test``), the generators' outputs for them (eval mode, EMA weights), and the
grid itself (``OUTPUT_DIR/validation/step-N.png`` and the trackers).
"""

from __future__ import annotations

import argparse
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..image import tensor_to_pil
from .logs import log_validation_images
from .nets import unwrap


def validation_split(data_dir: str | os.PathLike | None) -> str:
    """Where validation grids come from: ``"val"`` when ``DIR/val/photos`` exists, else ``"train"``.

    Never ``"test"``: grids are looked at to pick checkpoints and settings, so showing test images
    there would leak the test split into model selection.
    """
    from ..data import PHOTO_DIR

    return "val" if data_dir is not None and (Path(data_dir) / "val" / PHOTO_DIR).is_dir() else "train"


def validation_items(
    n: int,
    *,
    resolution: int,
    sketch_channels: int,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    photo_dir: str | os.PathLike | None = None,
    sketch_dir: str | os.PathLike | None = None,
    paired: bool = True,
    sketch_source: str = "real",
) -> tuple[list[dict], str]:
    """The first ``n`` validation items (dicts with ``photo`` and ``sketch``, unaugmented, CHW in [-1, 1])
    and where they came from, for the log.

    From ``DIR/val`` when it exists (:func:`validation_split`), else from the training data: pairs
    of ``data_dir`` (``paired=True``, pix2pix; items also carry their ``style``) or the photos of
    ``photo_dir`` and sketches of ``sketch_dir`` (``paired=False``, CycleGAN, also used when there
    is no ``data_dir``).
    """
    from ..data import PHOTO_DIR, SKETCH_DIR, PairedDataset, UnpairedDataset, split_root

    split = validation_split(data_dir)
    common = dict(resolution=resolution, sketch_channels=sketch_channels, augment=False, seed=seed)
    if paired:
        ds = PairedDataset(data_dir, split=split, sketch_source="lines" if sketch_source == "lines" else "real", **common)
        source = f"{split_root(data_dir, split)} ({split})"
    else:
        if split == "val":
            photo_dir, sketch_dir = Path(data_dir) / "val" / PHOTO_DIR, Path(data_dir) / "val" / SKETCH_DIR
        ds = UnpairedDataset(photo_dir, sketch_dir, **common)
        source = f"{photo_dir} + {sketch_dir} ({split})"
    return [ds[i] for i in range(min(n, len(ds)))], source


def validation_images(n: int, **kwargs) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(photos, sketches, source)``: :func:`validation_items` (same arguments) as NCHW batches."""
    items, source = validation_items(n, **kwargs)
    return (*_stack(items), source)


def _stack(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([it["photo"] for it in items]), torch.stack([it["sketch"] for it in items])


def unpaired_validation(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, str]:
    """CycleGAN's ``(photos, sketches, source)``: the first ``--num_validation_images`` of DIR/val, else of
    the training folders (``args.train_photo_dir`` / ``train_sketch_dir``), unaugmented."""
    return validation_images(args.num_validation_images, resolution=args.resolution, sketch_channels=args.sketch_channels,
                             seed=args.seed, data_dir=args.data_dir, photo_dir=args.train_photo_dir,
                             sketch_dir=args.train_sketch_dir, paired=False)


class PairedValidation(NamedTuple):
    """A paired trainer's validation images for ``--direction``: inputs, targets (NCHW in [-1, 1]), the
    pairs' styles and where they came from."""

    inputs: torch.Tensor
    targets: torch.Tensor
    styles: list[str]
    source: str


def paired_validation(args: argparse.Namespace) -> PairedValidation:
    """The first ``--num_validation_images`` pairs of DIR/val (or the pack's val split), else of the
    training pairs, unaugmented, as (input, target) for ``--direction``; DIR/test is never shown."""
    from ..packed import PackedPairs, pack_info

    if args.data_pack:
        split = "val" if pack_info(args.data_pack)["pairs"].get("val") else "train"
        first = PackedPairs(args.data_pack, split, sketch_channels=args.sketch_channels, augment=None).first(args.num_validation_images)
        photos, sketches, styles, source = first["photo"], first["sketch"], first["style"], f"{args.data_pack} ({split})"
        if args.sketch_source == "lines":  # as PairedDataset's validation images: line drawings of the photos
            from ..classical import LineDrawing

            with torch.no_grad():
                sketches = LineDrawing().eval()(photos)
    else:
        items, source = validation_items(
            args.num_validation_images, resolution=args.resolution, sketch_channels=args.sketch_channels, seed=args.seed,
            data_dir=args.data_dir, paired=True, sketch_source=args.sketch_source,
        )
        (photos, sketches), styles = _stack(items), [it["style"] for it in items]
    if args.direction == "photo2sketch":
        return PairedValidation(photos, sketches, styles, source)
    return PairedValidation(sketches, photos, styles, source)


@contextmanager
def eval_weights(accelerator, *models: tuple[nn.Module, object]) -> Iterator[list[nn.Module]]:
    """The plain modules of ``(model, ema)`` pairs in eval mode with their EMA weights swapped in (``ema``
    may be None), under ``torch.no_grad`` and autocast; each model's mode and weights are restored on exit."""
    nets = [unwrap(model, accelerator) for model, _ in models]
    was_training = [net.training for net in nets]
    for net, (_, ema) in zip(nets, models):
        net.eval()
        if ema is not None:
            ema.store(net.parameters())
            ema.copy_to(net.parameters())
    try:
        with torch.no_grad(), accelerator.autocast():
            yield nets
    finally:
        for net, (_, ema), training in zip(nets, models, was_training):
            if ema is not None:
                ema.restore(net.parameters())
            net.train(training)


def validation_outputs(generator, inputs: torch.Tensor, accelerator, ema=None, style=None) -> torch.Tensor:
    """``generator(inputs)`` (with ``style`` when given) in eval mode (EMA weights when given), as float32
    on the CPU (:func:`eval_weights`)."""
    with eval_weights(accelerator, (generator, ema)) as (net,):
        x = inputs.to(accelerator.device)
        return (net(x) if style is None else net(x, style=style.to(accelerator.device))).float().cpu()


def _to_rgb(t: torch.Tensor) -> np.ndarray:
    return np.asarray(tensor_to_pil(t).convert("RGB"))


def make_grid(rows: Sequence[Sequence[torch.Tensor]], pad: int = 2) -> Image.Image:
    """Rows of (C, H, W) tensors in [-1, 1] (1 or 3 channels, same H and W) -> one RGB image."""
    arrays = [[_to_rgb(t) for t in row] for row in rows]
    h, w = arrays[0][0].shape[:2]
    n_cols = max(len(r) for r in arrays)
    grid = np.full((len(arrays) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(arrays):
        for j, arr in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = arr[:h, :w]
    return Image.fromarray(grid)


def save_validation_grid(
    inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor | None, path: str | os.PathLike
) -> Image.Image:
    """Write a PNG with one row per image: input | output | target (NCHW batches in [-1, 1])."""
    return _save(make_grid(list(zip(*[c for c in (inputs, outputs, targets) if c is not None]))), path)


def _save(grid: Image.Image, path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return grid


def write_validation_grid(accelerator, output_dir: str | os.PathLike, step: int, columns: Sequence[torch.Tensor],
                          suffix: str = "", tag: str = "validation") -> Image.Image:
    """One row per image, one column per NCHW batch (input | output | ... ), saved as
    ``output_dir/validation/step-{step}{suffix}.png`` and sent to the trackers as ``tag``."""
    grid = _save(make_grid(list(zip(*columns))), Path(output_dir) / "validation" / f"step-{step}{suffix}.png")
    log_validation_images(accelerator, tag, grid, step)
    return grid
