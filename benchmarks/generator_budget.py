"""Which photo→sketch generator learns the most per CPU-minute on this machine?

Each config trains from scratch with ``train/pix2pix.py`` for the same wall-clock budget (the same data,
seed, batch, resolution, losses and threads), then is scored on the validation slice with
``python -m photosketch.evaluate``. The table gives parameters, the median time of a training step and
the validation FSIM after the budget::

    python benchmarks/generator_budget.py --data_dir ../data-aligned/combined --eval_dir ../data-full/combined \\
        --minutes 12 --threads 1 --output benchmarks/results/generator_budget.json

Configs (``--configs`` picks some): the pix2pix U-Net at ngf 32 and 64, the CycleGAN ResNet-9 at ngf 32 (the
published teachers' generator) and a wider Compact (ngf 32; the shipped student is ngf 8). A short budget
measures how fast each one starts to learn, not where it ends: read the numbers as "after N minutes".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONFIGS = {
    "unet-32": ["--generator", "unet", "--ngf", "32"],
    "unet-64": ["--generator", "unet", "--ngf", "64"],
    "resnet-32": ["--generator", "resnet", "--ngf", "32", "--n_blocks", "9"],
    "compact-32": ["--generator", "compact", "--ngf", "32"],
}

#: The published teachers' losses and discriminator (scripts/gpu_recipe.py): only the generator differs.
LOSSES = ["--ndf", "64", "--num_scales_d", "2", "--lambda_feature_matching", "10", "--lambda_l1", "50", "--gan_mode", "lsgan"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True, help="training pairs (prepare_data.py's combined/)")
    p.add_argument("--eval_dir", type=Path, required=True, help="where the val split is scored (full-size pairs)")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--minutes", type=float, default=12.0, help="training budget of each config (wall clock)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for training and scoring")
    p.add_argument("--work_dir", type=Path, default=Path("runs/generator_budget"))
    p.add_argument("--output", type=Path, default=None, help="also write the results as JSON")
    return p.parse_args(argv)


def run(cmd: list[str], threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-3000:]}")


def train_and_score(name: str, args: argparse.Namespace) -> dict:
    out = args.work_dir / name
    shutil.rmtree(out, ignore_errors=True)
    train = [sys.executable, "train/pix2pix.py", "--data_dir", str(args.data_dir), "--output_dir", str(out),
             *CONFIGS[name], *LOSSES, "--direction", "photo2sketch", "--style_conditioning",
             "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size),
             "--max_train_minutes", f"{args.minutes:g}", "--checkpointing_steps", "0", "--validation_steps", "0",
             "--logging_steps", "5", "--report_to", "none", "--seed", "0"]
    t0 = time.monotonic()
    run(train, args.threads)
    wall = time.monotonic() - t0
    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines() if line.strip()]
    rates = [r["perf/images_per_s"] for r in records[1:] if "perf/images_per_s" in r]  # the first includes start-up
    steps = max((r.get("step", 0) for r in records), default=0)
    model = out / "photo2sketch"
    scored = out / "eval"
    run([sys.executable, "-m", "photosketch.evaluate", "--quiet", "--no-floor", "--threads", str(args.threads),
         "--data_dir", str(args.eval_dir), "--split", "val", "--direction", "photo2sketch", "--model", str(model),
         "--output_dir", str(scored)], args.threads)
    results = json.loads((scored / "results.json").read_text())
    return {
        "config": name, "args": CONFIGS[name], "params_m": round(results["params"] / 1e6, 3), "steps": steps,
        "ms_per_step": round(1000 * args.batch_size / statistics.median(rates), 1) if rates else None,
        "train_minutes": round(wall / 60, 1), "val_fsim": round(results["means"]["fsim"], 4),
        "val_ssim": round(results["means"]["ssim"], 4), "n_val": results["n"],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = []
    for name in args.configs:
        print(f"{name}: training {args.minutes:g} min ...", file=sys.stderr, flush=True)
        rows.append(train_and_score(name, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    header = (f"| config | params (M) | ms / step (batch {args.batch_size}, {args.resolution} px, {args.threads} thread) "
              f"| steps in {args.minutes:g} min | val FSIM | val SSIM |")
    print(header + "\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['params_m']} | {r['ms_per_step']} | {r['steps']} | {r['val_fsim']} | {r['val_ssim']} |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        command = "python benchmarks/generator_budget.py " + " ".join(sys.argv[1:] if argv is None else map(str, argv))
        args.output.write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
