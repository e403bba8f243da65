"""Contact sheet of real portraits in every style of a photo→sketch model, next to the classical ``pencil``.

    python scripts/make_style_sheet.py --portraits ../portraits --output docs/styles-portraits.jpg \\
        --previews examples/styles --compare old=../photo2sketch-before

Rows: each portrait (face-cropped by the pipeline, as the app does), and a black-and-white copy of
the first one (``--grayscale_copy``), so a colour and a grayscale input can be compared. Columns:
photo | pencil | the model in each of its styles (or the ``--styles`` named) | with ``--fixed_size``, each
again at the model's working size alone (``max_size`` = ``size``: how the pipeline ran before large
portraits ran at their own resolution) | any ``--compare NAME=MODEL`` (e.g. the model it replaces, in its
default style, or in ``NAME=MODEL@STYLE``'s style: ``--compare "before=OLD_FOLDER@cufs"`` shows what
a change to one style did). Everything goes through the public ``PhotoSketchPipeline``.

``--previews DIR`` also writes ``DIR/<style>.jpg``, the first portrait in each style: the small
pictures the app's style picker shows.

Use portraits that are public domain or CC0 and not from any training set (README says which).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from photosketch import PhotoSketchPipeline, load_image  # noqa: E402
from photosketch.data import list_images  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--portraits", type=Path, required=True, help="a folder of portrait photos")
    p.add_argument("--model", default="photo2sketch", help="registry name, folder or Hub id of a photo→sketch model")
    p.add_argument("--compare", nargs="*", default=[], metavar="NAME=MODEL[@STYLE]",
                   help="extra columns: other models, in their default style or the one after @")
    p.add_argument("--styles", nargs="*", default=None, metavar="STYLE", help="only these styles of --model (default: all)")
    p.add_argument("--fixed_size", action=argparse.BooleanOptionalAction, default=False,
                   help="also each style at the model's working size only (max_size = size)")
    p.add_argument("--output", type=Path, default=Path("docs/styles-portraits.jpg"))
    p.add_argument("--previews", type=Path, default=None, help="write DIR/<style>.jpg previews for the app")
    p.add_argument("--preview_size", type=int, default=160)
    p.add_argument("--grayscale_copy", action=argparse.BooleanOptionalAction, default=True,
                   help="add a black-and-white copy of the first portrait as a row")
    p.add_argument("--cell", type=int, default=192, help="cell height in pixels")
    return p.parse_args(argv)


def read_portraits(folder: Path) -> list[tuple[str, Image.Image]]:
    """(name, image) of every image in ``folder``, sorted; exits with a one-line error when there are none."""
    try:
        files = list_images(folder)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    if not files:
        raise SystemExit(f"{folder}: no images")
    return [(f.stem, load_image(f)) for f in files]


def save_sheet(sheet: Image.Image, output: Path, summary: str, quality: int = 88) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(output, quality=quality, optimize=True)
    print(f"wrote {output} ({output.stat().st_size // 1024} KB, {sheet.width}x{sheet.height}), {summary}", file=sys.stderr)


def render_grid(columns: list[str], rows: list[list[Image.Image]], cell: int) -> Image.Image:
    """A white sheet: one titled column per entry of ``columns``, each row's images scaled to ``cell`` px high."""
    header = 18
    widths = [max(round(cell * r[c].width / r[c].height) for r in rows) for c in range(len(columns))]
    sheet = Image.new("RGB", (sum(widths), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for c, title in enumerate(columns):
        draw.text((x + 4, 3), title, fill="black")
        for r, row in enumerate(rows):
            img = row[c].convert("RGB")
            w = round(cell * img.width / img.height)
            sheet.paste(img.resize((w, cell), Image.Resampling.LANCZOS), (x, header + r * cell))
        x += widths[c]
    return sheet


def main(argv=None) -> int:
    args = parse_args(argv)
    photos = read_portraits(args.portraits)
    model = PhotoSketchPipeline.from_pretrained(args.model, face_crop=True)
    pencil = PhotoSketchPipeline.from_pretrained("pencil", face_crop=True)
    others = []
    for spec in args.compare:
        name, _, path = spec.partition("=")
        path, _, style = (path or name).partition("@")
        pipe = PhotoSketchPipeline.from_pretrained(path, face_crop=True)
        try:
            others.append((name, pipe, pipe.check_style(style) if style else None))
        except ValueError as exc:
            raise SystemExit(f"--compare {spec}: {exc}") from None
    try:
        styles = [model.check_style(s) for s in args.styles] if args.styles else (list(model.styles) or [None])
    except ValueError as exc:  # an unknown style: the model's one-line message, listing the valid ones
        raise SystemExit(f"--styles: {exc}") from None

    if args.grayscale_copy:
        photos.insert(1, (f"{photos[0][0]} (black and white)", ImageOps.grayscale(photos[0][1]).convert("RGB")))
    titles = [f"{args.model}: {s}" if s else args.model for s in styles]
    columns = ["photo", "pencil (classical)"] + titles
    columns += [f"{t}, {model.size} px only" for t in titles] if args.fixed_size else []
    columns += [f"{name}: {style}" if style else name for name, _, style in others]
    rows = []
    aligner = model.aligner  # the pipelines' face finder: the crop they sketch
    for _, photo in photos:
        crop, _ = aligner.crop(photo)
        row = [crop, pencil(photo)] + [model(photo, style=s) for s in styles]
        if args.fixed_size:
            row += [model(photo, style=s, max_size=model.size) for s in styles]
        rows.append(row + [pipe(photo, style=style) for _, pipe, style in others])

    if args.previews is not None and styles != [None]:
        args.previews.mkdir(parents=True, exist_ok=True)
        for s, img in zip(styles, rows[0][2:2 + len(styles)]):
            preview = img.convert("L")
            preview.thumbnail((args.preview_size, args.preview_size), Image.Resampling.LANCZOS)
            preview.save(args.previews / f"{s}.jpg", quality=88)

    save_sheet(render_grid(columns, rows, args.cell), args.output, f"{len(rows)} portraits x {len(columns) - 1} styles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
