"""CPU latency of every registered generator and classical style, and of the end-to-end pipeline.

    python benchmarks/latency.py                                  # 256 and 512 px, batch 1 and 8
    python benchmarks/latency.py --threads 2 --sizes 256 --batch 1 --repeats 5
    python benchmarks/latency.py --models compact xdog --output results.md
    python benchmarks/latency.py --quick                          # seconds: 64 px, 1 repeat (tests)
    python benchmarks/latency.py --models photo2sketch-fast --sizes 256 --batch 1 --variants fp32 onnxruntime torchscript int8 compile

For each model (``GENERATORS`` at their default, paper configurations: ResNet-9 ngf 64, U-Net-256,
CompactGenerator; the classical ``STYLES``; or registry names / model folders), size, batch and
variant (fp32 eager PyTorch; bf16 under ``torch.autocast``; fp32 in channels_last memory format;
``onnxruntime``: the pipeline's ONNX Runtime backend, ``photosketch.runtime``; and the options
tried for the CPU path and not kept: ``torchscript`` (trace + freeze + optimize_for_inference),
``int8`` (FX static quantisation) and, on request only, ``compile`` (``torch.compile``)) it runs ``--warmup`` untimed then
``--repeats`` timed forward passes under ``torch.inference_mode`` and reports the median. The
stock ResNet-9 (ngf 64, 9 blocks) is always measured in the same run, as the reference for the
"speedup vs ResNet-9" column (median of ResNet-9 in fp32 / median of the row, at the same size and
batch; above 1 is faster). Parameters and multiply-accumulates (MACs, per image, counted by forward hooks
on Conv2d / ConvTranspose2d / Linear; elementwise ops, norms and the classical styles' functional
convolutions are not counted) come with each generator.

If ``photosketch.pipeline`` exists, the end-to-end ``PhotoSketchPipeline`` (loading, resizing,
model, post-processing) is timed on a photo (``--photo``, or a synthetic 640x480 face) in four
settings: the whole image (alignment and background off, the behaviour before alignment existed), the
Haar face crop, aligned faces, and aligned faces on a white background (the photo→sketch default);
plus the alignment steps alone (MediaPipe landmarks; person mask of one 256 x 320 canvas).

    python benchmarks/latency.py --threads 2 --models photo2sketch photo2sketch-fast --sizes 256 --batch 1 \
        --variants onnxruntime --pipeline_models photo2sketch photo2sketch-fast --photo examples/photo_astronaut.jpg
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

try:
    import photosketch  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photosketch.models import GENERATORS, ResnetGenerator, count_params  # noqa: E402

VARIANTS = ("fp32", "bf16", "channels_last", "onnxruntime", "torchscript", "int8", "compile")
#: Run when --variants is not given (compile takes ~30 s per model and shape, so it is opt-in).
DEFAULT_VARIANTS = ("fp32", "bf16", "channels_last", "onnxruntime", "torchscript", "int8")
REFERENCE = "resnet"  # GENERATORS key of the stock ResNet-9 (ngf 64, 9 blocks)
REFERENCE_LABEL = "ResNet-9"
SPEEDUP_COLUMN = f"speedup vs {REFERENCE_LABEL}"


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------

def _classical_styles() -> dict:
    try:
        from photosketch.classical import STYLES
    except ImportError:
        return {}
    return dict(STYLES)


def _describe(name: str, model: nn.Module) -> str:
    config = getattr(model, "_hub_mixin_config", None) or {}
    if name == "resnet":
        return f"ResNet-{config.get('n_blocks', 9)}, ngf {config.get('ngf', 64)}"
    if name == "unet":
        return f"U-Net-{2 ** config.get('num_downs', 8)}, ngf {config.get('ngf', 64)}"
    if name == "compact":
        return f"Compact, ngf {config.get('ngf', 16)}, {config.get('n_blocks', 6)} sep. blocks"
    return f"classical {type(model).__name__}" if not config else type(model).__name__


def build_models(selected: Sequence[str] | None) -> tuple[dict[str, nn.Module], list[str]]:
    """{name: module} for the selected names (all by default), always including the reference."""
    available: dict[str, Callable[[], nn.Module]] = {name: cls for name, cls in GENERATORS.items()}
    available.update(_classical_styles())
    names = list(available) if not selected else list(dict.fromkeys(selected))
    for name in [n for n in names if n not in available]:
        # A shipped / Hub / folder model ("photo2sketch", "runs/p2s/photo2sketch"), timed as the
        # pipeline runs it: BatchNorm folded into the convs.
        from photosketch.hub import ModelNotAvailableError, load_model
        from photosketch.models import fuse_conv_bn

        try:
            loaded = fuse_conv_bn(load_model(name))
        except (KeyError, ModelNotAvailableError, OSError, ValueError) as exc:
            raise KeyError(f"unknown model {name!r} ({exc}); choose from: {', '.join(available)}, "
                           "a registry name with weights, or a model folder") from None
        available[name] = lambda m=loaded: m
    unknown = [n for n in names if n not in available]
    if unknown:
        raise KeyError(f"unknown model(s) {', '.join(unknown)}; choose from: {', '.join(available)}")
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    models = {}
    for name in names:
        torch.manual_seed(0)
        # photo -> sketch configuration (3 channels in, 1 out): the constructors' defaults.
        models[name] = available[name]().eval()
    assert isinstance(models[REFERENCE], ResnetGenerator)
    return models, names


# --------------------------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------------------------

def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, from hooks on Conv2d / ConvTranspose2d / Linear."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def deconv_hook(module: nn.ConvTranspose2d, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += inputs[0].numel() * (module.out_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(deconv_hook))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def in_channels(model: nn.Module) -> int:
    """Input channels the model takes: sketch->photo models take 1, everything else 3."""
    config = getattr(model, "_hub_mixin_config", None) or {}
    return int(config.get("in_channels", 3))


def _context(variant: str):
    if variant == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Int8(nn.Module):
    """A PhotoSketchModel's net quantised to int8 (PyTorch FX, x86 backend), with the model's own padding."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        super().__init__()
        import copy
        import warnings

        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FX quantisation's deprecation notices
            prepared = prepare_fx(copy.deepcopy(model.net).eval(), get_default_qconfig_mapping("x86"), (example,))
            with torch.no_grad():
                for _ in range(8):  # calibrate the activation ranges on inputs like the timed one
                    prepared(torch.rand_like(example) * 2 - 1)
            self.net = convert_fx(prepared)

    def forward(self, x):
        x, h, w = self.model._pad(x)
        return self.net(x)[..., :h, :w]


def build_variant(model: nn.Module, variant: str, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """(runnable, input) for a variant; raises for combinations that do not exist (an error row)."""
    from photosketch.models import PhotoSketchModel

    if variant == "onnxruntime":
        # The pipeline's default backend (photosketch.runtime); classical styles have none.
        from photosketch.runtime import make_runner

        return make_runner(model, "onnxruntime", num_threads=torch.get_num_threads()), x
    if variant == "channels_last":
        import copy

        return copy.deepcopy(model).to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if variant == "torchscript":
        with torch.no_grad():
            return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x).eval())), x
    if variant == "compile":
        return torch.compile(model), x  # compiled during the (at least one) warm-up run
    if variant == "int8":
        if not isinstance(model, PhotoSketchModel):
            raise ValueError("int8 quantisation is for learned generators only")
        return _Int8(model, x), x
    return model, x


def time_model(model: nn.Module, size: int, batch: int, variant: str, warmup: int, repeats: int,
               budget_s: float | None = None) -> tuple[list[float], float]:
    """(seconds per timed forward pass, mean |output - fp32 output|); stops early once the timed runs
    exceed ``budget_s``."""
    x = torch.rand(batch, in_channels(model), size, size) * 2 - 1
    with torch.inference_mode():
        reference = model(x).float()
    runnable, x = build_variant(model, variant, x)
    if variant == "compile":
        warmup = max(warmup, 1)
    times = []
    with torch.inference_mode(), _context(variant):
        for _ in range(warmup):
            runnable(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = runnable(x)
            times.append(time.perf_counter() - t0)
            if budget_s is not None and sum(times) > budget_s:
                break
        diff = float((out.float() - reference).abs().mean())
    return times, diff


def _measure(name: str, model: nn.Module, macs: int, size: int, batch: int, variant: str,
             warmup: int, repeats: int, budget_s: float | None) -> dict:
    row = {"model": name, "config": _describe(name, model), "params": count_params(model),
           "macs_per_image": macs, "size": size, "batch": batch, "variant": variant}
    try:
        times, diff = time_model(model, size, batch, variant, warmup, repeats, budget_s)
        med = statistics.median(times)
        row.update(median_ms=1000 * med, images_per_s=batch / med, repeats=len(times), mean_abs_diff_vs_fp32=diff)
    except Exception as exc:  # e.g. an op without a bf16 CPU kernel
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        row.update(median_ms=None, images_per_s=None, error=error)
    return row


def run_models(models: dict[str, nn.Module], sizes, batches, variants, warmup, repeats,
               budget_s: float | None = None, log=None) -> list[dict]:
    """One row per model, size, batch and variant. The speedup is against the stock ResNet-9 in fp32
    at the same size and batch, which is therefore always measured (first)."""
    rows = []
    for size in sizes:
        macs = {name: count_macs(m, torch.zeros(1, in_channels(m), size, size)) for name, m in models.items()}
        for batch in batches:
            if log:
                log(f"{REFERENCE} {size}px batch {batch} fp32 (reference)")
            ref = _measure(REFERENCE, models[REFERENCE], macs[REFERENCE], size, batch, "fp32", warmup, repeats, budget_s)
            group = [ref]
            for variant in variants:
                for name, model in models.items():
                    if name == REFERENCE and variant == "fp32":
                        continue
                    if log:
                        log(f"{name} {size}px batch {batch} {variant}")
                    group.append(_measure(name, model, macs[name], size, batch, variant, warmup, repeats, budget_s))
            order = {v: i for i, v in enumerate(variants)}
            group.sort(key=lambda r: order.get(r["variant"], -1))  # stable: registry order within a variant
            for row in group:
                ok = row["median_ms"] and ref["median_ms"]
                row["speedup_vs_resnet9"] = ref["median_ms"] / row["median_ms"] if ok else None
            rows.extend(group)
    return rows


# --------------------------------------------------------------------------------------------
# end-to-end pipeline
# --------------------------------------------------------------------------------------------

def synthetic_photo(width: int = 640, height: int = 480):
    """A 640x480 RGB 'photo' with a drawn face (skin ellipse, eyes, mouth) on a textured background."""
    import cv2
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.full((height, width, 3), (120, 140, 160), np.uint8)
    cx, cy = width // 2, height // 2
    cv2.ellipse(img, (cx, cy - 20), (int(height * 0.3), int(height * 0.42)), 0, 0, 360, (60, 40, 30), -1)  # hair
    cv2.ellipse(img, (cx, cy), (int(height * 0.24), int(height * 0.32)), 0, 0, 360, (190, 150, 125), -1)
    for dx in (-1, 1):
        cv2.ellipse(img, (cx + dx * int(height * 0.1), cy - int(height * 0.06)), (14, 7), 0, 0, 360, (40, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + int(height * 0.15)), (30, 8), 0, 0, 360, (120, 50, 50), -1)
    noise = rng.integers(-10, 10, img.shape)
    return Image.fromarray(np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8))


#: ``max_size`` value in :data:`PIPELINE_SETTINGS` that stands for the pipeline's own working size.
MODEL_SIZE = "model size"
#: (label, pipeline call settings) timed for every pipeline model.
PIPELINE_SETTINGS = (
    ("whole image", {"face_crop": False, "align": False, "background": False}),
    ("face crop", {"face_crop": True, "align": False, "background": False}),
    ("aligned", {"face_crop": False, "align": True, "background": False}),
    ("aligned + background (default)", {"face_crop": False, "align": True, "background": True}),
    ("aligned + background, at the model's size only", {"face_crop": False, "align": True, "background": True,
                                                        "max_size": MODEL_SIZE}),
)


def _median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def run_pipeline(names: Sequence[str], photo, warmup: int, repeats: int, log=None) -> tuple[list[dict], str | None]:
    """Time PhotoSketchPipeline end to end; ([], reason) when the pipeline module is absent."""
    try:
        from photosketch.pipeline import PhotoSketchPipeline
    except ImportError as exc:
        return [], f"photosketch.pipeline not available ({exc})"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            source = name
            if name in GENERATORS:
                # Untrained weights time the same as trained ones; save the default config to a folder.
                torch.manual_seed(0)
                source = str(Path(tmp) / name)
                GENERATORS[name]().save_pretrained(source)
            try:
                pipe = PhotoSketchPipeline.from_pretrained(source, direction="photo2sketch")
            except Exception as exc:
                rows.append({"model": name, "setting": "n/a", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
                continue
            for label, settings in PIPELINE_SETTINGS:
                if log:
                    log(f"pipeline {name} {label}")
                row = {"model": name, "setting": label, **settings}
                call = {k: pipe.size if v == MODEL_SIZE else v for k, v in settings.items()}
                try:
                    med = _median_ms(lambda: pipe(photo, **call), warmup, repeats)
                    row.update({"median_ms": med, "images_per_s": 1000 / med, "repeats": repeats})
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                rows.append(row)
    return rows, None


def run_alignment(photo, warmup: int, repeats: int) -> list[dict]:
    """The alignment steps alone: face landmarks on the photo, the person mask of one aligned canvas."""
    import numpy as np

    from photosketch.align import FaceAligner, alignment_matrix, canvas_size, warp

    aligner = FaceAligner()
    faces = aligner.detect(photo)
    rows = [{"step": f"faces ({faces[0].source if faces else 'none found'}, {len(faces)} face(s))",
             "median_ms": _median_ms(lambda: aligner.detect(photo), warmup, repeats)}]
    if faces and aligner.has_landmarks:
        size = canvas_size(256)
        canvas = warp(np.asarray(photo.convert("RGB")), alignment_matrix(faces[0], photo.size, 256), size, border=255.0)
        rows.append({"step": f"person mask ({size[0]}x{size[1]} canvas)",
                     "median_ms": _median_ms(lambda: aligner.person_mask(canvas), warmup, repeats)})
    return rows


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def markdown(meta: dict, rows: list[dict], pipeline_rows: list[dict], pipeline_note: str | None,
             alignment_rows: Sequence[dict] = ()) -> str:
    out = [
        "## Latency",
        "",
        f"CPU: {meta['cpu']}; torch {meta['torch']}, {meta['threads']} thread(s); median of {meta['repeats']} "
        f"run(s) after {meta['warmup']} warm-up; `{meta['command']}`",
        "",
        f"| model | config | params (M) | GMACs/img | size | batch | variant | median ms | img/s | {SPEEDUP_COLUMN} | "
        "mean abs diff vs fp32 |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = r["model"] + (" (reference)" if r["model"] == REFERENCE and not meta["reference_selected"] else "")
        speed = _fmt(r.get("speedup_vs_resnet9"), ".2f")
        out.append(
            f"| {name} | {r['config']} | {r['params'] / 1e6:.3f} | {r['macs_per_image'] / 1e9:.2f} | {r['size']} | "
            f"{r['batch']} | {r['variant']} | {_fmt(r.get('median_ms'), '.1f', r.get('error', 'n/a'))} | "
            f"{_fmt(r.get('images_per_s'), '.2f')} | {speed}{'x' if r.get('speedup_vs_resnet9') else ''} | "
            f"{_fmt(r.get('mean_abs_diff_vs_fp32'), '.1e')} |"
        )
    out += ["", f"{SPEEDUP_COLUMN}: median of ResNet-9 (ngf 64, 9 blocks) in fp32 / median of the row, same size "
            "and batch, measured in this run. GMACs/img: Conv2d / ConvTranspose2d / Linear multiply-accumulates per "
            "image (the classical styles use functional convolutions, so they show 0; U-Net-256 pads inputs to a "
            "multiple of 256). bf16 is torch.autocast on CPU: fast only on CPUs with native bf16 (AVX512-BF16 / AMX). "
            "Variants: onnxruntime = photosketch.runtime (the pipeline's default); torchscript = jit trace + freeze + "
            "optimize_for_inference; int8 = PyTorch FX static quantisation (x86 backend, 8 calibration inputs); "
            "compile = torch.compile (first call compiles, in the warm-up). Outputs are in [-1, 1]."]
    out += ["", f"### End-to-end pipeline ({meta['photo']}, batch 1, fp32)", ""]
    if pipeline_note:
        out.append(f"skipped: {pipeline_note}")
    elif not pipeline_rows:
        out.append("skipped: no pipeline models selected")
    else:
        out += ["| model | setting | median ms | img/s |", "|---|---|---:|---:|"]
        for r in pipeline_rows:
            out.append(f"| {r['model']} | {r['setting']} | {_fmt(r.get('median_ms'), '.1f', r.get('error', 'n/a'))} | "
                       f"{_fmt(r.get('images_per_s'), '.2f')} |")
    if alignment_rows:
        out += ["", "Alignment steps alone (photosketch.align.FaceAligner):", "", "| step | median ms |", "|---|---:|"]
        out += [f"| {r['step']} | {r['median_ms']:.1f} |" for r in alignment_rows]
    return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="CPU latency of photosketch generators, classical styles and pipeline.")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square input sizes (default: 256 512)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default: 1 8)")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=None, help="default: all but compile (--quick: fp32)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs; the median is reported")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    p.add_argument("--budget_s", type=float, default=60.0,
                   help="stop repeating a measurement once its timed runs exceed this many seconds (default: 60)")
    p.add_argument("--models", nargs="+", default=None,
                   help=f"subset of: {', '.join(list(GENERATORS) + list(_classical_styles()))} "
                        f"({REFERENCE} is always measured as the reference)")
    p.add_argument("--pipeline_models", nargs="+", default=None,
                   help="models timed end to end through PhotoSketchPipeline (default: xdog compact resnet)")
    p.add_argument("--no_pipeline", action="store_true", help="skip the end-to-end pipeline timing")
    p.add_argument("--photo", default=None, help="photo for the pipeline timing (default: a synthetic 640x480 face)")
    p.add_argument("--output", default=None, help="also write the report: .json for records, anything else Markdown")
    p.add_argument("--quick", action="store_true",
                   help="seconds, for tests: 64 px, batch 1, fp32 only, 1 repeat, no warm-up, pipeline with xdog only")
    p.add_argument("--verbose", action="store_true", help="log each measurement to stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.repeats, args.warmup = [64], [1], 1, 0
        args.variants = args.variants or ["fp32"]
        if args.pipeline_models is None:
            args.pipeline_models = ["xdog"]
    args.variants = args.variants or list(DEFAULT_VARIANTS)
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.sizes) < 8 or min(args.batch) < 1 or args.repeats < 1 or args.warmup < 0:
        sys.stderr.write("latency.py: error: sizes >= 8, batch >= 1, repeats >= 1, warmup >= 0\n")
        return 2
    try:
        models, names = build_models(args.models)
    except KeyError as exc:
        sys.stderr.write(f"latency.py: error: {exc.args[0]}\n")
        return 2
    log = (lambda msg: sys.stderr.write(msg + "\n")) if args.verbose else None

    rows = run_models(models, args.sizes, args.batch, args.variants, args.warmup, args.repeats, args.budget_s, log)

    pipeline_rows, pipeline_note, alignment_rows = [], None, []
    if args.no_pipeline:
        pipeline_note = "--no_pipeline"
    else:
        pipeline_names = args.pipeline_models or ["xdog", "compact", "resnet"]
        from photosketch.hub import MODELS

        # Generator classes (untrained, default config), classical styles, registry names, model folders.
        pipeline_names = [n for n in pipeline_names
                          if n in GENERATORS or n in _classical_styles() or n in MODELS or Path(n).is_dir()]
        if args.photo:
            from photosketch.image import load_image

            photo = load_image(args.photo)
        else:
            photo = synthetic_photo()
        pipeline_rows, pipeline_note = run_pipeline(pipeline_names, photo, args.warmup, args.repeats, log)
        if pipeline_names and pipeline_note is None:
            alignment_rows = run_alignment(photo, args.warmup, args.repeats)

    meta = {
        "cpu": _cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "repeats": args.repeats, "warmup": args.warmup, "reference_selected": REFERENCE in (args.models or names),
        "command": "python benchmarks/latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "photo": args.photo or "synthetic 640x480",
    }
    report = markdown(meta, rows, pipeline_rows, pipeline_note, alignment_rows)
    sys.stdout.write(report)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            path.write_text(json.dumps({"meta": meta, "models": rows, "pipeline": pipeline_rows,
                                        "pipeline_note": pipeline_note, "alignment": alignment_rows}, indent=2) + "\n")
        else:
            path.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
