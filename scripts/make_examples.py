"""Generate the Space's example images: synthetic faces drawn with OpenCV, and sketches of them.

Everything in ``examples/`` is produced by this script (no third-party photos), so the examples
can be shipped under CC0. Run from the repository root::

    python scripts/make_examples.py            # writes examples/*.png
    python scripts/make_examples.py --check    # exit 1 if the files on disk are out of date

Photos: ``examples/face_<n>.png`` (256x320 RGB). Sketches to start from in the Sketch -> Photo
tab: ``examples/sketch_<n>.png`` (the project's ``line_drawing`` of each face) and
``examples/outline.png`` (a hand-drawn-style line face, the kind of input a user draws) and
``examples/sparse_<n>.png`` (``sparse_drawing`` of each face: a few strokes, as people draw).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples"
SIZE = (256, 320)  # width, height: a portrait crop like the CUFS photos (200x250), a little larger
SKETCH_STRENGTH = 0.9  # darker than the default 0.5: these are starting points to draw over


@dataclass(frozen=True)
class Face:
    skin: tuple[int, int, int]  # RGB
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    shirt: tuple[int, int, int]
    background: tuple[int, int, int]
    face_w: float  # half-width of the face ellipse, as a fraction of the image width
    hair_style: str  # "short", "long", "bald"
    glasses: bool = False
    beard: bool = False


FACES = [
    Face((224, 182, 152), (60, 40, 28), (70, 110, 150), (170, 90, 90), (60, 90, 140), (214, 220, 228), 0.27, "short"),
    Face((190, 140, 105), (25, 20, 18), (60, 45, 30), (140, 70, 70), (150, 60, 60), (232, 226, 212), 0.25, "long"),
    Face((236, 200, 175), (170, 120, 70), (80, 130, 90), (190, 100, 105), (80, 120, 80), (205, 215, 205), 0.26, "long", glasses=True),
    Face((140, 95, 70), (30, 25, 22), (40, 30, 20), (110, 60, 55), (200, 200, 190), (220, 214, 228), 0.28, "bald", beard=True),
]


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return rgb[2], rgb[1], rgb[0]


def draw_face(face: Face, seed: int) -> Image.Image:
    """One synthetic portrait: head, hair, eyes, brows, nose, mouth, ears, neck, shoulders."""
    w, h = SIZE
    rng = np.random.default_rng(seed)
    # Background: a soft vertical gradient.
    top = np.array(_bgr(face.background), np.float32)
    ramp = np.linspace(1.0, 0.85, h, dtype=np.float32)[:, None, None]
    img = np.clip(top[None, None, :] * ramp * np.ones((h, w, 1), np.float32), 0, 255).astype(np.uint8)
    cx, cy = w // 2, int(h * 0.45)
    fw, fh = int(w * face.face_w), int(h * 0.30)
    skin, hair = _bgr(face.skin), _bgr(face.hair)
    shade = tuple(int(c * 0.8) for c in skin)

    if face.hair_style == "long":  # hair behind the head and shoulders
        cv2.ellipse(img, (cx, cy + int(fh * 0.35)), (int(fw * 1.35), int(fh * 1.35)), 0, 180, 360, hair, -1)
        cv2.rectangle(img, (cx - int(fw * 1.35), cy + int(fh * 0.3)), (cx + int(fw * 1.35), cy + int(fh * 1.25)), hair, -1)
    # Shoulders and neck.
    cv2.ellipse(img, (cx, h + int(h * 0.05)), (int(w * 0.48), int(h * 0.22)), 0, 180, 360, _bgr(face.shirt), -1)
    cv2.rectangle(img, (cx - int(fw * 0.45), cy + int(fh * 0.6)), (cx + int(fw * 0.45), cy + int(fh * 1.35)), shade, -1)
    # Ears, then the head.
    for dx in (-1, 1):
        cv2.ellipse(img, (cx + dx * fw, cy + int(fh * 0.05)), (int(fw * 0.16), int(fh * 0.2)), 0, 0, 360, shade, -1)
    cv2.ellipse(img, (cx, cy), (fw, fh), 0, 0, 360, skin, -1)
    if face.beard:
        cv2.ellipse(img, (cx, cy + int(fh * 0.35)), (int(fw * 0.95), int(fh * 0.68)), 0, 0, 180, hair, -1)
        cv2.ellipse(img, (cx, cy + int(fh * 0.42)), (int(fw * 0.3), int(fh * 0.14)), 0, 0, 360, skin, -1)
    if face.hair_style in ("short", "long"):
        cv2.ellipse(img, (cx, cy - int(fh * 0.45)), (int(fw * 1.08), int(fh * 0.7)), 0, 180, 360, hair, -1)
        cv2.ellipse(img, (cx - int(fw * 0.3), cy - int(fh * 0.68)), (int(fw * 0.75), int(fh * 0.22)), 12, 0, 180, hair, -1)
    else:  # bald: a highlight on the scalp
        cv2.ellipse(img, (cx - int(fw * 0.3), cy - int(fh * 0.6)), (int(fw * 0.25), int(fh * 0.1)), -20, 0, 360,
                    tuple(min(255, int(c * 1.12)) for c in skin), -1)

    # Eyes: white, iris, pupil, upper lid line; eyebrows above.
    ey = cy - int(fh * 0.1)
    for dx in (-1, 1):
        ex = cx + dx * int(fw * 0.42)
        cv2.ellipse(img, (ex, ey), (int(fw * 0.2), int(fh * 0.07)), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, (ex, ey), int(fh * 0.06), _bgr(face.iris), -1)
        cv2.circle(img, (ex, ey), int(fh * 0.028), (15, 15, 15), -1)
        cv2.circle(img, (ex - 2, ey - 2), 2, (255, 255, 255), -1)
        cv2.ellipse(img, (ex, ey), (int(fw * 0.21), int(fh * 0.08)), 0, 190, 350, (40, 30, 30), 2, cv2.LINE_AA)
        cv2.ellipse(img, (ex, ey - int(fh * 0.16)), (int(fw * 0.24), int(fh * 0.06)), 0, 200 if dx < 0 else 190,
                    350 if dx < 0 else 340, tuple(int(c * 0.7) for c in hair), 4, cv2.LINE_AA)
        if face.glasses:
            cv2.ellipse(img, (ex, ey), (int(fw * 0.3), int(fh * 0.14)), 0, 0, 360, (30, 30, 30), 2, cv2.LINE_AA)
    if face.glasses:
        cv2.line(img, (cx - int(fw * 0.12), ey), (cx + int(fw * 0.12), ey), (30, 30, 30), 2, cv2.LINE_AA)

    # Nose: a shaded ridge and nostrils.
    ny = cy + int(fh * 0.22)
    cv2.line(img, (cx + 3, ey + int(fh * 0.05)), (cx + 6, ny - 4), shade, 3, cv2.LINE_AA)
    cv2.ellipse(img, (cx, ny), (int(fw * 0.16), int(fh * 0.06)), 0, 10, 170, tuple(int(c * 0.65) for c in skin), 2, cv2.LINE_AA)
    # Mouth: upper and lower lip.
    my = cy + int(fh * 0.48)
    lips = _bgr(face.lips)
    cv2.ellipse(img, (cx, my), (int(fw * 0.32), int(fh * 0.07)), 0, 0, 180, lips, -1)
    cv2.ellipse(img, (cx, my), (int(fw * 0.32), int(fh * 0.04)), 0, 180, 360, tuple(int(c * 0.9) for c in lips), -1)
    cv2.line(img, (cx - int(fw * 0.32), my), (cx + int(fw * 0.32), my), (60, 30, 30), 1, cv2.LINE_AA)

    # Soft lighting: blur a little and add fine sensor-like noise, like a photo rather than a drawing.
    img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0, 3, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def draw_outline() -> Image.Image:
    """A simple hand-drawn-style line face: black strokes on white, like a Sketchpad drawing."""
    w, h = SIZE
    img = np.full((h, w), 255, np.uint8)
    cx, cy = w // 2, int(h * 0.45)
    fw, fh = int(w * 0.26), int(h * 0.3)
    black = 0
    cv2.ellipse(img, (cx, cy), (fw, fh), 0, 0, 360, black, 2, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy - int(fh * 0.45)), (int(fw * 1.08), int(fh * 0.7)), 0, 180, 360, black, 2, cv2.LINE_AA)
    cv2.ellipse(img, (cx - int(fw * 0.3), cy - int(fh * 0.68)), (int(fw * 0.75), int(fh * 0.22)), 12, 0, 180, black, 2, cv2.LINE_AA)
    for dx in (-1, 1):
        ex = cx + dx * int(fw * 0.42)
        ey = cy - int(fh * 0.1)
        cv2.ellipse(img, (ex, ey), (int(fw * 0.2), int(fh * 0.07)), 0, 0, 360, black, 2, cv2.LINE_AA)
        cv2.circle(img, (ex, ey), int(fh * 0.04), black, -1, cv2.LINE_AA)
        cv2.ellipse(img, (ex, ey - int(fh * 0.16)), (int(fw * 0.24), int(fh * 0.06)), 0, 200, 340, black, 2, cv2.LINE_AA)
        cv2.ellipse(img, (cx + dx * fw, cy + int(fh * 0.05)), (int(fw * 0.16), int(fh * 0.2)), 0,
                    270 if dx < 0 else -90, 450 if dx < 0 else 90, black, 2, cv2.LINE_AA)
    ny = cy + int(fh * 0.22)
    cv2.line(img, (cx + 3, cy - int(fh * 0.02)), (cx + 6, ny - 4), black, 2, cv2.LINE_AA)
    cv2.ellipse(img, (cx, ny), (int(fw * 0.16), int(fh * 0.06)), 0, 10, 170, black, 2, cv2.LINE_AA)
    my = cy + int(fh * 0.48)
    cv2.ellipse(img, (cx, my), (int(fw * 0.32), int(fh * 0.07)), 0, 0, 180, black, 2, cv2.LINE_AA)
    cv2.line(img, (cx - int(fw * 0.32), my), (cx + int(fw * 0.32), my), black, 2, cv2.LINE_AA)
    cv2.line(img, (cx - int(fw * 0.45), cy + int(fh * 0.9)), (cx - int(fw * 0.45), h - 30), black, 2, cv2.LINE_AA)
    cv2.line(img, (cx + int(fw * 0.45), cy + int(fh * 0.9)), (cx + int(fw * 0.45), h - 30), black, 2, cv2.LINE_AA)
    cv2.ellipse(img, (cx, h + int(h * 0.05)), (int(w * 0.48), int(h * 0.22)), 0, 180, 360, black, 2, cv2.LINE_AA)
    return Image.fromarray(img, mode="L")


def make_all() -> dict[str, Image.Image]:
    from photosketch.classical import line_drawing, sparse_drawing

    images: dict[str, Image.Image] = {}
    for i, face in enumerate(FACES, 1):
        photo = draw_face(face, seed=i)
        images[f"face_{i}.png"] = photo
        images[f"sketch_{i}.png"] = line_drawing(photo, strength=SKETCH_STRENGTH).convert("L")
        images[f"sparse_{i}.png"] = sparse_drawing(photo, seed=i, detail=0.4 + 0.15 * i, brush=3)
    images["outline.png"] = draw_outline()
    return images


def _digest(img: Image.Image) -> str:
    return hashlib.sha256(img.mode.encode() + str(img.size).encode() + img.tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: examples/)")
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    images = make_all()
    if args.check:
        stale = [name for name, img in images.items()
                 if not (args.out / name).is_file() or _digest(Image.open(args.out / name)) != _digest(img)]
        for name in stale:
            print(f"out of date: {args.out / name}", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        img.save(args.out / name, optimize=True)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
