"""Throughput of the Space's live handlers: can they keep up with the webcam, and with drawing?

    python benchmarks/stream.py                                      # 2 threads, 60 frames per row
    python benchmarks/stream.py --models photo2sketch-fast photo2sketch --frames 100 --output stream.json
    python benchmarks/stream.py --quick                              # seconds (tests)

Each row feeds ``--frames`` webcam-like frames (``--width`` x ``--height`` RGB arrays, a synthetic face
that moves a little from frame to frame, or ``--photo``) one after another through exactly what a
``gr.Image(streaming=True)`` event runs in ``app.py``: ``SketchApp.live_sketch`` (downscale, face
crop or landmark alignment tracked across frames, the model through ``PhotoSketchPipeline``) and the output component's ``postprocess`` (JPEG
encoding to gradio's cache). The live stream runs one frame at a time (``concurrency_limit=1``),
so frames per second = 1 / seconds per frame; the stream keeps up with the webcam when that is at
least the rate frames are sent (``app.LIVE_FPS``; ``--target_fps``). Browser capture and the
websocket are not included.

The stock CycleGAN ResNet-9 (ngf 64, random weights, same 128 px working size as the shipped
models) is measured in the same run as the reference architecture.

A second table times "Update while drawing" on the Sketch -> Photo tab: ``SketchApp.live_photo`` on a
512 x 512 sketchpad value that gains one stroke per tick (so the model runs every time) plus the
output component's PNG ``postprocess``. The app turns that mode on by default only when one update
fits in ``app.LIVE_DRAW_BUDGET_MS`` (150 ms) on 2 threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

_ROOT = Path(__file__).resolve().parent.parent
for path in (_ROOT, _ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

REFERENCE = "resnet9"  # the stock ResNet-9 (ngf 64), saved with sample_size 128 for the run


def webcam_frames(n: int, width: int, height: int, photo: str | None = None) -> list[np.ndarray]:
    """``n`` RGB frames: the photo (or a synthetic face) shifted by a few pixels per frame, like a sitter moving."""
    from latency import synthetic_photo

    from photosketch.image import load_image

    base = load_image(photo).convert("RGB") if photo else synthetic_photo(width + 16, height + 16)
    base = np.asarray(base.resize((width + 16, height + 16)))
    return [np.ascontiguousarray(base[8 + dy : 8 + dy + height, 8 + dx : 8 + dx + width])
            for dx, dy in ((round(6 * np.sin(i / 5)), round(4 * np.cos(i / 7))) for i in range(n))]


def measure(app, model: str, frames: list[np.ndarray], face_crop: bool, warmup: int, align: bool = False) -> dict:
    import gradio as gr

    out = gr.Image(interactive=False, format="jpeg")  # the live output component of app.py
    times, track = [], None
    for i, frame in enumerate(frames[:warmup] + frames):
        t0 = time.perf_counter()
        sketch, track = app.live_sketch(frame, model, face_crop, 0.5, align, track)  # the track as gr.State keeps it
        out.postprocess(sketch)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"model": model, "face_crop": face_crop, "align": align, "frames": len(times), "median_ms": 1000 * med,
            "p90_ms": 1000 * float(np.percentile(times, 90)), "fps": 1 / med,
            "sustained_fps": len(times) / sum(times)}


def drawing_ticks(n: int, size: int = 512) -> list[dict]:
    """``n`` sketchpad values: the shipped outline example, one more short stroke in each."""
    from PIL import Image, ImageDraw

    base = Image.open(_ROOT / "examples" / "outline.png").convert("L").resize((size, size))
    rng = np.random.default_rng(0)
    values = []
    for _ in range(n):
        base = base.copy()
        x, y = (int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        ImageDraw.Draw(base).line([(x, y), (x + int(rng.integers(-40, 40)), y + int(rng.integers(-40, 40)))], fill=0, width=6)
        values.append({"background": None, "layers": [], "composite": base})
    return values


def measure_drawing(app, model: str, ticks: list[dict], warmup: int) -> dict:
    import gradio as gr

    out = gr.Image(type="filepath", format="png", interactive=False)  # the photo output of app.py
    times, last = [], None
    for i, value in enumerate(ticks):
        t0 = time.perf_counter()
        photo, last = app.live_photo(value, model, True, last)
        out.postprocess(photo)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"model": model, "ticks": len(times), "median_ms": 1000 * med, "p90_ms": 1000 * float(np.percentile(times, 90))}


def markdown_drawing(meta: dict, rows: list[dict]) -> str:
    lines = ["", f"## Update while drawing (512x512 sketchpad, {meta['threads']} threads; budget {meta['draw_budget_ms']:g} ms)",
             "", "| model | backend | ticks | median ms/update | p90 ms | within budget |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['backend']} | {r['ticks']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{'yes' if r['median_ms'] <= meta['draw_budget_ms'] else 'no'} |")
    return "\n".join(lines) + "\n"


def markdown(meta: dict, rows: list[dict]) -> str:
    ref = {(r["face_crop"], r["align"]): r["median_ms"] for r in rows if r["model"] == REFERENCE}
    lines = [
        f"## Live webcam handler ({meta['width']}x{meta['height']} frames, {meta['threads']} threads, "
        f"{meta['cpu']}, torch {meta['torch']})",
        "",
        f"`{meta['command']}`",
        "",
        f"| model | backend | face | frames | median ms/frame | p90 ms | fps (1/median) | sustained fps | "
        f"keeps up with {meta['target_fps']:g} fps | speed-up vs ResNet-9 |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        speedup = ref.get((r["face_crop"], r["align"]), 0) / r["median_ms"] if r["model"] != REFERENCE and ref else None
        face = "aligned (tracked)" if r["align"] else "crop" if r["face_crop"] else "whole frame"
        lines.append(
            f"| {r['model']} | {r['backend']} | {face} | {r['frames']} | {r['median_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['fps']:.1f} | {r['sustained_fps']:.1f} | "
            f"{'yes' if r['sustained_fps'] >= meta['target_fps'] else 'no'} | "
            f"{'reference' if r['model'] == REFERENCE else (f'{speedup:.1f}x' if speedup else 'n/a')} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", nargs="+", default=None,
                   help="registry names or model folders (default: the live default model and photo2sketch)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per row")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--photo", default=None, help="a photo to stream instead of the synthetic face")
    p.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads (a free Space has 2 vCPUs)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"), help="pipeline backend")
    p.add_argument("--target_fps", type=float, default=None, help="default: app.LIVE_FPS, the rate the webcam sends")
    p.add_argument("--no_reference", action="store_true", help="skip the ResNet-9 reference rows")
    p.add_argument("--sketch_models", nargs="*", default=None,
                   help="sketch2photo models for the live-drawing table (default: the app's default; none: skip)")
    p.add_argument("--quick", action="store_true", help="a few 160x120 frames, no reference (for tests)")
    p.add_argument("--output", default=None, help="also write the report: .json for records, anything else Markdown")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.frames, args.warmup, args.width, args.height, args.no_reference = 3, 1, 160, 120, True
    if args.frames < 1 or args.warmup < 0 or args.threads < 1 or min(args.width, args.height) < 16:
        sys.stderr.write("stream.py: error: frames >= 1, warmup >= 0, threads >= 1, width and height >= 16\n")
        return 2
    torch.set_num_threads(args.threads)

    import app as space
    from latency import _cpu_name

    from photosketch.hub import available_models, default_model
    from photosketch.models import ResnetGenerator
    from photosketch.pipeline import PhotoSketchPipeline

    models = args.models or list(dict.fromkeys([default_model("photo2sketch", fast=True), default_model("photo2sketch")]))
    frames = webcam_frames(args.frames, args.width, args.height, args.photo)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_reference:
            torch.manual_seed(0)
            ResnetGenerator(sample_size=128).save_pretrained(Path(tmp) / REFERENCE)
        folders = {REFERENCE: str(Path(tmp) / REFERENCE)}
        sketch_models = [default_model("sketch2photo")] if args.sketch_models is None else args.sketch_models
        app = space.SketchApp(loader=lambda name: PhotoSketchPipeline.from_pretrained(
            folders.get(name, name), backend=args.backend,
            direction="sketch2photo" if name in sketch_models else "photo2sketch"))
        names = ([] if args.no_reference else [REFERENCE]) + models
        try:
            for name in names:
                for face_crop, align in ((True, False), (False, False), (False, True)):
                    row = measure(app, name, frames, face_crop, args.warmup, align)
                    row["backend"] = app.pipeline(name, "photo2sketch").backend
                    rows.append(row)
                    sys.stderr.write(f"{name} face_crop={face_crop} align={align}: {row['median_ms']:.1f} ms/frame\n")
            drawing_rows = []
            if args.sketch_models is None and not available_models("sketch2photo"):
                sketch_models = []  # nothing to time: the drawing table is left out
                sys.stderr.write("no sketch2photo model available: the live-drawing table is left out\n")
            app.sketch_models = list(sketch_models)
            ticks = drawing_ticks(args.warmup + args.frames) if sketch_models else []  # all different: the model runs on each
            for name in sketch_models:
                row = measure_drawing(app, name, ticks, args.warmup)
                row["backend"] = app.pipeline(name, "sketch2photo").backend
                drawing_rows.append(row)
                sys.stderr.write(f"{name} live drawing: {row['median_ms']:.1f} ms/update\n")
        except space.UserError as exc:
            sys.stderr.write(f"stream.py: error: {exc}\n")
            return 2
    meta = {"cpu": _cpu_name(), "torch": torch.__version__, "threads": args.threads, "width": args.width,
            "height": args.height, "target_fps": args.target_fps or space.LIVE_FPS, "photo": args.photo or "synthetic",
            "draw_budget_ms": space.LIVE_DRAW_BUDGET_MS,
            "command": "python benchmarks/stream.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    report = markdown(meta, rows) + (markdown_drawing(meta, drawing_rows) if drawing_rows else "")
    sys.stdout.write(report)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "rows": rows, "drawing_rows": drawing_rows}, indent=2) + "\n" if path.suffix == ".json" else report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
