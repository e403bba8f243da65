"""The ``photosketch`` command.

    photosketch to-sketch photo.jpg more/ -o sketches/       # best installed photo→sketch model
    photosketch to-sketch photo.jpg -o out/ --model pencil --strength 0.7
    photosketch to-sketch group.jpg -o out/ --faces largest --no-background
    photosketch to-photo sketch.png -o photos/ --model runs/s2p/final
    photosketch models                                        # what is installed

Exit status: 0 on success, 1 if some inputs could not be converted (the others are still
written), 2 for usage errors and missing models. User errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .data import IMAGE_EXTENSIONS, list_images
from .hub import DIRECTIONS, MODELS, ModelNotAvailableError, available_models, default_model, model_styles, resolve_direction
from .image import ImageLoadError

logger = logging.getLogger("photosketch")

COMMANDS = {"to-sketch": "photo2sketch", "to-photo": "sketch2photo"}


def _add_run_args(p: argparse.ArgumentParser, direction: str) -> None:
    what = "photos" if direction == "photo2sketch" else "sketches"
    p.add_argument("inputs", nargs="+", metavar="IN", help=f"{what}: image files or folders of images")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="folder for DIR/<stem>.png (created)")
    p.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                   help=f"registry name, model folder or Hub repo id (default: {'best installed' if direction == 'photo2sketch' else 'sketch2photo'})")
    p.add_argument("--size", type=int, default=None, help="working size in pixels (shorter side; default: the model's)")
    p.add_argument("--max-size", type=int, default=None,
                   help="a photo or face with more pixels than --size runs at its own size, up to this one (default: "
                        f"{'1.5 x --size' if direction == 'photo2sketch' else '--size'}; --max-size equal to --size: always --size)")
    p.add_argument("--face-crop", action=argparse.BooleanOptionalAction, default=False,
                   help="crop to the largest face (with hair and chin) first; the output is then the crop (default: off)")
    on = direction == "photo2sketch"
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None,
                   help="warp each face to the training data's layout (eyes, nose, mouth) and back "
                        f"(default: {'on' if on else 'off'}; no face found: the whole image)")
    p.add_argument("--background", action=argparse.BooleanOptionalAction, default=None,
                   help="whiten the background around the person so clutter is not drawn (default: on)" if on else
                        "paint the background one even colour instead of the model's blotches (default: on)")
    p.add_argument("--faces", choices=("each", "largest"), default="each",
                   help="with --align: sketch each face found or only the largest (default: each)")
    p.add_argument("--strength", type=float, default=None, help="line strength / darkness in [0, 1] (classical styles)")
    if direction == "photo2sketch":
        p.add_argument("--style", default=None,
                       help="drawing style of a style-conditioned model (`photosketch models` lists them); default: the model's")
    else:
        p.add_argument("--seed", type=int, default=None,
                       help="another face for the same drawing: a skin tone and hair colour picked by this seed "
                            "(default: the model's own colours)")
        p.add_argument("--frame", action=argparse.BooleanOptionalAction, default=None,
                       help="centre and enlarge a drawing that fills a small part of its page to the training "
                            "sketches' framing first (default: on)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                   help="inference backend (auto: ONNX Runtime when installed, else PyTorch)")


def build_parser() -> argparse.ArgumentParser:
    # -v / -q work before or after the command (SUPPRESS: a subcommand's default must not
    # overwrite what was given before it).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (-vv: debug, tracebacks)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
    parser = argparse.ArgumentParser(prog="photosketch", parents=[common],
                                     description="Face photo → pencil sketch and sketch → face photo.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_args(sub.add_parser("to-sketch", parents=[common], help="photos → sketches"), "photo2sketch")
    _add_run_args(sub.add_parser("to-photo", parents=[common], help="sketches → photos"), "sketch2photo")
    sub.add_parser("models", parents=[common], help="list the models usable now")
    return parser


def _collect(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files from the arguments (folders expanded to the images directly inside), plus error lines."""
    files: list[Path] = []
    errors: list[str] = []
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            found = list_images(path)
            if not found:
                errors.append(f"{path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def _unique_outputs(files: list[Path], out_dir: Path) -> list[Path]:
    # Two inputs with the same stem (a/x.jpg, b/x.png) must not overwrite each other.
    seen: dict[str, int] = {}
    outs = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        outs.append(out_dir / (f"{f.stem}.png" if n == 0 else f"{f.stem}-{n}.png"))
    return outs


def _error(msg: str) -> None:
    sys.stderr.write(f"photosketch: {msg}\n")


def _list_models() -> int:
    for direction in DIRECTIONS:
        default = default_model(direction)
        usable = available_models(direction)
        print(f"{direction}:")
        for name, spec in MODELS.items():
            if spec.direction != direction:
                continue
            state = "available" if name in usable else "not installed"
            mark = " (default)" if name == default else ""
            print(f"  {name:<14} {state:<14} {spec.description}{mark}")
            styles = model_styles(name) if name in usable else []
            if styles:
                print(f"  {'':<14} {'':<14} styles (--style): {', '.join(styles)}")
    return 0


def _run(args: argparse.Namespace, direction: str) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .pipeline import PhotoSketchPipeline

    if args.strength is not None and not 0.0 <= args.strength <= 1.0:
        _error(f"--strength must be in [0, 1]; got {args.strength}")
        return 2
    for flag, value in (("--size", args.size), ("--max-size", args.max_size), ("--threads", args.threads)):
        if value is not None and value < 1:
            _error(f"{flag} must be a positive number; got {value}")
            return 2
    files, errors = _collect(args.inputs)
    for e in errors:
        _error(e)
    if not files:
        _error("nothing to convert")
        return 2
    try:
        pipe = PhotoSketchPipeline.from_pretrained(
            args.model, direction=direction, size=args.size, face_crop=args.face_crop, num_threads=args.threads,
            backend=args.backend, align=args.align, background=getattr(args, "background", None), faces=args.faces,
            frame=getattr(args, "frame", None),
        )
    except (ModelNotAvailableError, KeyError) as exc:
        _error(exc.args[0] if exc.args else str(exc))
        return 2
    except ImportError as exc:  # --backend onnxruntime without the package
        _error(str(exc))
        return 2
    except (OSError, ValueError) as exc:  # an unreadable model folder or a wrong-direction model
        _error(f"cannot load model {args.model}: {exc}")
        return 2
    if args.max_size is not None:
        try:
            pipe.max_size = pipe.check_max_size(args.max_size)
        except ValueError as exc:
            _error(f"--max-size: {exc}")
            return 2
    if getattr(args, "style", None) is not None:
        try:
            pipe.style = pipe.check_style(args.style)
        except ValueError as exc:  # unknown style, or a model without styles
            _error(f"--style: {exc}")
            return 2
    guessed = resolve_direction(args.model, pipe.model) if args.model is not None else direction
    if guessed not in (None, direction):
        logger.warning("model %s looks like a %s model (from its channels); running it anyway", args.model, guessed)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _error(f"cannot create {args.output}: {exc}")
        return 2
    failed = len(errors)
    bar = tqdm(list(zip(files, _unique_outputs(files, args.output))), unit="img",
               disable=True if args.quiet or len(files) < 2 else None, file=sys.stderr)  # None: off when not a terminal
    # Notices logged while the bar runs (e.g. "no face found") go above it, not through it.
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        for src, dst in bar:
            bar.set_postfix_str(src.name, refresh=False)
            try:
                pipe(src, strength=args.strength, seed=getattr(args, "seed", None)).save(dst)
            except ImageLoadError as exc:
                failed += 1
                bar.write(f"photosketch: {exc}", file=sys.stderr)
            except OSError as exc:  # e.g. disk full while saving
                failed += 1
                bar.write(f"photosketch: {src}: cannot write {dst}: {exc}", file=sys.stderr)
    done = len(files) - (failed - len(errors))
    logger.info("wrote %d of %d images to %s", done, len(files), args.output)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", 0)
    args.quiet = getattr(args, "quiet", False)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="photosketch: %(message)s", stream=sys.stderr)
    if args.verbose < 2:
        # huggingface_hub warns about retries / missing caches; our own message says it better.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        if args.command == "models":
            return _list_models()
        return _run(args, COMMANDS[args.command])
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:
        if args.verbose >= 2 or os.environ.get("PHOTOSKETCH_DEBUG"):
            raise
        # An internal error, not a user error: still one line, with the way to get the details.
        _error(f"unexpected error: {type(exc).__name__}: {exc} (run with -vv for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
