"""Before / after contact sheet of face alignment + background whitening on real portraits.

    python scripts/make_alignment_sheet.py --portraits ../portraits-sheet --output docs/alignment-portraits.jpg

Rows: each portrait, plus two made from them (``--composites``): two people side by side, and the
first portrait turned 25 degrees. Columns, all through the public ``PhotoSketchPipeline`` with the
shipped ``photo2sketch``:

- photo;
- before: the whole image, as the pipeline did before alignment existed (``align=False,
  background=False, upsample="bicubic"``; the README's first CLI example then);
- before, face crop: the same with the Haar face crop (``--face-crop``; the output is the crop);
- after: the pipeline's defaults (aligned faces, white background, guided full-resolution paste-back).

Use portraits that are public domain or CC0 and not from any training set (README says which).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_style_sheet import read_portraits, save_sheet  # noqa: E402

from photosketch import PhotoSketchPipeline  # noqa: E402

COLUMNS = ("photo", "before: whole image", "before: --face-crop", "after: defaults")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--portraits", type=Path, required=True, help="a folder of portrait photos")
    p.add_argument("--model", default="photo2sketch", help="registry name, folder or Hub id of a photo→sketch model")
    p.add_argument("--output", type=Path, default=Path("docs/alignment-portraits.jpg"))
    p.add_argument("--composites", action=argparse.BooleanOptionalAction, default=True,
                   help="add 'two people' (the 2nd and 3rd portraits side by side) and 'turned 25°' (the 1st) rows")
    p.add_argument("--cell", type=int, default=176, help="cell height in pixels")
    p.add_argument("--quality", type=int, default=82, help="JPEG quality")
    return p.parse_args(argv)


def two_people(a: Image.Image, b: Image.Image, height: int = 360) -> Image.Image:
    a, b = (im.convert("RGB").resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in (a, b))
    out = Image.new("RGB", (a.width + b.width, height))
    out.paste(a, (0, 0))
    out.paste(b, (a.width, 0))
    return out


def turned(img: Image.Image, degrees: float = 25.0) -> Image.Image:
    rot = img.convert("RGB").rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    left, top = (rot.width - img.width) // 2, (rot.height - img.height) // 2
    return rot.crop((left, top, left + img.width, top + img.height))


def main(argv=None) -> int:
    args = parse_args(argv)
    photos = read_portraits(args.portraits)
    if args.composites and len(photos) >= 3:
        photos.append(("two people (composite)", two_people(photos[1][1], photos[2][1])))
        photos.append(("turned 25° (composite)", turned(photos[0][1])))
    after = PhotoSketchPipeline.from_pretrained(args.model)
    before = PhotoSketchPipeline(after.model, direction=after.direction, style=after.style, align=False,
                                 background=False, upsample="bicubic")
    rows = []
    for name, photo in photos:
        rows.append((name, [photo, before(photo), before(photo, face_crop=True), after(photo)]))
        print(f"{name}: done", file=sys.stderr)

    h, pad, header, label_w = args.cell, 6, 18, 0
    widths = [0] * len(COLUMNS)
    scaled_rows = []
    for name, cells in rows:
        scaled = [c.convert("RGB").resize((max(1, round(c.width * h / c.height)), h), Image.Resampling.LANCZOS) for c in cells]
        widths = [max(w, s.width) for w, s in zip(widths, scaled)]
        scaled_rows.append((name, scaled))
    sheet = Image.new("RGB", (sum(widths) + pad * (len(widths) + 1), header + len(rows) * (h + pad + 14) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    x = pad
    for label, w in zip(COLUMNS, widths):
        draw.text((x, 3), label, fill="black")
        x += w + pad
    y = header
    for name, scaled in scaled_rows:
        draw.text((pad, y), name, fill=(90, 90, 90))
        y += 14
        x = pad
        for cell, w in zip(scaled, widths):
            sheet.paste(cell, (x + (w - cell.width) // 2, y))
            x += w + pad
        y += h + pad
    save_sheet(sheet, args.output, f"{len(rows)} rows", quality=args.quality)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
