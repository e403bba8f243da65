"""Finding and loading face photo / sketch data.

Folder layouts understood everywhere (training, evaluation, data preparation):

    DIR/photos/NAME.ext + DIR/sketches/NAME.ext            one split
    DIR/{train,val,test}/photos + DIR/{train,val,test}/sketches   several splits

A photo and a sketch form a pair when their file stems match. Files are opened by content, not
by extension (FS2K's sketch2 files are PNG data named .jpg).
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

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
