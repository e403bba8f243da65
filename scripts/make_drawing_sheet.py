"""Contact sheet of drawings through sketch→photo models: what a visitor gets from the Sketch → Photo tab.

    python scripts/make_drawing_sheet.py --output docs/drawings-sketch2photo.jpg \\
        --models before=../sketch2photo-before after=sketch2photo --portraits ../portraits

Rows: the app's example drawings (``examples/sparse_*.png``, ``outline.png``, ``sketch_1.png``) and, with
``--portraits``, a few-stroke ``sparse_drawing`` of each portrait's face crop (public-domain faces, not
from any training set). Columns: the drawing | each ``--models NAME=MODEL`` (registry name, folder or
Hub id), then, with ``--seeds``, the last model's photo with each appearance seed ("Another face" in the
app: another skin tone and hair colour, :mod:`photosketch.appearance`); ``--painted_background`` adds the
last model with the background it paints itself, before its default even backdrop. Everything goes
through the public ``PhotoSketchPipeline``, as the app runs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_style_sheet import render_grid, save_sheet  # noqa: E402

from photosketch import PhotoSketchPipeline, load_image  # noqa: E402
from photosketch.classical import sparse_drawing  # noqa: E402
from photosketch.data import list_images  # noqa: E402
from photosketch.align import FaceAligner  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["sparse_1.png", "sparse_2.png", "sparse_3.png", "sparse_4.png", "outline.png", "sketch_1.png"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["sketch2photo"], metavar="NAME=MODEL",
                   help="columns: sketch→photo models (NAME alone: a registry name)")
    p.add_argument("--portraits", type=Path, default=None, help="also sparse drawings of these portraits' faces")
    p.add_argument("--output", type=Path, default=Path("docs/drawings-sketch2photo.jpg"))
    p.add_argument("--seeds", type=int, nargs="*", default=[], help="appearance seeds: extra columns of the last model")
    p.add_argument("--cell", type=int, default=160, help="cell height in pixels")
    p.add_argument("--painted_background", action=argparse.BooleanOptionalAction, default=False,
                   help="also a column of the last model with the background it paints (background=False), before "
                        "its column with the pipeline's default even backdrop")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    drawings = [(name, load_image(ROOT / "examples" / name)) for name in EXAMPLES if (ROOT / "examples" / name).is_file()]
    if args.portraits is not None:
        aligner = FaceAligner()  # the crop face_crop=True takes
        for i, path in enumerate(list_images(args.portraits)):
            crop, _ = aligner.crop(load_image(path))
            drawings.append((f"sparse_drawing({path.stem})", sparse_drawing(crop, seed=i, detail=0.5, brush=3)))
    pipes = []
    for spec in args.models:
        name, _, path = spec.partition("=")
        pipes.append((name, PhotoSketchPipeline.from_pretrained(path or name, direction="sketch2photo")))
    last_name, last = pipes[-1]
    painted = [("painted background", last, {"background": False})] if args.painted_background else []
    columns = [(name, pipe, {}) for name, pipe in pipes[:-1]] + painted + [(last_name, last, {})]
    columns += [(f"{last_name}, seed {seed}", last, {"seed": seed}) for seed in args.seeds]
    rows = [[drawing] + [pipe(drawing, face_crop=False, **kw) for _, pipe, kw in columns] for _, drawing in drawings]
    header = ["drawing"] + [name for name, _, _ in columns]
    save_sheet(render_grid(header, rows, args.cell), args.output,
               f"{len(rows)} drawings x {len(pipes)} models" + (f" + {len(args.seeds)} seeds" if args.seeds else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
