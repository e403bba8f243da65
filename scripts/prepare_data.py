"""Lay out FS2K and CUFS in the folder layout the trainers and the evaluator read.

    python scripts/prepare_data.py --data_dir ../shared/data --output_dir ../data-aligned --max_side 286

reads each set's ``pairs.csv`` (see ../shared/data/README.md) and writes

    OUT/fs2k/{train,val,test}/{photos,sketches}/NAME.png    (+ OUT/fs2k/test_styles.csv)
    OUT/cufs/{train,val,test}/{photos,sketches}/NAME.png
    OUT/combined/{train,val}/...                            FS2K + CUFS training data together
    OUT/*/{train,val,test}/styles.csv                       each pair's sketch style (see below)

Style names: FS2K's three artist styles are ``fs2k-1``, ``fs2k-2``,
``fs2k-3`` (``pairs.csv`` style 0, 1, 2), every CUFS sketch is ``cufs``. The trainers read
``styles.csv`` to train style-conditioned models (``--style_conditioning``).

Official test splits (FS2K 1046, CUFS-CUHK 100) go to ``test/`` only; ``val/`` is a seeded slice of
the *training* split, so model selection never sees a test image. The images are research-use
data: keep OUT outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from photosketch.image import ImageLoadError, load_image  # noqa: E402

logger = logging.getLogger("prepare_data")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True, help="folder holding fs2k/ and cufs/ with their pairs.csv")
    p.add_argument("--output_dir", type=Path, required=True, help="where to write the layout (outside the repo)")
    p.add_argument("--max_side", type=int, default=None,
                   help="shrink images so their longer side is at most this (faster training loads); default: keep size")
    p.add_argument("--val_fraction", type=float, default=0.05, help="share of each training split held out for validation")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def read_rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fs2k_items(root: Path) -> list[dict]:
    return [
        {"name": r["id"], "photo": root / r["photo"], "sketch": root / r["sketch"], "split": r["split"],
         "style": f"fs2k-{int(r['style']) + 1}"}
        for r in read_rows(root / "pairs.csv")
    ]


def cufs_items(root: Path) -> list[dict]:
    items = []
    for r in read_rows(root / "pairs.csv"):
        # File names repeat across subsets (00.png in CUHK and AR): prefix the subset folder.
        name = f"{Path(r['photo']).parts[0]}_{Path(r['photo']).stem}"
        items.append({"name": name, "photo": root / r["photo"], "sketch": root / r["sketch"], "split": r["split"], "style": "cufs"})
    return items


def assign_val(items: list[dict], fraction: float, seed: int) -> None:
    train = [it for it in items if it["split"] == "train"]
    rng = random.Random(seed)
    for it in rng.sample(train, max(1, round(len(train) * fraction))):
        it["split"] = "val"


def write_image(src: Path, dst: Path, max_side: int | None) -> None:
    img = load_image(src)  # opens by content: FS2K's sketch2 files are PNG data named .jpg
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    img.save(dst)


def write_styles(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "style"])
        w.writerows(rows)


def export(items: list[dict], out: Path, max_side: int | None, desc: str) -> int:
    written = 0
    for it in tqdm(items, desc=desc, unit="pair"):
        base = out / it["split"]
        (base / "photos").mkdir(parents=True, exist_ok=True)
        (base / "sketches").mkdir(parents=True, exist_ok=True)
        try:
            write_image(it["photo"], base / "photos" / f"{it['name']}.png", max_side)
            write_image(it["sketch"], base / "sketches" / f"{it['name']}.png", max_side)
            written += 1
        except ImageLoadError as exc:
            logger.warning("skipped pair %s: %s", it["name"], exc)
    for split in sorted({it["split"] for it in items}):
        write_styles(out / split / "styles.csv", [(it["name"], it["style"]) for it in items if it["split"] == split])
    return written


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sets = {"fs2k": fs2k_items(args.data_dir / "fs2k"), "cufs": cufs_items(args.data_dir / "cufs")}
    for name, items in sets.items():
        assign_val(items, args.val_fraction, args.seed)
        n = export(items, args.output_dir / name, args.max_side, name)
        skipped = f", {len(items) - n} skipped (unreadable, see the warnings above)" if n < len(items) else ""
        logger.info("%s: %d pairs found, %d written to %s%s", name, len(items), n, args.output_dir / name, skipped)
    # Kept for evaluate.py's per-style FS2K table (the same rows as fs2k/test/styles.csv).
    write_styles(args.output_dir / "fs2k" / "test_styles.csv",
                 [(it["name"], it["style"]) for it in sets["fs2k"] if it["split"] == "test"])
    # Combined training/validation data; prefixes keep FS2K and CUFS names apart.
    for split in ("train", "val"):
        for kind in ("photos", "sketches"):
            dst = args.output_dir / "combined" / split / kind
            dst.mkdir(parents=True, exist_ok=True)
            for name in ("fs2k", "cufs"):
                for src in sorted((args.output_dir / name / split / kind).glob("*.png")):
                    link = dst / f"{name}_{src.name}"
                    if not link.exists():
                        link.symlink_to(src.resolve())
        write_styles(args.output_dir / "combined" / split / "styles.csv",
                     [(f"{name}_{it['name']}", it["style"]) for name in ("fs2k", "cufs") for it in sets[name] if it["split"] == split])
    logger.info("combined train/val written to %s", args.output_dir / "combined")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
