"""Merge ``--finetune_style`` runs that started from one model, one style each, into one model folder.

    python scripts/merge_styles.py --base weights/photo2sketch \\
        --style fs2k-1=runs/ft-fs2k-1/photo2sketch --style fs2k-2=runs/ft-fs2k-2/photo2sketch \\
        --output_dir runs/ft-merged/photo2sketch

Each fine-tune trains only its style's scale and shift in the conditional norms (``train/pix2pix.py
--finetune_style``), so runs for different styles can train side by side, one per CPU core, and be
combined afterwards (``photosketch.training.nets.merge_style_finetunes``); a run that changed anything
else is refused. The output is a Hub-layout folder (``config.json`` + ``model.safetensors``, float32)
for ``scripts/ship_model.py`` or ``python -m photosketch.evaluate --model``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

logger = logging.getLogger("merge_styles")


def _style_arg(text: str) -> tuple[str, Path]:
    style, sep, path = text.partition("=")
    if not sep or not style or not path:
        raise argparse.ArgumentTypeError(f"expected STYLE=FOLDER, got {text!r}")
    return style, Path(path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, required=True, help="the model folder every run started from (--init_weights)")
    p.add_argument("--style", type=_style_arg, action="append", required=True, metavar="STYLE=FOLDER",
                   help="a run's exported folder and the style it fine-tuned (repeat, one per style)")
    p.add_argument("--output_dir", type=Path, required=True)
    args = p.parse_args(argv)
    styles = [s for s, _ in args.style]
    if len(set(styles)) != len(styles):
        p.error(f"--style: each style once; got {', '.join(styles)}")
    for path in [args.base, *(f for _, f in args.style)]:
        if not (path / "config.json").is_file():
            p.error(f"{path}: not a model folder (no config.json)")
    return args


def main(args: argparse.Namespace) -> Path:
    from photosketch.models import load_generator
    from photosketch.training.nets import merge_style_finetunes

    base = load_generator(args.base).float()
    tuned = {style: load_generator(folder).float() for style, folder in args.style}
    merged = merge_style_finetunes(base, tuned)
    merged.save_pretrained(args.output_dir)
    logger.info("merged %s into %s", ", ".join(f"{s} ({f})" for s, f in args.style), args.output_dir)
    return args.output_dir


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        main(parse_args())
    except ValueError as exc:  # a run that is not a style fine-tune of --base: one line, not a traceback
        sys.exit(f"merge_styles: {exc}")
