"""Finding and loading face photo / sketch data.

Folder layouts understood everywhere (training, evaluation, data preparation):

    DIR/photos/NAME.ext + DIR/sketches/NAME.ext            one split
    DIR/{train,val,test}/photos + DIR/{train,val,test}/sketches   several splits

A photo and a sketch form a pair when their file stems match. Files are opened by content, not
by extension (FS2K's sketch2 files are PNG data named .jpg).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, UnidentifiedImageError
from torch.utils.data import Dataset

from .image import ImageLoadError, load_image, pil_to_tensor, to_mode

logger = logging.getLogger(__name__)

#: Each split folder's pair -> sketch style file (``scripts/prepare_data.py`` writes it).
STYLES_FILE = "styles.csv"

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
PHOTO_DIR, SKETCH_DIR = "photos", "sketches"


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted), by extension; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def split_root(root: str | Path, split: str | None = None) -> Path:
    """The folder holding ``photos/`` and ``sketches/`` for ``split`` (or ``root`` itself)."""
    root = Path(root)
    if split is not None and (root / split / PHOTO_DIR).is_dir():
        return root / split
    if (root / PHOTO_DIR).is_dir() or split is None:
        return root
    raise FileNotFoundError(f"{root}: neither {root / split / PHOTO_DIR} nor {root / PHOTO_DIR} exists")


def find_pairs(root: str | Path, split: str | None = None) -> list[tuple[Path, Path]]:
    """(photo, sketch) paths matched by file stem under ``root`` (or ``root/split``).

    Raises:
        FileNotFoundError: the folders are missing or hold no images.
        ValueError: no stems match, or several files share a stem.
    """
    base = split_root(root, split)
    photos, sketches = list_images(base / PHOTO_DIR), list_images(base / SKETCH_DIR)
    if not photos or not sketches:
        raise FileNotFoundError(f"{base}: {PHOTO_DIR}/ has {len(photos)} images and {SKETCH_DIR}/ has {len(sketches)}; both need some")
    by_stem: dict[str, Path] = {}
    for p in sketches:
        if p.stem in by_stem:
            raise ValueError(f"two sketches share the stem {p.stem!r}: {by_stem[p.stem].name}, {p.name}")
        by_stem[p.stem] = p
    pairs = [(p, by_stem[p.stem]) for p in photos if p.stem in by_stem]
    if not pairs:
        raise ValueError(
            f"{base}: no photo matches a sketch by file name (e.g. photos/{photos[0].name} vs sketches/{sketches[0].name})"
        )
    unmatched = len(photos) - len(pairs)
    if unmatched:
        logger.warning("%s: %d photos have no sketch with the same name and are skipped", base, unmatched)
    return pairs


@functools.lru_cache(maxsize=64)
def _warn_once(message: str) -> None:
    # A trainer lists one folder more than once (the argument check, the training data): say it once.
    logger.warning(message)


def _readable(path: Path) -> bool:
    """Whether ``path`` opens as an image (header only: cheap; a truncated body is caught when loaded).

    A trainer lists the same folder more than once (the argument check, then the training data), so the
    answer is kept per file version (path, modification time, size): a folder is header-read once, and
    a file replaced in between is read again.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    return _readable_version(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=1 << 16)
def _readable_version(path: str, mtime_ns: int, size: int) -> bool:
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return False


def drop_unreadable(items: list, paths, what: str, where: str | Path) -> list:
    """``items`` whose files (``paths(item)``, one or several) all open as images.

    Logs how many were found and how many are skipped (naming a few), so a count of training pairs is
    never silently smaller than the folder: "10 pairs found, 1 skipped (unreadable: 3.png)".
    """
    kept, bad = [], []
    for item in items:
        unreadable = [p.name for p in paths(item) if p is not None and not _readable(p)]
        if unreadable:
            bad.append(", ".join(unreadable))
        else:
            kept.append(item)
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        _warn_once(f"{where}: {len(items)} {what} found, {len(bad)} skipped (unreadable: {'; '.join(bad[:5])}{more})")
    if not kept:
        raise ValueError(f"{where}: none of the {len(items)} {what} could be read")
    return kept


def read_styles(path: str | os.PathLike) -> dict[str, str]:
    """``name,style`` rows (a ``styles.csv``) -> {file stem: style}. ``name`` may carry an extension or a folder."""
    styles: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"name", "style"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs the columns name,style; has {reader.fieldnames}")
        for row in reader:
            name = (row["name"] or "").strip()
            if name:
                styles[Path(name).stem] = (row["style"] or "").strip()
    return styles


# ---------------------------------------------------------------------------------------------
# Training datasets
# ---------------------------------------------------------------------------------------------

#: What a training item's sketch is: the drawn sketch, a line drawing of the photo, a few-stroke sparse
#: drawing of it (photosketch.classical.sparse_drawing), "mixed" = real or lines (p=0.5 each), "all" =
#: real, lines or sparse (p=1/3 each): sketch->photo models then also learn what people draw (issue 15).
SKETCH_SOURCES = ("real", "lines", "sparse", "mixed", "all")
#: The sources that need no sketches folder.
DERIVED_SOURCES = ("lines", "sparse")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the geometric + colour augmentation, applied identically to both images of a pair."""

    flip: bool = False
    angle: float = 0.0  # degrees, counter-clockwise
    scale: float = 1.0  # side of the crop relative to the image (random resized crop)
    cx: float = 0.5  # crop centre offset in [0, 1] of the free margin
    cy: float = 0.5
    brightness: float = 1.0  # photo-only colour jitter factors (PIL ImageEnhance)
    contrast: float = 1.0
    saturation: float = 1.0
    grayscale: bool = False  # photo only: a black-and-white photo in, the same sketch out

    @classmethod
    def sample(cls, rng: np.random.Generator, max_angle: float = 5.0, min_scale: float = 0.9, jitter: float = 0.1,
               grayscale_prob: float = 0.0):
        """``jitter``: photo exposure/contrast/saturation factors in [1 - jitter, 1 + jitter];
        ``grayscale_prob``: how often the photo is made black-and-white (real portraits often are)."""
        params = cls(
            flip=bool(rng.random() < 0.5),
            angle=float(rng.uniform(-max_angle, max_angle)),
            scale=float(rng.uniform(min_scale, 1.0)),
            cx=float(rng.random()),
            cy=float(rng.random()),
            brightness=float(rng.uniform(1 - jitter, 1 + jitter)),
            contrast=float(rng.uniform(1 - jitter, 1 + jitter)),
            saturation=float(rng.uniform(1 - jitter, 1 + jitter)),
        )
        # Drawn last, so the draws above are those of earlier versions for the same seed.
        return dataclasses.replace(params, grayscale=bool(rng.random() < grayscale_prob)) if grayscale_prob > 0 else params


def _border_fill(img: Image.Image):
    """Median colour of the image border: rotation corners are filled with background, not black."""
    arr = np.asarray(img)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]], axis=0)
    med = np.median(border, axis=0)
    return int(med) if np.ndim(med) == 0 else tuple(int(v) for v in med)


def square_crop_resize(img: Image.Image, resolution: int, scale: float = 1.0, cx: float = 0.5, cy: float = 0.5) -> Image.Image:
    """Crop a square of side ``scale * min(w, h)`` at (cx, cy) of the free margin, resize to ``resolution``.

    Square crops keep the aspect ratio, so a face has the same proportions in training as in the
    pipeline, which scales the shorter side to the model size and runs the whole image.
    """
    w, h = img.size
    side = min(w, h) * scale
    left, top = (w - side) * cx, (h - side) * cy
    return img.resize((resolution, resolution), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def augment_image(img: Image.Image, params: AugmentParams, resolution: int, *, is_photo: bool) -> Image.Image:
    """Flip, rotate, random square crop resized to ``resolution`` x ``resolution`` and (photos only) colour jitter.

    Sketches get a white fill where the rotation uncovers the canvas (they are drawn on white paper);
    photos get their border colour.
    """
    if params.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if params.angle:
        fill = _border_fill(img) if is_photo else (255 if img.mode == "L" else (255, 255, 255))
        img = img.rotate(params.angle, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    img = square_crop_resize(img, resolution, params.scale, params.cx, params.cy)
    if is_photo:
        img = ImageEnhance.Brightness(img).enhance(params.brightness)
        img = ImageEnhance.Contrast(img).enhance(params.contrast)
        if img.mode == "RGB":
            img = ImageEnhance.Color(img).enhance(params.saturation)
            if params.grayscale:
                img = img.convert("L").convert("RGB")
    return img


def _derived_sketch(photo: Image.Image, source: str, seed: int) -> Image.Image:
    # Imported lazily: photosketch.classical is optional for "real" sketches.
    from photosketch.classical import line_drawing, sparse_drawing

    return line_drawing(photo) if source == "lines" else sparse_drawing(photo, seed=seed)


def _face_crop_pair(photo: Image.Image, sketch: Image.Image | None, detector=None):
    """Crop a pair with the head-and-shoulders box of the face found in the photo (the same box for
    both, so the pair stays aligned); unchanged when no face is found."""
    from photosketch.face import crop_face  # lazy: only --face_crop needs OpenCV's cascade

    cropped, box = crop_face(photo, detector=detector)
    if box is None:
        return photo, sketch
    x, y, w, h = box
    if sketch is not None:
        if sketch.size != photo.size:
            sketch = sketch.resize(photo.size, Image.Resampling.BICUBIC)
        sketch = sketch.crop((x, y, x + w, y + h))
    return cropped, sketch


class _ImageDataset(Dataset):
    """Shared machinery: a seeded per-item RNG (so augmentation is reproducible across epochs, workers
    and resumed runs) and skipping unreadable files with a warning instead of crashing mid-epoch."""

    def __init__(self, resolution: int, photo_channels: int, sketch_channels: int, augment: bool, seed: int,
                 crop_size: int | None = None):
        for name, ch in (("photo_channels", photo_channels), ("sketch_channels", sketch_channels)):
            if ch not in (1, 3):
                raise ValueError(f"{name} must be 1 or 3; got {ch}")
        if crop_size is not None and not 1 <= crop_size <= resolution:
            raise ValueError(f"crop_size must be between 1 and the resolution ({resolution}); got {crop_size}")
        self.resolution = resolution
        self.crop_size = crop_size if crop_size != resolution else None
        self.photo_channels = photo_channels
        self.sketch_channels = sketch_channels
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._bad: set[str] = set()

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer (and accelerate) at the start of each epoch: new augmentations per epoch."""
        self.epoch = int(epoch)

    def _rng(self, index: int, stream: int = 0) -> np.random.Generator:
        # Independent of global RNG state and of the worker that loads the item.
        return np.random.default_rng([self.seed, self.epoch, index, stream])

    def _load(self, path: Path) -> Image.Image:
        return load_image(path)

    def _get(self, index: int) -> dict:
        raise NotImplementedError

    def _n_items(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        n = self._n_items()
        for k in range(n):
            j = (index + k) % n
            try:
                item = self._get(j)
            except (ImageLoadError, OSError) as exc:
                key = str(exc)
                if key not in self._bad:
                    self._bad.add(key)
                    logger.warning("skipping unreadable training image: %s", exc)
                continue
            return self._window(item, j) if self.crop_size and self.augment else item
        raise RuntimeError(f"{type(self).__name__}: none of the {n} items could be read")

    def _window(self, item: dict, index: int) -> dict:
        """A random ``crop_size`` square of the ``resolution``-sized images, the same window for photo
        and sketch: the networks are fully convolutional (and the discriminator a PatchGAN), so a step
        on 128-px windows of 256-px faces costs what a 128-px step costs, while the model learns the
        256-px scale it will be run at."""
        side = self.crop_size
        rng = self._rng(index, 2)  # its own stream: the augmentation draws stay those of a full-size run
        top, left = (int(v) for v in rng.integers(0, self.resolution - side + 1, size=2))
        return {k: v[:, top:top + side, left:left + side] if k in ("photo", "sketch") else v for k, v in item.items()}

    def _tensors(self, photo: Image.Image, sketch: Image.Image, params: AugmentParams | None) -> tuple:
        photo = to_mode(photo, self.photo_channels)
        sketch = to_mode(sketch, self.sketch_channels)
        if params is None:  # no augmentation: centre square crop
            photo = square_crop_resize(photo, self.resolution)
            sketch = square_crop_resize(sketch, self.resolution)
        else:
            photo = augment_image(photo, params, self.resolution, is_photo=True)
            sketch = augment_image(sketch, params, self.resolution, is_photo=False)
        return pil_to_tensor(photo, self.photo_channels), pil_to_tensor(sketch, self.sketch_channels)


class PairedDataset(_ImageDataset):
    """Aligned (photo, sketch) pairs for pix2pix-style training.

    Items are ``{"photo": (C, H, W), "sketch": (C, H, W), "name": str, "style": str}`` in [-1, 1], both at
    ``resolution`` x ``resolution`` and augmented identically (flip, +-5 degree rotation, 0.9-1.0
    random resized crop; small colour jitter on the photo only).

    Args:
        root: ``DIR`` with ``photos/`` + ``sketches/``, or with ``{train,test}/photos`` etc.
        split: ``"train"``, ``"test"``...; falls back to ``root`` when ``root/split`` is absent.
        sketch_source: ``"real"`` (the drawn sketch), ``"lines"`` (``photosketch.classical.line_drawing``
            of the photo; the sketches folder may then be absent), ``"sparse"`` (a few-stroke
            ``photosketch.classical.sparse_drawing`` of the photo, seeded per item and epoch), ``"mixed"``
            (real or lines, p=0.5 each, from the seeded RNG) or ``"all"`` (real, lines or sparse, 1/3 each).
        face_crop: crop each pair around the face detected in the photo first.
        seed: seeds the per-item augmentation RNG (together with the epoch and the index).
        photo_jitter: with ``augment``, the photo's exposure/contrast/saturation vary by up to this
            factor (0.25 for photo->sketch, toward badly lit real portraits; 0 when the photo is the
            target, so a sketch->photo model is not taught to paint washed-out photos).
        grayscale_prob: with ``augment``, the share of photos made black-and-white (0.2 for
            photo->sketch, so black-and-white portraits give a sketch as strong as colour ones).
        crop_size: with ``augment``, items are a random ``crop_size`` square window of the
            ``resolution``-sized pair (the same window for photo and sketch); ``None``: the whole square.

    ``style`` is the pair's sketch style from the split folder's ``styles.csv`` (``name,style``),
    ``""`` when the file is absent or does not list the pair.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        resolution: int = 256,
        photo_channels: int = 3,
        sketch_channels: int = 1,
        augment: bool = True,
        sketch_source: str = "real",
        face_crop: bool = False,
        seed: int = 0,
        photo_jitter: float = 0.1,
        grayscale_prob: float = 0.0,
        crop_size: int | None = None,
    ):
        super().__init__(resolution, photo_channels, sketch_channels, augment, seed, crop_size)
        if not (0 <= photo_jitter < 1 and 0 <= grayscale_prob <= 1):
            raise ValueError(f"photo_jitter must be in [0, 1) and grayscale_prob in [0, 1]; got {photo_jitter}, {grayscale_prob}")
        self.photo_jitter, self.grayscale_prob = photo_jitter, grayscale_prob
        if sketch_source not in SKETCH_SOURCES:
            raise ValueError(f"sketch_source must be one of {', '.join(SKETCH_SOURCES)}; got {sketch_source!r}")
        self.sketch_source = sketch_source
        self.face_crop = face_crop
        self._detector = None  # photosketch.face.FaceDetector, created on first use
        base = split_root(root, split)
        if sketch_source in DERIVED_SOURCES and not (base / SKETCH_DIR).is_dir():
            photos = list_images(base / PHOTO_DIR)
            if not photos:
                raise FileNotFoundError(f"{base / PHOTO_DIR}: no images")
            pairs: list[tuple[Path, Path | None]] = [(p, None) for p in photos]
        else:
            pairs = list(find_pairs(root, split))
        self.pairs = drop_unreadable(pairs, lambda pair: pair, "pairs", base)
        self.styles = read_styles(base / STYLES_FILE) if (base / STYLES_FILE).is_file() else {}

    @property
    def style_names(self) -> list[str]:
        """The distinct styles of the pairs, sorted (``""`` among them when some pair has none)."""
        return sorted(set(self.styles.get(p.stem, "") for p, _ in self.pairs))

    def __getstate__(self):
        # DataLoader workers get a copy of the dataset; OpenCV's cascade does not pickle.
        return {**self.__dict__, "_detector": None}

    def _n_items(self) -> int:
        return len(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def _get(self, index: int) -> dict:
        photo_path, sketch_path = self.pairs[index]
        rng = self._rng(index)
        source = self.sketch_source
        if source == "mixed":
            source = "lines" if rng.random() < 0.5 else "real"
        elif source == "all":
            source = ("real", "lines", "sparse")[int(rng.integers(3))]
        derived = source in DERIVED_SOURCES
        photo = self._load(photo_path)
        sketch = None if derived else self._load(sketch_path)
        if self.face_crop:
            if self._detector is None:
                from photosketch.face import FaceDetector

                self._detector = FaceDetector()
            photo, sketch = _face_crop_pair(photo, sketch, self._detector)
        if derived:  # seeded like the augmentation: the same drawing for this item, epoch and seed
            sketch = _derived_sketch(photo.convert("RGB"), source, int(rng.integers(2**31)))
        elif sketch.size != photo.size:
            sketch = sketch.resize(photo.size, Image.Resampling.BICUBIC)
        params = AugmentParams.sample(rng, jitter=self.photo_jitter, grayscale_prob=self.grayscale_prob) if self.augment else None
        photo_t, sketch_t = self._tensors(photo, sketch, params)
        return {"photo": photo_t, "sketch": sketch_t, "name": photo_path.stem, "style": self.styles.get(photo_path.stem, "")}


class UnpairedDataset(_ImageDataset):
    """Independent photos and sketches for CycleGAN-style training.

    ``len`` is the larger of the two sets; item ``i`` is photo ``i % n_photos`` and a sketch drawn at
    random from an RNG seeded by (seed, epoch, i), so a run is reproducible and resumable. Each image
    is augmented on its own. Items: ``{"photo", "sketch", "photo_name", "sketch_name", "name"}``.
    """

    def __init__(
        self,
        photo_dir: str | Path,
        sketch_dir: str | Path,
        resolution: int = 256,
        photo_channels: int = 3,
        sketch_channels: int = 1,
        augment: bool = True,
        seed: int = 0,
        crop_size: int | None = None,
    ):
        super().__init__(resolution, photo_channels, sketch_channels, augment, seed, crop_size)
        self.photos, self.sketches = list_images(photo_dir), list_images(sketch_dir)
        for folder, files in ((photo_dir, self.photos), (sketch_dir, self.sketches)):
            if not files:
                raise FileNotFoundError(f"{folder}: no images")
        self.photos = drop_unreadable(self.photos, lambda p: (p,), "photos", photo_dir)
        self.sketches = drop_unreadable(self.sketches, lambda p: (p,), "sketches", sketch_dir)

    def _n_items(self) -> int:
        return max(len(self.photos), len(self.sketches))

    def __len__(self) -> int:
        return self._n_items()

    def _get(self, index: int) -> dict:
        rng = self._rng(index)
        photo_path = self.photos[index % len(self.photos)]
        sketch_path = self.sketches[int(rng.integers(len(self.sketches)))]
        photo, sketch = self._load(photo_path), self._load(sketch_path)
        photo = to_mode(photo, self.photo_channels)
        sketch = to_mode(sketch, self.sketch_channels)
        if self.augment:
            photo = augment_image(photo, AugmentParams.sample(rng), self.resolution, is_photo=True)
            sketch = augment_image(sketch, AugmentParams.sample(self._rng(index, 1)), self.resolution, is_photo=False)
        else:
            photo = square_crop_resize(photo, self.resolution)
            sketch = square_crop_resize(sketch, self.resolution)
        return {
            "photo": pil_to_tensor(photo, self.photo_channels),
            "sketch": pil_to_tensor(sketch, self.sketch_channels),
            "photo_name": photo_path.stem,
            "sketch_name": sketch_path.stem,
            "name": photo_path.stem,
        }
