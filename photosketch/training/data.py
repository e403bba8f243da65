"""Training data for the trainers: the shuffled, seeded loader; the paired trainers' pairs from a
folder (``--data_dir``) or a device-memory pack (``--data_pack``) with its line drawings; each
epoch's batches (a resumed run skips what its checkpoint already trained on); a paired batch as
(condition, target) for ``--direction``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .args import photo_augmentation
from .checkpoints import ResumePoint

PHOTO_CHANNELS = 3


class TrainData(NamedTuple):
    """A trainer's training data: the dataset (a folder's ``PairedDataset`` / ``UnpairedDataset``, or a
    ``PackedPairs`` on the device), its ``DataLoader`` (None for a pack: it batches itself) and the number
    of batches per epoch over all processes (before ``prepare``)."""

    dataset: Any
    dataloader: Any
    num_batches: int


def make_train_dataloader(dataset, args: argparse.Namespace, num_processes: int) -> torch.utils.data.DataLoader:
    """The shuffled training loader (``accelerator.prepare`` it afterwards)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=args.train_batch_size,
        shuffle=True,
        num_workers=args.dataloader_num_workers,
        # A dataset smaller than one global batch keeps its last, partial batch rather than none.
        drop_last=len(dataset) >= args.train_batch_size * num_processes,
        pin_memory=torch.cuda.is_available(),
        # Worker base seeds come from here, not from the global RNG that dropout and the image
        # pools draw from: a resumed run then draws the same as an uninterrupted one.
        generator=torch.Generator().manual_seed(args.seed),
    )


def check_paired_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """For the paired trainers: ``--data_dir`` or ``--data_pack`` (not both) holds training pairs, as a
    one-line usage error otherwise; returns the style names of the training pairs (``""`` for none)."""
    from ..data import PairedDataset
    from ..packed import pack_info

    if args.data_pack and args.data_dir:
        parser.error("give either --data_dir or --data_pack, not both")
    if args.data_pack and args.face_crop:
        parser.error("--data_pack holds pairs already cropped: --face_crop needs --data_dir")
    jitter, gray = photo_augmentation(args)
    if not (0 <= jitter < 1 and 0 <= gray <= 1):
        parser.error("--photo_jitter must be in [0, 1) and --grayscale_prob in [0, 1]")
    try:  # list the data now: a bad folder is a one-line usage error, not a traceback mid-run
        if args.data_pack:
            info = pack_info(args.data_pack)
            if not info["pairs"].get("train"):
                raise ValueError("the pack has no training pairs")
            if args.sketch_source in SPARSE_SHARE and not info["sparse_per_pair"]:
                # Few-stroke drawings are traced with OpenCV on the CPU: a pack holds them pre-drawn, or not at all.
                raise ValueError(f"--sketch_source {args.sketch_source} needs a pack with few-stroke drawings "
                                 "(scripts/gpu_pack.py --sparse_per_pair 3), or --data_dir")
            return list(info["styles"])
        return PairedDataset(args.data_dir, split="train", resolution=args.resolution, sketch_channels=args.sketch_channels,
                             augment=False, sketch_source=args.sketch_source).style_names
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"{'--data_pack' if args.data_pack else '--data_dir'}: {exc}")


def paired_train_data(args: argparse.Namespace, accelerator, photo_channels: int = 3) -> TrainData:
    """``--data_pack`` (decoded once into device memory, augmented there) or ``--data_dir``."""
    from ..data import PairedDataset
    from ..packed import PackAugment, PackedPairs

    jitter, gray = photo_augmentation(args)
    if args.data_pack:
        # Geometry as the recipe's PackAugment; the photo's colour jitter per --photo_jitter / --grayscale_prob.
        augment = PackAugment(brightness=jitter, contrast=jitter, saturation=min(1.0, 1.2 * jitter), grayscale_prob=gray)
        ds = PackedPairs(args.data_pack, "train", device=accelerator.device, sketch_channels=args.sketch_channels,
                         augment=augment if args.augment else None, seed=args.seed,
                         sparse_share=SPARSE_SHARE.get(args.sketch_source, 0.0))
        n = ds.num_batches(args.train_batch_size, accelerator.num_processes) * accelerator.num_processes
        return TrainData(ds, None, n)
    ds = PairedDataset(args.data_dir, split="train", resolution=args.resolution, photo_channels=photo_channels,
                       sketch_channels=args.sketch_channels, augment=args.augment, sketch_source=args.sketch_source,
                       face_crop=args.face_crop, seed=args.seed, photo_jitter=jitter, grayscale_prob=gray,
                       crop_size=args.train_crop)
    loader = make_train_dataloader(ds, args, accelerator.num_processes)
    return TrainData(ds, loader, len(loader))


def check_unpaired_data(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """For CycleGAN: sets ``args.train_photo_dir`` / ``args.train_sketch_dir`` from ``--photo_dir`` +
    ``--sketch_dir`` or ``--data_dir[/train]`` and lists them, as a one-line usage error when they hold no images."""
    from ..data import PHOTO_DIR, SKETCH_DIR, UnpairedDataset, split_root

    try:  # list the data now: a bad folder is a one-line usage error, not a traceback mid-run
        if args.photo_dir:
            photo_dir, sketch_dir = Path(args.photo_dir), Path(args.sketch_dir)
        else:
            base = split_root(args.data_dir, "train")
            photo_dir, sketch_dir = base / PHOTO_DIR, base / SKETCH_DIR
        args.train_photo_dir, args.train_sketch_dir = str(photo_dir), str(sketch_dir)
        UnpairedDataset(args.train_photo_dir, args.train_sketch_dir, resolution=args.resolution,
                        sketch_channels=args.sketch_channels, augment=False)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"{'--data_dir' if args.data_dir else '--photo_dir/--sketch_dir'}: {exc}")


def unpaired_train_data(args: argparse.Namespace, accelerator, photo_channels: int = PHOTO_CHANNELS) -> TrainData:
    """CycleGAN's training data: the photos of ``args.train_photo_dir`` and the sketches of
    ``args.train_sketch_dir``, independent of each other (``UnpairedDataset``)."""
    from ..data import UnpairedDataset

    ds = UnpairedDataset(args.train_photo_dir, args.train_sketch_dir, resolution=args.resolution, photo_channels=photo_channels,
                         sketch_channels=args.sketch_channels, augment=args.augment, seed=args.seed,
                         crop_size=args.train_crop)
    loader = make_train_dataloader(ds, args, accelerator.num_processes)
    return TrainData(ds, loader, len(loader))


def paired_channels(args: argparse.Namespace, photo_channels: int = PHOTO_CHANNELS) -> tuple[int, int]:
    """(input, output) channels of a paired trainer's generator for ``--direction``."""
    if args.direction == "photo2sketch":
        return photo_channels, args.sketch_channels
    return args.sketch_channels, photo_channels


#: ``--data_pack``: the share of pairs whose sketch is one of the pack's few-stroke drawings (the top of
#: each pair's ``coin`` range, swapped in by ``PackedPairs``) ...
SPARSE_SHARE = {"sparse": 1.0, "all": 1 / 3}
#: ... and the share given line drawings (the bottom of the range, :class:`PackLineDrawings`); the rest
#: keep their drawn sketch. ``all``: a third each, as ``PairedDataset`` on the CPU.
LINES_SHARE = {"lines": 1.0, "mixed": 0.5, "all": 1 / 3}


class PackLineDrawings:
    """``--data_pack`` with ``--sketch_source lines`` / ``mixed`` / ``all``: line drawings of each batch's
    (augmented) photos, drawn on the device by the same classical ``LineDrawing`` that ``PairedDataset``
    uses on the CPU, swapped in for the pairs whose ``coin`` draw is below the source's share."""

    def __init__(self, sketch_source: str, device):
        from ..classical import LineDrawing

        self.p = LINES_SHARE[sketch_source]
        self.drawer = LineDrawing().to(device).eval()

    @classmethod
    def for_args(cls, args: argparse.Namespace, device) -> "PackLineDrawings | None":
        return cls(args.sketch_source, device) if args.data_pack and args.sketch_source in LINES_SHARE else None

    @torch.no_grad()
    def __call__(self, batch: dict) -> dict:
        lines = self.drawer(batch["photo"])
        use = batch["coin"] < self.p
        return {**batch, "sketch": torch.where(use[:, None, None, None], lines, batch["sketch"])}


class PairedInputs:
    """A paired batch -> (condition, target) for ``--direction``: with ``--data_pack`` and
    ``--sketch_source lines`` / ``mixed`` / ``all`` the line drawings are swapped in first
    (:class:`PackLineDrawings`), and with ``--channels_last`` both come out NHWC."""

    def __init__(self, args: argparse.Namespace, device):
        self.line_drawings = PackLineDrawings.for_args(args, device)
        self.photo2sketch = args.direction == "photo2sketch"
        self.channels_last = args.channels_last

    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if self.line_drawings is not None:
            batch = self.line_drawings(batch)
        cond, real = (batch["photo"], batch["sketch"]) if self.photo2sketch else (batch["sketch"], batch["photo"])
        if self.channels_last:
            cond = cond.contiguous(memory_format=torch.channels_last)
            real = real.contiguous(memory_format=torch.channels_last)
        return cond, real


def epoch_batches(accelerator, dataloader, dataset, epoch: int, resume: ResumePoint, batch_size: int | None = None):
    """The batches of one epoch: the sampler and the dataset's augmentation set to ``epoch``, and
    in a resumed run's first epoch without the batches its checkpoint already trained on (so the
    resumed run sees the same data, in the same order, as an uninterrupted one).

    A :class:`~photosketch.packed.PackedPairs` (``--data_pack``; ``dataloader`` is None) makes its
    batches itself, on the device, this process's share of each epoch."""
    skip = resume.skip_batches if epoch == resume.first_epoch else 0
    if dataloader is None:
        return dataset.batches(epoch, batch_size, num_processes=accelerator.num_processes,
                               process_index=accelerator.process_index, skip=skip)
    dataloader.set_epoch(epoch)
    dataset.set_epoch(epoch)
    if epoch == resume.first_epoch and resume.skip_batches:
        return accelerator.skip_first_batches(dataloader, resume.skip_batches)
    return dataloader
