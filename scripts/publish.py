"""Push the shipped model folders (weights/<name>/) to the Hugging Face Hub, unchanged.

    python scripts/publish.py                      # every shipped model to its registry repo id
    python scripts/publish.py photo2sketch --repo_id you/photo2sketch --private

Each folder is already in exact Hub layout (config.json, model.safetensors, README.md, and model.onnx
for the model the app runs in the browser), so what the Hub serves is byte-for-byte what the app loads
offline.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from huggingface_hub import HfApi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

logger = logging.getLogger("publish")
REQUIRED = ("config.json", "model.safetensors", "README.md")
#: Uploaded when the folder has them (scripts/ship_model.py --onnx).
OPTIONAL = ("model.onnx",)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="shipped model names (default: all learned models in the registry)")
    p.add_argument("--repo_id", help="override the registry's repo id (one name only)")
    p.add_argument("--weights_dir", type=Path, default=None, help="folder holding <name>/ model folders (default: weights/)")
    p.add_argument("--private", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--token", default=None, help="Hub token (default: the cached login / HF_TOKEN)")
    p.add_argument("--commit_message", default="Upload photosketch model")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    from photosketch.hub import MODELS, WEIGHTS_DIR

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    weights_dir = args.weights_dir or WEIGHTS_DIR
    names = args.names or [n for n, spec in MODELS.items() if spec.repo_id]
    if args.repo_id and len(names) != 1:
        logger.error("--repo_id needs exactly one model name")
        return 2
    api = HfApi(token=args.token)
    for name in names:
        spec = MODELS.get(name)
        repo_id = args.repo_id or (spec.repo_id if spec else None)
        folder = weights_dir / name
        if not repo_id:
            logger.error("%s: no repo id in the registry; pass --repo_id", name)
            return 2
        missing = [f for f in REQUIRED if not (folder / f).is_file()]
        if missing:
            logger.error("%s: %s lacks %s; nothing uploaded", name, folder, ", ".join(missing))
            return 2
        api.create_repo(repo_id, repo_type="model", private=args.private, exist_ok=True)
        url = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                commit_message=args.commit_message,
                                allow_patterns=list(REQUIRED) + [f for f in OPTIONAL if (folder / f).is_file()])
        logger.info("%s -> %s", folder, url)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
