"""Evaluate a model on a paired test set: FSIM, SSIM, L1 per image and on average.

    python -m photosketch.evaluate --data_dir data/cufs --direction photo2sketch --model xdog
    python -m photosketch.evaluate --data_dir data/cufs --split test --direction photo2sketch \\
        --model weights/photo2sketch --output_dir results/photo2sketch

Protocol (after chaofengc/Face-Sketch-SCG's ``evaluate.py``): each input is resized (bicubic) so
its shorter side is the model's working size (``--size``, default the model's ``sample_size``, else
256) with the aspect ratio kept, exactly as :class:`~photosketch.pipeline.PhotoSketchPipeline` does
(SCG squashes to a square; our trainers crop squares from aspect-kept images, so squashing would
measure a distortion users never see). The output is resized (bicubic) back to the ground truth's size and quantised to 8 bits, as if saved
as PNG, then compared with the ground truth. Sketches are compared in gray (``L``); photos are
compared on luminance (FSIM, SSIM, L1) and in colour with FSIMc (which Face-Sketch-SCG reports via
pyiqa's ``fsim``, chromatic by default). Metric references: :mod:`photosketch.metrics`.

LPIPS, DISTS and FID are not computed: each needs network weights (LPIPS's calibrated linear layers,
DISTS's, Inception's) that no PyPI wheel ships for offline use.

Writes ``OUT/results.json`` and ``OUT/contact_sheet.png`` (input | output | ground truth).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from . import metrics
from .compose import native_size
from .data import STYLES_FILE, find_pairs, read_styles, split_root
from .image import ImageLoadError, load_image, pil_to_tensor, tensor_to_pil, to_mode
from .pipeline import DEFAULT_SIZE, UPSAMPLERS, working_size

logger = logging.getLogger(__name__)

__all__ = ["DIRECTIONS", "ModelLoadError", "build_parser", "evaluate", "load_eval_model", "main"]

DIRECTIONS = ("photo2sketch", "sketch2photo")
SKETCH_SOURCES = ("real", "lines", "sparse")
_PROTOCOL = {
    "reference": "chaofengc/Face-Sketch-SCG evaluate.py / metric.py",
    "input": "resized with PIL bicubic so the shorter side is the model size, aspect kept (as PhotoSketchPipeline does)",
    "output": "resized back to the ground truth's size with PIL bicubic, quantised to uint8",
    "sketch_comparison": "grayscale (L) output vs grayscale ground truth",
    "photo_comparison": "fsim, ssim, l1 on luminance Y = 0.299 R + 0.587 G + 0.114 B; fsimc in colour (YIQ)",
    "fsim": "Zhang et al. 2011, following the authors' FeatureSIM.m (auto downsampling, phasecong2, Scharr)",
    "ssim": "Wang et al. 2004 ssim_index.m: Gaussian 11x11 sigma 1.5, K1 0.01, K2 0.03, L 255, valid region "
            "(= skimage gaussian_weights=True, use_sample_covariance=False), no downsampling",
    "l1": "mean absolute error of luminance, in [0, 1] units",
}


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded."""


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

def _classical_styles() -> dict:
    try:
        from .classical import STYLES
    except ImportError:
        return {}
    return STYLES


def load_eval_model(name: str) -> tuple[nn.Module, str]:
    """A classical style name, a model folder, a registry name or a Hub id -> (module, kind).

    ``kind`` is ``"classical"`` or ``"generator"``. Raises :class:`ModelLoadError` with a
    one-line reason.
    """
    styles = _classical_styles()
    if name in styles:
        return styles[name](), "classical"
    try:
        from .hub import load_model
    except ImportError:
        load_model = None
    try:
        if load_model is not None:
            model = load_model(name)
        else:
            from .models import load_generator

            if not os.path.isdir(name) and name.count("/") != 1:
                raise ModelLoadError(
                    f"{name!r} is not a folder, a Hub id (owner/name) or a classical style"
                    + (f" ({', '.join(sorted(styles))})" if styles else "")
                )
            model = load_generator(name)
    except ModelLoadError:
        raise
    except Exception as exc:  # Hub / file / config errors all become one line for the CLI
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError quotes its message
        msg = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {name!r}: {msg}") from None
    kind = "classical" if type(model).__name__ in {cls.__name__ for cls in styles.values()} else "generator"
    return model, kind


def _in_channels(model: nn.Module) -> int:
    config = getattr(model, "_hub_mixin_config", None) or {}
    if isinstance(config, dict) and config.get("in_channels") in (1, 3):
        return int(config["in_channels"])
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None and conv.in_channels in (1, 3) else 3


def _sample_size(model: nn.Module) -> int | None:
    config = getattr(model, "_hub_mixin_config", None) or {}
    size = config.get("sample_size") if isinstance(config, dict) else None
    return int(size) if size else None


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------

def _run_model(model: nn.Module, image: Image.Image, size: int | None, channels: int, style: str | None = None) -> Image.Image:
    img = to_mode(image, channels)
    if size:
        # Shorter side to the model size, aspect kept: what PhotoSketchPipeline does, and the
        # proportions the trainers' square crops show the model.
        img = img.resize(working_size(img.width, img.height, size), Image.BICUBIC)
    x = pil_to_tensor(img, channels)[None]
    with torch.inference_mode():
        y = model(x) if style is None else model(x, style=style)
    return tensor_to_pil(y[0].float())


def _score(out: Image.Image, gt: Image.Image, target: str) -> dict[str, float]:
    if target == "sketch":
        out, gt = out.convert("L"), gt.convert("L")
    else:
        out, gt = out.convert("RGB"), gt.convert("RGB")
    row = {"fsim": metrics.fsim(out, gt), "ssim": metrics.ssim(out, gt), "l1": metrics.l1(out, gt)}
    if target == "photo":
        row["fsimc"] = metrics.fsimc(out, gt)
    return row


def _mean_rows(rows: list[dict], keys: Sequence[str]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in keys if rows and all(k in r for r in rows)}


def contact_sheet(rows: list[tuple[Image.Image, Image.Image, Image.Image]], cell_height: int = 160) -> Image.Image:
    """One row per sample: input | output | ground truth, each scaled to ``cell_height``."""
    labels = ("input", "output", "ground truth")
    header = 16
    widths = [0, 0, 0]
    scaled = []
    for triple in rows:
        cells = []
        for i, img in enumerate(triple):
            w = max(1, round(img.width * cell_height / img.height))
            cells.append(img.convert("RGB").resize((w, cell_height), Image.BICUBIC))
            widths[i] = max(widths[i], w)
        scaled.append(cells)
    pad = 4
    sheet = Image.new("RGB", (sum(widths) + pad * 4, header + len(rows) * (cell_height + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    x = pad
    for label, w in zip(labels, widths):
        draw.text((x, 2), label, fill="black")
        x += w + pad
    for r, cells in enumerate(scaled):
        x, y = pad, header + r * (cell_height + pad)
        for cell, w in zip(cells, widths):
            sheet.paste(cell, (x, y))
            x += w + pad
    return sheet


def evaluate(
    model: nn.Module,
    pairs: list[tuple[Path, Path]],
    direction: str,
    *,
    size: int | None = None,
    styles: dict[str, str] | None = None,
    num_samples: int = 16,
    progress: bool = True,
    sketch_source: str = "real",
    style: str | None = None,
    floor: bool = False,
    pipeline: dict | None = None,
    max_size: int | None = None,
) -> tuple[list[dict], list[tuple[Image.Image, Image.Image, Image.Image]], dict[str, float]]:
    """Score ``model`` on ``pairs`` -> (per-image rows, contact-sheet triples, timing).

    ``sketch_source="lines"`` (sketch2photo only) feeds ``line_drawing(photo)`` instead of the drawn
    sketch, ``"sparse"`` a few-stroke ``sparse_drawing(photo, seed=i, detail=0.5, brush=3)`` (the i-th
    pair's seed, so every run and model sees the same drawings): how well a model does on what people
    draw on a sketchpad, for held-out faces.

    ``style`` (style-conditioned models): a style name for every image, or ``"auto"``: each image's
    own style from ``styles`` (its ground truth was drawn in it). ``floor=True`` also scores doing
    nothing, the grayscale input itself as the output, into ``row["floor"]``: the number any model
    has to beat (FSIM gives a grayscale photo a fair score against a sketch).

    ``pipeline``: run each input through :class:`~photosketch.pipeline.PhotoSketchPipeline` with these
    settings (e.g. ``{"align": True, "background": True, "upsample": "guided"}``) instead of the plain
    protocol (resize, model, resize back): how much the pipeline's preprocessing changes the scores.

    ``max_size``: inputs with more resolution than ``size`` run at their own (shorter side), up to this
    size, as :class:`~photosketch.pipeline.PhotoSketchPipeline`'s ``max_size`` does; ``None``: always
    ``size`` (the literature's protocol), also through the pipeline.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
    if sketch_source not in SKETCH_SOURCES or (sketch_source != "real" and direction != "sketch2photo"):
        raise ValueError(f"sketch_source must be 'real', or 'lines'/'sparse' with sketch2photo; got {sketch_source!r}")
    from tqdm.auto import tqdm

    model.eval()
    channels = _in_channels(model)
    target = "sketch" if direction == "photo2sketch" else "photo"
    pipe = None
    if pipeline is not None:
        from .pipeline import PhotoSketchPipeline

        pipe = PhotoSketchPipeline(model, direction=direction, size=size, backend="torch",
                                   max_size=max(max_size or 0, size or DEFAULT_SIZE), **pipeline)
    rows, samples = [], []
    t_model = t_metrics = 0.0
    for index, (photo_path, sketch_path) in enumerate(tqdm(pairs, desc=f"evaluate {direction}", unit="img",
                                                           disable=not progress or None)):
        src_path, gt_path = (photo_path, sketch_path) if direction == "photo2sketch" else (sketch_path, photo_path)
        src, gt = load_image(src_path), load_image(gt_path)
        if sketch_source == "lines":
            from .classical import line_drawing

            src_path, src = f"line_drawing({photo_path})", line_drawing(gt)
        elif sketch_source == "sparse":
            from .classical import sparse_drawing

            src_path, src = f"sparse_drawing({photo_path}, seed={index})", sparse_drawing(gt, seed=index, detail=0.5, brush=3)
        image_style = style
        if style == "auto":
            image_style = (styles or {}).get(photo_path.stem)
            if not image_style:
                raise ValueError(f"--style auto: no style listed for {photo_path.stem} (styles.csv)")
        t0 = time.perf_counter()
        if pipe is not None:
            out = pipe(src, style=image_style).resize(gt.size, Image.BICUBIC)
        else:
            work = native_size(size, max_size, min(src.size)) if size else None
            out = _run_model(model, src, work, channels, image_style).resize(gt.size, Image.BICUBIC)
        t1 = time.perf_counter()
        row = {"name": photo_path.stem, "input": str(src_path), "ground_truth": str(gt_path)}
        if styles is not None:
            row["style"] = styles.get(photo_path.stem, "unlisted")
        if image_style is not None:
            row["model_style"] = image_style
        row.update(_score(out, gt, target))
        if floor:
            nothing = src.convert("L").resize(gt.size, Image.BICUBIC)
            row["floor"] = _score(nothing.convert("RGB") if target == "photo" else nothing, gt, target)
        t_metrics += time.perf_counter() - t1
        t_model += t1 - t0
        rows.append(row)
        if len(samples) < num_samples:
            samples.append((src, out, gt))
    n = max(1, len(rows))
    timing = {"model_s": t_model, "metrics_s": t_metrics, "model_ms_per_image": 1000 * t_model / n,
              "metrics_ms_per_image": 1000 * t_metrics / n}
    return rows, samples, timing


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m photosketch.evaluate",
        description="FSIM / SSIM / L1 of a model on a paired photo-sketch test set.",
    )
    p.add_argument("--data_dir", required=True, help="DIR with photos/ + sketches/, or DIR/<split>/{photos,sketches}")
    p.add_argument("--direction", required=True, choices=DIRECTIONS)
    p.add_argument("--model", required=True,
                   help="a classical style (xdog, pencil, lines), a registry name, a model folder, or a Hub id")
    p.add_argument("--split", default="test", help="split folder under --data_dir, if it has splits (default: test)")
    p.add_argument("--size", type=int, default=None,
                   help="working size: the input's shorter side is resized to it (default: the model's sample_size, else 256)")
    p.add_argument("--max_size", type=int, default=None,
                   help="inputs whose shorter side is larger than --size run at their own size, up to this one (what "
                        "PhotoSketchPipeline's max_size does for photo->sketch; default: always --size, the literature's protocol)")
    p.add_argument("--sketch_source", choices=SKETCH_SOURCES, default="real",
                   help="sketch2photo input: the drawn sketches (real), line_drawing() of the ground-truth photos (lines) "
                        "or a few-stroke sparse_drawing() of them (sparse)")
    p.add_argument("--output_dir", default=None,
                   help="where results.json and contact_sheet.png go (default: outputs/eval/<model>_<direction>)")
    p.add_argument("--num_samples", type=int, default=16, help="rows in the contact sheet")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--styles_csv", default=None,
                   help="CSV with columns name,style (file stem -> style) for per-style means; default: the split "
                        "folder's styles.csv when there is one (scripts/prepare_data.py writes it)")
    p.add_argument("--style", default=None,
                   help="style-conditioned models: the style to draw every image in, or 'auto' (the default for such "
                        "models): each image in the style of its own ground truth, from the styles CSV")
    p.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                   help="also score doing nothing (the grayscale input as the output): the floor every number is read against")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=False,
                   help="run through PhotoSketchPipeline with face alignment (default: off, the literature's protocol)")
    p.add_argument("--background", action=argparse.BooleanOptionalAction, default=False,
                   help="run through PhotoSketchPipeline with its background step: photo2sketch whitens the background "
                        "around the person, sketch2photo evens the painted background to one colour (default: off)")
    p.add_argument("--upsample", choices=UPSAMPLERS, default="bicubic",
                   help="how outputs smaller than the ground truth are enlarged (guided: PhotoSketchPipeline's "
                        "guided filter; default: bicubic, the protocol)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _fail(message: str) -> int:
    sys.stderr.write(f"photosketch.evaluate: error: {message}\n")
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.size is not None and args.size < 8:
        return _fail(f"--size must be at least 8; got {args.size}")
    if args.max_size is not None and args.max_size < (args.size or 8):
        return _fail(f"--max_size must be at least --size; got {args.max_size}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        pairs = find_pairs(args.data_dir, args.split)
        base = split_root(args.data_dir, args.split)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    if args.limit is not None:
        pairs = pairs[: max(0, args.limit)]
    if not pairs:
        return _fail("no pairs to evaluate (--limit 0?)")

    styles = None
    styles_csv = args.styles_csv or (str(base / STYLES_FILE) if (base / STYLES_FILE).is_file() else None)
    if styles_csv:
        try:
            styles = read_styles(styles_csv)
        except (OSError, ValueError) as exc:
            return _fail(str(exc))

    try:
        model, kind = load_eval_model(args.model)
    except ModelLoadError as exc:
        return _fail(str(exc))
    if kind == "classical" and args.direction != "photo2sketch":
        return _fail(f"{args.model!r} is a classical photo -> sketch style; it cannot do {args.direction}")
    if args.sketch_source != "real" and args.direction != "sketch2photo":
        return _fail(f"--sketch_source {args.sketch_source} only applies to --direction sketch2photo")
    channels = _in_channels(model)
    if kind == "generator" and args.direction == "photo2sketch" and channels == 1:
        logger.warning("%s takes 1-channel input: is it a sketch2photo model?", args.model)
    size = args.size or _sample_size(model) or 256
    model_styles = tuple(getattr(model, "styles", ()) or ())
    style = args.style
    if model_styles:
        style = style or "auto"
        if style == "auto" and styles is None:
            return _fail(f"{args.model} draws the styles {', '.join(model_styles)}: give --style NAME, or a styles CSV "
                         "(--styles_csv, or styles.csv in the split folder) for --style auto")
        if style != "auto" and style not in model_styles:
            return _fail(f"unknown style {style!r}; {args.model} draws: {', '.join(model_styles)}")
        if style == "auto":
            unknown = sorted({styles.get(p.stem, "") for p, _ in pairs} - set(model_styles))
            if unknown:
                return _fail(f"--style auto: the styles CSV names {unknown}, which {args.model} does not draw "
                             f"({', '.join(model_styles)}); give --style NAME")
    elif style is not None:
        return _fail(f"{args.model} has no styles; drop --style")

    pipeline = None
    if args.align or args.background or args.upsample != "bicubic":
        pipeline = {"align": args.align, "background": args.background, "upsample": args.upsample}
        if args.direction == "sketch2photo":
            pipeline["frame"] = False  # test sketches fill their page; framing would only move them
    default_out = Path("outputs") / "eval" / f"{Path(args.model.rstrip('/')).name}_{args.direction}"
    out_dir = Path(args.output_dir or default_out)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    try:
        rows, samples, timing = evaluate(model, pairs, args.direction, size=size, styles=styles, num_samples=args.num_samples,
                                         progress=not args.quiet, sketch_source=args.sketch_source, style=style,
                                         floor=args.floor, pipeline=pipeline, max_size=args.max_size)
    except (ImageLoadError, ValueError) as exc:
        return _fail(str(exc))
    timing["total_s"] = time.perf_counter() - t0

    keys = ["fsim", "ssim", "l1"] + (["fsimc"] if args.direction == "sketch2photo" else [])
    means: dict[str, object] = _mean_rows(rows, keys)
    floor_means = _mean_rows([r["floor"] for r in rows], keys) if args.floor else None
    results = {
        "model": args.model,
        "model_kind": kind,
        "model_class": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "direction": args.direction,
        "sketch_source": args.sketch_source,
        "command": "python -m photosketch.evaluate " + " ".join(sys.argv[1:] if argv is None else argv),
        "data_dir": str(args.data_dir),
        "split": args.split if base != Path(args.data_dir) else None,
        "pairs_dir": str(base),
        "n": len(rows),
        "size": size,
        "max_size": args.max_size,
        "input_channels": channels,
        "style": style,
        "pipeline": pipeline,
        "means": means,
        "floor": floor_means,
        "floor_definition": "doing nothing: the input, converted to grayscale, scored as the output" if args.floor else None,
        "protocol": _PROTOCOL,
        "timing": {**timing, "threads": torch.get_num_threads()},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "per_image": rows,
    }
    if styles is not None:
        by_style: dict[str, dict] = {}
        for name in sorted({r["style"] for r in rows}):
            group = [r for r in rows if r["style"] == name]
            by_style[name] = {"n": len(group), **_mean_rows(group, keys)}
            if args.floor:
                by_style[name]["floor"] = _mean_rows([r["floor"] for r in group], keys)
        results["means_by_style"] = by_style
        results["styles_csv"] = str(styles_csv)

    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if samples:
        contact_sheet(samples).save(out_dir / "contact_sheet.png")

    summary = ", ".join(f"{k.upper()} {means[k]:.4f}" for k in keys if isinstance(means.get(k), float))
    sys.stdout.write(f"{args.model} {args.direction} on {base} (n={len(rows)}): {summary}\n")
    if floor_means:
        sys.stdout.write("  do nothing (grayscale input as output): "
                         + ", ".join(f"{k.upper()} {floor_means[k]:.4f}" for k in keys if k in floor_means) + "\n")
    if styles is not None:
        for name, m in results["means_by_style"].items():
            parts = ", ".join(f"{k.upper()} {m[k]:.4f}" for k in keys if k in m)
            if m.get("floor"):
                parts += f" (do nothing: FSIM {m['floor']['fsim']:.4f})"
            sys.stdout.write(f"  style {name} (n={m['n']}): {parts}\n")
    sys.stdout.write(f"wrote {out_dir / 'results.json'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
