"""A whole paired training set in one file, decoded once into device memory and augmented there.

Made for short GPU leases (``scripts/gpu_pack.py``, README "Train on your own GPU"): reading and
augmenting 256-px pairs with PIL costs ~12 ms of CPU per pair, which would starve a GPU that
trains on thousands of pairs a second. Here every pair is decoded once, kept as uint8 on the
device (1,250 pairs at 256 px: 330 MB), and each batch is gathered, warped and colour-jittered by
a handful of tensor ops on that device.

The pack is a safetensors file (no pickles): WebP (or JPEG) streams of the centre square crops at
``resolution``, concatenated, with offsets (WebP at quality 80 is ~half the bytes of JPEG at 90 for
~2.5 dB less PSNR, and the pack must travel to a GPU machine beside the repository within 64 MiB); per pair a style index and a split (train / val);
metadata names the format, the resolution, the style names and the pair names. With
``sparse_per_pair=K`` it also holds K seeded few-stroke drawings of each photo
(:func:`photosketch.classical.sparse_drawing`, as 1-bit PNGs: ~1 KB each), drawn once on the CPU
when packing: they trace contours with OpenCV, which a GPU machine may lack and which would cost
CPU time per step there. ``--sketch_source sparse`` / ``all`` then train on them from a pack.

Augmentation (``augment_pairs``): horizontal flip, rotation, random square crop (zoom), and on
the photo only exposure / contrast / saturation jitter and, with ``grayscale_prob``, black-and-white,
so that grayscale and badly lit real portraits look like something seen in training. Random draws
come from a CPU generator seeded by (seed, epoch, process), one draw per pair and epoch, so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import find_pairs, read_styles, split_root, square_crop_resize
from .image import LUMA, load_image, to_mode, uint8_to_tensor

__all__ = ["IMAGE_FORMATS", "PACK_FORMAT", "PackAugment", "PackedPairs", "augment_pairs", "pack_info", "write_pack"]

logger = logging.getLogger(__name__)

PACK_FORMAT = "photosketch-pack/1"
SPLITS = ("train", "val")


IMAGE_FORMATS = ("WEBP", "JPEG")


def _encode(img: Image.Image, image_format: str, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, format=image_format, quality=quality)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _png_1bit(img: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    img.point(lambda v: 255 if v >= 128 else 0).convert("1").save(buf, format="PNG", optimize=True)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def sparse_seed(pair: int, k: int) -> int:
    """The ``sparse_drawing`` seed of pair ``pair``'s ``k``-th drawing in a pack (fixed: packs are reproducible)."""
    return pair * 1009 + k


def write_pack(path: str | os.PathLike, data_dir: str | os.PathLike, *, resolution: int = 256, quality: int = 80,
               image_format: str = "WEBP", splits=SPLITS, sparse_per_pair: int = 0, progress: bool = True) -> dict:
    """Pack ``data_dir``'s pairs (``DIR/{train,val}/{photos,sketches}`` + optional ``styles.csv``) as
    ``image_format`` (``"WEBP"`` or ``"JPEG"``) at ``quality``, with ``sparse_per_pair`` few-stroke
    drawings of each photo (0: none).

    Returns a summary: pairs per split, the style names, the file size in bytes.
    """
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    from .classical import sparse_drawing

    if sparse_per_pair < 0:
        raise ValueError(f"sparse_per_pair must be >= 0; got {sparse_per_pair}")
    image_format = image_format.upper()
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}; got {image_format!r}")
    photos, sketches, sparse, style_names, splits_of, names = [], [], [], [], [], []
    for split_id, split in enumerate(splits):
        if split != "train" and not (Path(data_dir) / split / "photos").is_dir():
            continue  # no such split (a one-split folder is all training data)
        base = split_root(data_dir, split)
        styles = read_styles(base / "styles.csv") if (base / "styles.csv").is_file() else {}
        for photo_path, sketch_path in tqdm(find_pairs(data_dir, split), desc=f"pack {split}", unit="pair", disable=not progress):
            photo, sketch = to_mode(load_image(photo_path), 3), to_mode(load_image(sketch_path), 1)
            if sketch.size != photo.size:  # as PairedDataset: the sketch follows the photo
                sketch = sketch.resize(photo.size, Image.Resampling.BICUBIC)
            photo, sketch = square_crop_resize(photo, resolution), square_crop_resize(sketch, resolution)
            photos.append(_encode(photo, image_format, quality))
            sketches.append(_encode(sketch, image_format, quality))
            sparse += [_png_1bit(sparse_drawing(photo, seed=sparse_seed(len(names), k))) for k in range(sparse_per_pair)]
            style_names.append(styles.get(photo_path.stem, ""))
            splits_of.append(split_id)
            names.append(photo_path.stem)
    if not photos:
        raise FileNotFoundError(f"{data_dir}: no pairs to pack")
    vocabulary = sorted({s for s in style_names if s})
    tensors = {
        "photos": np.concatenate(photos),
        "photo_offsets": np.cumsum([0] + [len(p) for p in photos]).astype(np.int64),
        "sketches": np.concatenate(sketches),
        "sketch_offsets": np.cumsum([0] + [len(s) for s in sketches]).astype(np.int64),
        "styles": np.array([vocabulary.index(s) if s else -1 for s in style_names], dtype=np.int64),
        "splits": np.array(splits_of, dtype=np.uint8),
    }
    if sparse:
        tensors["sparse"] = np.concatenate(sparse)
        tensors["sparse_offsets"] = np.cumsum([0] + [len(d) for d in sparse]).astype(np.int64)
    metadata = {"format": PACK_FORMAT, "resolution": str(resolution), "splits": json.dumps(list(splits)),
                "styles": json.dumps(vocabulary), "names": json.dumps(names), "sparse_per_pair": str(sparse_per_pair)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    counts = {s: int(sum(1 for i in splits_of if i == k)) for k, s in enumerate(splits)}
    return {"pairs": counts, "styles": vocabulary, "sparse_per_pair": sparse_per_pair, "bytes": path.stat().st_size,
            "path": str(path)}


def pack_info(path: str | os.PathLike) -> dict:
    """What a pack holds, without decoding it: ``{"resolution", "styles", "pairs": {split: count},
    "sparse_per_pair"}`` (0 for a pack without few-stroke drawings, as packs written before them)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pack file")
    try:  # safetensors raises its own error types for a file that is no safetensors
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            is_pack = meta.get("format") == PACK_FORMAT
            if is_pack:
                splits, split_of = json.loads(meta["splits"]), f.get_tensor("splits")
    except Exception as exc:
        raise ValueError(f"{path}: not a readable photosketch pack ({exc})") from exc
    if not is_pack:
        raise ValueError(f"{path}: not a photosketch pack (format {meta.get('format')!r}, expected {PACK_FORMAT!r})")
    return {"resolution": int(meta["resolution"]), "styles": json.loads(meta["styles"]),
            "pairs": {s: int((split_of == i).sum()) for i, s in enumerate(splits)},
            "sparse_per_pair": int(meta.get("sparse_per_pair", 0))}


def _decode(blob: np.ndarray, offsets: np.ndarray, indices: np.ndarray, mode: str) -> np.ndarray:
    out = [np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert(mode)) for i in indices]
    arr = np.stack(out)
    return arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)


@dataclass(frozen=True)
class PackAugment:
    """Ranges of the on-device augmentation (the defaults are the GPU recipe's)."""

    max_angle: float = 8.0  # degrees
    min_scale: float = 0.85  # side of the random square crop, relative to the image
    brightness: float = 0.25  # photo exposure factor in [1 - b, 1 + b]
    contrast: float = 0.25
    saturation: float = 0.3
    grayscale_prob: float = 0.2  # black-and-white photos in, same sketch out

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        u = torch.rand(8, n, generator=generator)
        return {
            "flip": u[0] < 0.5,
            "angle": (u[1] * 2 - 1) * math.radians(self.max_angle),
            "scale": self.min_scale + (1 - self.min_scale) * u[2],
            "cx": u[3], "cy": u[4],
            "brightness": 1 + (u[5] * 2 - 1) * self.brightness,
            "contrast": 1 + (u[6] * 2 - 1) * self.contrast,
            "saturation": 1 + (u[7] * 2 - 1) * self.saturation,
            "gray": torch.rand(n, generator=generator) < self.grayscale_prob,
        }


def augment_pairs(photo: torch.Tensor, sketch: torch.Tensor, params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp both images of each pair identically and jitter the photo's colour.

    ``photo`` (B, 3, H, W) and ``sketch`` (B, C, H, W) are in [-1, 1]; ``params`` are per-pair
    draws from :meth:`PackAugment.sample` (on any device). One affine map per pair does flip,
    rotation and zoom (``affine_grid``: output coordinates in [-1, 1] to input coordinates); the
    crop's centre moves only inside the margin the zoom leaves, so no corner leaves the image
    except by rotation. Uncovered corners: the photo repeats its border, the sketch is white paper.
    """
    p = {k: v.to(photo.device) for k, v in params.items()}
    s, a = p["scale"], p["angle"]
    sign = torch.where(p["flip"], -1.0, 1.0).to(photo.dtype)
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    theta = torch.stack([
        torch.stack([cos * sign, -sin, (1 - s) * (2 * p["cx"] - 1)], 1),
        torch.stack([sin * sign, cos, (1 - s) * (2 * p["cy"] - 1)], 1),
    ], 1).to(photo.dtype)
    grid = F.affine_grid(theta, list(photo.shape), align_corners=False)
    photo = F.grid_sample(photo, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # Sample (sketch - 1) with zero padding: outside the canvas the sketch is 1, white.
    sketch = F.grid_sample(sketch - 1, grid.to(sketch.dtype), mode="bilinear", padding_mode="zeros", align_corners=False) + 1

    x = (photo + 1) / 2  # colour maths in [0, 1]
    gray = LUMA[0] * x[:, 0:1] + LUMA[1] * x[:, 1:2] + LUMA[2] * x[:, 2:3]
    col = lambda t: t.to(x.dtype)[:, None, None, None]  # noqa: E731 - per-pair factor as (B, 1, 1, 1)
    x = gray + (x - gray) * col(p["saturation"])
    x = torch.where(col(p["gray"]) > 0, gray.expand_as(x), x)
    x = x * col(p["brightness"])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * col(p["contrast"]) + mean
    return x.clamp(0, 1) * 2 - 1, sketch.clamp(-1, 1)


class PackedPairs:
    """One split of a pack, held as uint8 tensors on ``device``; batches are made on that device.

    Args:
        path: a file written by :func:`write_pack`.
        split: ``"train"`` or ``"val"``.
        device: where the images live and batches are augmented (``accelerator.device``).
        sketch_channels / photo_channels: 1 or 3, as for :class:`~photosketch.data.PairedDataset`.
        augment: the :class:`PackAugment` ranges, or ``None`` for none.
        seed: seeds the shuffling and augmentation draws (with the epoch and the process).
        sparse_share: the share of pairs whose sketch is one of the pack's few-stroke drawings
            (picked at random, warped with the photo): 1 for ``--sketch_source sparse``, 1/3 for
            ``all``. The pairs whose ``coin`` is in the top ``sparse_share`` get them, so a caller
            can give the bottom of the ``coin`` range to other sources.
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", *, device="cpu", photo_channels: int = 3,
                 sketch_channels: int = 1, augment: PackAugment | None = PackAugment(), seed: int = 0,
                 sparse_share: float = 0.0):
        from safetensors import safe_open
        from safetensors.numpy import load_file

        info = pack_info(path)
        if not info["pairs"].get(split):
            raise ValueError(f"{path}: no pairs in split {split!r}; it has {info['pairs']}")
        if not 0 <= sparse_share <= 1:
            raise ValueError(f"sparse_share must be in [0, 1]; got {sparse_share}")
        if sparse_share and not info["sparse_per_pair"]:
            raise ValueError(f"{path}: the pack has no few-stroke drawings; write it with "
                             "scripts/gpu_pack.py --sparse_per_pair 3 (or write_pack(sparse_per_pair=3))")
        with safe_open(str(path), "np") as f:
            names = json.loads(f.metadata()["names"])
        t = load_file(str(path))
        indices = np.flatnonzero(t["splits"] == list(info["pairs"]).index(split))  # pack_info keeps the split order
        self.resolution = info["resolution"]
        self.style_names: list[str] = info["styles"]
        self.names = [names[i] for i in indices]
        photos = _decode(t["photos"], t["photo_offsets"], indices, "RGB" if photo_channels == 3 else "L")
        sketches = _decode(t["sketches"], t["sketch_offsets"], indices, "L" if sketch_channels == 1 else "RGB")
        self.device = torch.device(device)
        self.photos = torch.from_numpy(photos).to(self.device)
        self.sketches = torch.from_numpy(sketches).to(self.device)
        self.styles = torch.from_numpy(t["styles"][indices]).to(self.device)
        self.augment, self.seed = augment, int(seed)
        self.sparse_share, self.sparse = float(sparse_share), None
        if sparse_share:  # (pairs, K, C, H, W) uint8; drawing k of pair i is blob item i * K + k
            k = info["sparse_per_pair"]
            items = (indices[:, None] * k + np.arange(k)).reshape(-1)
            drawings = _decode(t["sparse"], t["sparse_offsets"], items, "L" if sketch_channels == 1 else "RGB")
            self.sparse = torch.from_numpy(drawings.reshape(len(indices), k, *drawings.shape[1:])).to(self.device)

    def __len__(self) -> int:
        return len(self.names)

    def num_batches(self, batch_size: int, num_processes: int = 1) -> int:
        """Batches per epoch for one process (a last partial batch is dropped unless it is the only one)."""
        per_process = len(self) // num_processes
        return max(1, per_process // batch_size) if per_process else 1

    def style_of(self, indices: torch.Tensor) -> list[str]:
        return [self.style_names[i] if i >= 0 else "" for i in self.styles[indices].tolist()]

    def _tensors(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return uint8_to_tensor(self.photos[idx]), uint8_to_tensor(self.sketches[idx])

    def batches(self, epoch: int, batch_size: int, *, num_processes: int = 1, process_index: int = 0, skip: int = 0):
        """The batches of ``epoch`` for this process, from batch ``skip`` on (resuming mid-epoch).

        Items: ``{"photo", "sketch", "style" (list of names), "index", "coin"}``, on the pack's device;
        ``coin`` is one uniform draw per pair (from the same seeded stream), for per-pair choices such
        as ``--sketch_source mixed``.
        """
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self), generator=g)[process_index::num_processes]
        n = self.num_batches(batch_size, num_processes)
        g_aug = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 64 + process_index)
        params = self.augment.sample(len(order), g_aug) if self.augment is not None else None
        coins = torch.rand(len(order), generator=g_aug)
        picks = torch.randint(self.sparse.shape[1], (len(order),), generator=g_aug) if self.sparse is not None else None
        for b in range(skip, n):
            sel = slice(b * batch_size, (b + 1) * batch_size)
            idx = order[sel].to(self.device)
            photo, sketch = self._tensors(idx)
            if picks is not None:  # before the warp, so that a drawing moves with its photo
                use = (coins[sel] >= 1 - self.sparse_share).to(self.device)[:, None, None, None]
                drawn = uint8_to_tensor(self.sparse[idx, picks[sel].to(self.device)])
                sketch = torch.where(use, drawn, sketch)
            if params is not None:
                photo, sketch = augment_pairs(photo, sketch, {k: v[sel] for k, v in params.items()})
            yield {"photo": photo, "sketch": sketch, "style": self.style_of(idx), "index": idx,
                   "coin": coins[sel].to(self.device)}

    def first(self, n: int) -> dict:
        """The first ``n`` pairs, unaugmented (validation grids)."""
        idx = torch.arange(min(n, len(self)), device=self.device)
        photo, sketch = self._tensors(idx)
        return {"photo": photo, "sketch": sketch, "style": self.style_of(idx), "index": idx}
