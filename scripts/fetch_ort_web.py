"""Fetch onnxruntime-web (pinned) for the app's "live in your browser" mode, from npm, once.

    python scripts/fetch_ort_web.py                    # npm pack onnxruntime-web@<pinned> -> app_static/ort/
    python scripts/fetch_ort_web.py --tarball onnxruntime-web-1.30.0.tgz   # offline, from a tarball you have

The browser runs the real-time student with onnxruntime-web, which the Space serves from its own files:
no CDN at run time, so the mode works offline and no third party sees a visitor. ``npm pack`` downloads
the package tarball from the npm registry (npm checks it against the registry's integrity hash); this
script checks it again against the sha512 pinned below, and extracts only what the app loads (see
``app_browser.ORT_FILES``: the WASM-only ES module + its threaded SIMD runtime, and the WebGPU ES module +
its runtime, ~41 MB in all) into ``app_static/ort/`` (git-ignored), with ``SOURCE.json`` recording where
they came from. Without these files the app hides the browser mode and says how to get it.

To move to another version: change ``app_browser.ORT_WEB_VERSION`` and ``INTEGRITY`` below (``npm view
onnxruntime-web@X.Y.Z dist.integrity``), run this script and the browser tests.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app_browser import ORT_DIR, ORT_FILES, ORT_WEB_VERSION  # noqa: E402

logger = logging.getLogger("fetch_ort_web")

#: npm's ``dist.integrity`` of onnxruntime-web@ORT_WEB_VERSION (the package tarball's sha512).
INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
LICENSE = "MIT (Copyright (c) Microsoft Corporation), https://github.com/microsoft/onnxruntime"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tarball", type=Path, default=None,
                   help=f"use this onnxruntime-web-{ORT_WEB_VERSION}.tgz instead of running npm pack")
    p.add_argument("--output_dir", type=Path, default=ORT_DIR, help="where the files go (the app serves app_static/ort/)")
    p.add_argument("--force", action=argparse.BooleanOptionalAction, default=False,
                   help="fetch again even when the pinned version is already there")
    return p.parse_args(argv)


def integrity(path: Path) -> str:
    """npm's Subresource-Integrity form of a file's sha512."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def installed(output_dir: Path) -> bool:
    """The pinned version's files are all in ``output_dir``."""
    source = output_dir / "SOURCE.json"
    try:
        meta = json.loads(source.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == ORT_WEB_VERSION and all((output_dir / name).is_file() for name in ORT_FILES)


def npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: install Node.js (e.g. apt-get install npm), or pass --tarball")
    spec = f"onnxruntime-web@{ORT_WEB_VERSION}"
    logger.info("npm pack %s", spec)
    done = subprocess.run([npm, "pack", spec, "--silent"], cwd=workdir, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"npm pack {spec} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return workdir / done.stdout.strip().splitlines()[-1]


def extract(tarball: Path, output_dir: Path) -> None:
    got = integrity(tarball)
    if got != INTEGRITY:
        raise SystemExit(f"{tarball.name}: sha512 {got} is not the pinned onnxruntime-web@{ORT_WEB_VERSION} ({INTEGRITY})")
    staging = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in ORT_FILES:
            try:
                member = tar.getmember(f"package/dist/{name}")
            except KeyError:
                shutil.rmtree(staging)
                raise SystemExit(f"{tarball.name} has no dist/{name}; the app loads it (app_browser.ORT_FILES)") from None
            with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    sizes = {name: (staging / name).stat().st_size for name in ORT_FILES}
    (staging / "SOURCE.json").write_text(json.dumps({
        "package": "onnxruntime-web", "version": ORT_WEB_VERSION, "integrity": INTEGRITY, "license": LICENSE,
        "files": sizes, "made_by": "python scripts/fetch_ort_web.py",
    }, indent=2) + "\n")
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)
    logger.info("wrote %s: %d files, %.1f MB", output_dir, len(sizes), sum(sizes.values()) / 1e6)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if installed(args.output_dir) and not args.force:
        logger.info("%s already holds onnxruntime-web %s", args.output_dir, ORT_WEB_VERSION)
        return 0
    if args.tarball is not None:
        if not args.tarball.is_file():
            raise SystemExit(f"{args.tarball}: no such file")
        extract(args.tarball, args.output_dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        extract(npm_pack(Path(tmp)), args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
