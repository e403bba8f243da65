"""The README's contact sheet: test-split faces through the shipped models, via the public pipeline.

    python scripts/make_figure.py --data_dir ../data-full/cufs --split test --n 4 --output docs/results.png

Columns: photo | photo2sketch | XDoG | drawn sketch (ground truth) | sketch2photo of the drawn sketch |
line drawing of the photo | sketch2photo of that line drawing. Test images come from research-use
data sets: the figure is for illustration only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from photosketch import PhotoSketchPipeline, line_drawing, load_image  # noqa: E402
from photosketch.data import find_pairs  # noqa: E402

COLUMNS = ["photo", "photo2sketch", "XDoG", "drawn sketch", "sketch2photo", "line drawing", "sketch2photo"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--stride", type=int, default=17, help="take every k-th pair, for variety")
    p.add_argument("--cell", type=int, default=128, help="cell height in pixels")
    p.add_argument("--output", type=Path, default=Path("docs/results.png"))
    p.add_argument("--style", default=None, help="photo2sketch's drawing style (default: the pipeline's)")
    args = p.parse_args(argv)
    to_sketch = PhotoSketchPipeline.from_pretrained("photo2sketch", style=args.style)
    xdog = PhotoSketchPipeline.from_pretrained("xdog")
    to_photo = PhotoSketchPipeline.from_pretrained("sketch2photo")
    rows = []
    for photo_path, sketch_path in find_pairs(args.data_dir, args.split)[:: args.stride][: args.n]:
        photo, sketch = load_image(photo_path), load_image(sketch_path)
        lines = line_drawing(photo)
        rows.append([photo, to_sketch(photo), xdog(photo), sketch, to_photo(sketch), lines, to_photo(lines)])
    w = round(args.cell * rows[0][0].width / rows[0][0].height)
    header = 18
    sheet = Image.new("RGB", (w * len(COLUMNS), header + args.cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(COLUMNS):
        draw.text((c * w + 4, 3), title, fill="black")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(img.convert("RGB").resize((w, args.cell), Image.Resampling.LANCZOS), (c * w, header + r * args.cell))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"wrote {args.output} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
