"""Turn a trained generator + its measured evaluation into a shipped model folder (exact Hub layout).

    python scripts/ship_model.py --model_dir runs/p2s/photo2sketch --name photo2sketch --fp16 \\
        --results "CUFS-CUHK test (100)=outputs/eval/p2s_cufs/results.json" \\
        --results "FS2K test (1046)=outputs/eval/p2s_fs2k/results.json" \\
        --baseline "CUFS-CUHK test (100)=outputs/eval/xdog_cufs/results.json" \\
        --baseline "FS2K test (1046)=outputs/eval/xdog_fs2k/results.json" \\
        --latency "benchmarks/results/latency.json"

writes ``weights/<name>/{config.json, model.safetensors, README.md}``. The card is rendered from
``model_cards/generator.md`` with the numbers read from the results files, never typed by hand, and
the training command read from the run's ``training_args.json``.

``--onnx`` (default for ``photo2sketch-fast``, the model the app runs in the visitor's browser) also
writes ``model.onnx``: the shipped weights (after any fp16 rounding, so it computes what the safetensors
load to) exported by ``photosketch.runtime.export_onnx``. To (re)write only that file for a model that is
already shipped:

    python scripts/ship_model.py --name photo2sketch-fast --onnx_only

``--speed_only`` rewrites just the card's Speed section from benchmark JSONs measured after shipping
(on a quiet machine):

    python scripts/ship_model.py --name photo2sketch-fast --speed_only --latency latency.json --stream stream.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_browser import BROWSER_MODEL  # noqa: E402
from photosketch.hub import MODELS, WEIGHTS_DIR  # noqa: E402
from photosketch.models import count_params, load_generator  # noqa: E402
from photosketch.runtime import export_onnx  # noqa: E402

DATA_NOTE = (
    "FS2K (Fan et al. 2022, official split: 1058 train / 1046 test, three sketch styles; photos from "
    "CASIA-WebFace) and CUFS (Wang & Tang 2009: CUHK student 88 + AR 100 training pairs; the standard "
    "100-pair CUHK student test split). **Research, non-commercial use only.** Both official test splits "
    "were kept out of training and model selection; a seeded 5% slice of the training pairs was the "
    "validation set."
)
DATA_SOURCE = (
    "The `--data_dir` in the command below is the `combined/` folder written by "
    "`python scripts/prepare_data.py --data_dir ../shared/data --output_dir DIR --max_side 256` "
    "(FS2K + CUFS training pairs)."
)
GENERAL_LIMITS = (
    "Made for aligned, frontal, evenly lit face photos and face sketches. `PhotoSketchPipeline` aligns photos "
    "itself by default: each face is warped to the training photos' layout of eyes, nose and mouth (MediaPipe "
    "face landmarks; its models are Apache-2.0) and the background is whitened with MediaPipe's person mask; "
    "sketch → photo inputs are not aligned. Faces far from frontal (profile views, heavy occlusion, strong "
    "side light) and non-face images give poor results. Outputs are stylised images, not "
    "evidence of what a person looks like: do not use them for identification. The training data is small and "
    "not balanced across ages, skin tones and genders; expect uneven quality across groups."
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", type=Path, default=None,
                   help="the trainer's exported folder, e.g. runs/p2s/photo2sketch (required unless --onnx_only)")
    p.add_argument("--name", required=True, choices=sorted(n for n, s in MODELS.items() if s.repo_id))
    p.add_argument("--weights_dir", type=Path, default=WEIGHTS_DIR)
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=False, help="store weights as float16")
    p.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                   help=f"also write model.onnx (default: only for {BROWSER_MODEL}, which the app runs in the browser)")
    p.add_argument("--onnx_only", action=argparse.BooleanOptionalAction, default=False,
                   help="only (re)write model.onnx of the already shipped weights_dir/name from its safetensors")
    p.add_argument("--speed_only", action=argparse.BooleanOptionalAction, default=False,
                   help="only rewrite the Speed section of the already shipped weights_dir/name card from --latency "
                        "(and --stream): speed measured after shipping, on a quiet machine")
    p.add_argument("--results", action="append", default=[], metavar="LABEL=results.json",
                   help="this model's evaluate results (repeat per test set)")
    p.add_argument("--baseline", action="append", default=[], metavar="LABEL=results.json",
                   help="the classical baseline's results on the same test set")
    p.add_argument("--teacher_results", action="append", default=[], metavar="LABEL=results.json",
                   help="for a distilled student: its teacher's results on the same test set")
    p.add_argument("--previous_results", action="append", default=[], metavar="LABEL=results.json",
                   help="the model this one replaces, on the same test set (measured in the same session)")
    p.add_argument("--latency", type=Path, default=None, help="benchmarks/latency.py --output JSON with a row for this model")
    p.add_argument("--stream", type=Path, default=None, help="benchmarks/stream.py --output JSON with rows for this model")
    p.add_argument("--note", default="", help="extra sentence for the Training section (e.g. why CPU)")
    p.add_argument("--limitations", default="", help="model-specific limitations, added to the general ones")
    p.add_argument("--data_source", default=DATA_SOURCE, help="where the command's training data came from")
    args = p.parse_args(argv)
    if args.speed_only and args.latency is None:
        p.error("--speed_only needs --latency (benchmarks/latency.py --output JSON)")
    if args.model_dir is None and not (args.onnx_only or args.speed_only):
        p.error("--model_dir is required (unless --onnx_only or --speed_only)")
    if args.onnx is None:
        args.onnx = args.name == BROWSER_MODEL
    return args


#: What the card says when the folder ships model.onnx (the architecture paragraph, after the weights' format).
ONNX_NOTE = (" `model.onnx` holds the same weights (as they load, in float32) exported to ONNX, for ONNX Runtime "
             "and the app's in-browser live mode (onnxruntime-web).")


def note_onnx_in_card(folder: Path) -> None:
    """Add :data:`ONNX_NOTE` to ``folder/README.md`` if it does not mention model.onnx yet (--onnx_only)."""
    card = folder / "README.md"
    if not card.is_file():
        return
    text = card.read_text()
    anchor = "loaded into float32."
    if "model.onnx" not in text and anchor in text:
        card.write_text(text.replace(anchor, anchor + ONNX_NOTE, 1))


def write_onnx(folder: Path) -> Path:
    """``folder/model.onnx`` from ``folder``'s config.json + model.safetensors (loaded as float32)."""
    model = load_generator(folder)
    path = folder / "model.onnx"
    path.write_bytes(export_onnx(model))
    return path


def replace_speed_section(card: Path, speed: str) -> bool:
    """Swap the body of ``card``'s ``## Speed`` section (up to the next ``## `` heading) for ``speed``."""
    text = card.read_text()
    start = text.find("\n## Speed\n")
    if start < 0:
        return False
    body = start + len("\n## Speed\n")
    end = text.find("\n## ", body)
    end = len(text) if end < 0 else end
    card.write_text(text[:body] + "\n" + speed + "\n" + text[end:])
    return True


def _pairs(items: list[str]) -> dict[str, dict]:
    out = {}
    for item in items:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"expected LABEL=results.json, got {item!r}")
        out[label] = json.loads(Path(path).read_text())
    return out


def evaluation_table(results: dict[str, dict], baselines: dict[str, dict], teachers: dict[str, dict] | None = None,
                     previous: dict[str, dict] | None = None, name: str = "") -> str:
    """The card's Evaluation section: this model, its teacher, the model of the same ``name`` it
    replaces (``previous``; its weights leave the repo, so its commands are not listed) and the
    classical baseline per test set and per style, the do-nothing floor, and for a student the
    per-style gap to its teacher."""
    teachers, previous = teachers or {}, previous or {}
    lines = [
        "Measured with `python -m photosketch.evaluate` (protocol in its docstring: shorter side to the "
        "model size, output back to the ground truth's size, grayscale comparison for sketches).",
        "",
        "| test set | model | n | FSIM | SSIM | L1 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, res in results.items():
        teacher, before = teachers.get(label), previous.get(label)
        others = ((f"teacher: {(teacher or {}).get('model', '')}", teacher),
                  (f"previous {name or 'model'} (the one this replaces)", before))
        for who, r in (("this model", res), *others,
                       (f"baseline: {baselines.get(label, {}).get('model', '')}", baselines.get(label))):
            if not r:
                continue
            m = r["means"]
            lines.append(f"| {label} | {who} | {r['n']} | {m['fsim']:.4f} | {m['ssim']:.4f} | {m['l1']:.4f} |")
        if res.get("floor"):  # evaluate's do-nothing row: the grayscale input scored as the output
            f = res["floor"]
            lines.append(f"| {label} | do nothing (grayscale input) | {res['n']} | {f['fsim']:.4f} | {f['ssim']:.4f} | {f['l1']:.4f} |")
        by_style = res.get("means_by_style") or {}
        if len(by_style) == 1:  # one style in the whole set: its row would repeat the set's own
            by_style = {}
        for style, m in sorted(by_style.items()):
            n = m.get("n", "")
            rows = [("this model", m)] + [(who, (r.get("means_by_style") or {}).get(style)) for who, r in others if r]
            for who, sm in rows:
                if sm:
                    lines.append(f"| {label}, style {style} | {who} | {n} | {sm['fsim']:.4f} | {sm['ssim']:.4f} | {sm['l1']:.4f} |")
            if m.get("floor"):
                f = m["floor"]
                lines.append(f"| {label}, style {style} | do nothing | {n} | {f['fsim']:.4f} | {f['ssim']:.4f} | {f['l1']:.4f} |")
    gaps = style_gaps(results, teachers)
    if gaps:
        close = sum(round(d, 4) >= -STUDENT_TOLERANCE for _, _, _, d in gaps)  # as the card prints them
        lines += ["", "Per style against the teacher, same protocol: " + ", ".join(
            f"`{style}` {mine:.4f} against {theirs:.4f} ({d:+.4f})" for style, mine, theirs, d in gaps)
            + f": within {STUDENT_TOLERANCE} FSIM of the teacher (or above it) in {close} style{'s' * (close != 1)} of {len(gaps)}."]
    runs = list(results.values()) + list(teachers.values())
    cmds = sorted({r.get("command", "") for r in runs if r.get("command")})
    if cmds:
        lines += ["", "Commands:", "", "```bash", *cmds, "```"]
    return "\n".join(lines)


#: A distilled student should stay this close to its teacher in FSIM, style by style (issue 13).
STUDENT_TOLERANCE = 0.01


def style_gaps(results: dict[str, dict], teachers: dict[str, dict]) -> list[tuple[str, float, float, float]]:
    """(style, student FSIM, teacher FSIM, difference) for every style of every test set that both
    were measured on; a set of one style (CUFS) counts as that style."""
    gaps = []
    for label, res in results.items():
        teacher = teachers.get(label)
        if not teacher:
            continue
        mine, theirs = res.get("means_by_style") or {}, teacher.get("means_by_style") or {}
        for style in sorted(set(mine) & set(theirs)):
            a, b = mine[style]["fsim"], theirs[style]["fsim"]
            gaps.append((style, a, b, a - b))
    return gaps


BACKEND_LABELS = {"fp32": "PyTorch, BatchNorm folded", "onnxruntime": "ONNX Runtime (the pipeline's default)"}


def speed_text(latency: Path | None, name: str, stream: Path | None = None) -> str:
    if latency is None:
        return "Not measured."
    data = json.loads(latency.read_text())
    meta = data["meta"]
    rows = [r for r in data["models"] if r["model"] == name and r["variant"] in BACKEND_LABELS and r.get("median_ms")]
    if not rows:
        return "Not measured."
    lines = [f"CPU latency ({meta['cpu']}, {meta['threads']} threads, torch {meta['torch']}, median of "
             f"{meta['repeats']} runs), the network alone:", "",
             "| input | batch | backend | median ms | images/s | speed-up vs ResNet-9 (ngf 64, PyTorch), same run |",
             "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']}x{r['size']} | {r['batch']} | {BACKEND_LABELS[r['variant']]} | {r['median_ms']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['speedup_vs_resnet9']:.1f}x |")
    lines += ["", f"`{meta['command']}`"]
    if stream is not None:
        sdata = json.loads(stream.read_text())
        smeta = sdata["meta"]
        srows = [r for r in sdata["rows"] if r["model"] == name]
        if srows:
            lines += ["", f"The Space's live webcam handler (`app.SketchApp.live_sketch` + JPEG encoding, "
                          f"{smeta['width']}x{smeta['height']} frames, {smeta['threads']} threads):", "",
                      "| face | median ms/frame | frames/s |", "|---|---:|---:|"]
            lines += [f"| {'aligned (tracked)' if r.get('align') else 'crop' if r['face_crop'] else 'whole frame'} | "
                      f"{r['median_ms']:.1f} | {r['sustained_fps']:.1f} |" for r in srows]
            lines += ["", f"`{smeta['command']}`"]
        drows = [r for r in sdata.get("drawing_rows", []) if r["model"] == name]
        if drows:
            lines += ["", "The Space's \"Update while drawing\" (`app.SketchApp.live_photo` on a 512x512 sketchpad "
                          f"that gains a stroke each tick, plus the PNG encoding; {smeta['threads']} threads):", "",
                      "| median ms/update | p90 ms |", "|---:|---:|"]
            lines += [f"| {r['median_ms']:.1f} | {r['p90_ms']:.1f} |" for r in drows]
            lines += ["", f"`{smeta['command']}`"]
    return "\n".join(lines)


def styles_text(model, name: str) -> str | None:
    """The card's Styles section for a style-conditioned model (None otherwise)."""
    styles = list(getattr(model, "styles", ()) or ())
    if not styles:
        return None
    from photosketch.pipeline import default_style

    return "\n".join([
        f"One model, {len(styles)} drawing styles: " + ", ".join(f"`{s}`" for s in styles) + ". `fs2k-1`, `fs2k-2` and "
        "`fs2k-3` are the three artists of FS2K (its `style` 0, 1, 2), `cufs` the CUFS sketches. The style enters "
        "through conditional normalisation (Dumoulin et al. 2017, a learned scale and shift per style after each "
        "norm); a float tensor of weights mixes styles.",
        "",
        "```python",
        f'pipe = PhotoSketchPipeline.from_pretrained("{name}")',
        f'sketch = pipe("face.jpg", style="cufs")     # default: "{default_style(styles)}"',
        'sketch = model(x, style="fs2k-1")              # the bare generator; x in [-1, 1], NCHW',
        "```",
    ])


def trainer_script(command: str | None) -> str:
    """The trainer named in a recorded command (``python train/distill.py ...`` -> ``train/distill.py``); of
    several (a teacher's run, then the student's), the last one, which made the model."""
    found = re.findall(r"train/\w+\.py", command or "")
    return found[-1] if found else "train/pix2pix.py"


def trained_steps(run_dir: Path, train_args: dict) -> str:
    """Steps the run made: --max_train_steps, else (a --max_train_minutes run) the last step in its logs.jsonl."""
    if train_args.get("max_train_steps"):
        return str(train_args["max_train_steps"])
    log = run_dir / "logs.jsonl"
    steps = [json.loads(line).get("step") for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    return str(max((s for s in steps if isinstance(s, int)), default="?"))


def main(args: argparse.Namespace) -> int:
    if args.onnx_only:
        folder = args.weights_dir / args.name
        if not (folder / "model.safetensors").is_file():
            print(f"{folder} holds no shipped model (model.safetensors); ship it first", file=sys.stderr)
            return 2
        path = write_onnx(folder)
        note_onnx_in_card(folder)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
        return 0
    if args.speed_only:
        card = args.weights_dir / args.name / "README.md"
        speed = speed_text(args.latency, args.name, args.stream)
        if speed == "Not measured.":
            print(f"{args.latency} has no row for {args.name}; the card is unchanged", file=sys.stderr)
            return 2
        if not card.is_file() or not replace_speed_section(card, speed):
            print(f"{card} is not a shipped card with a Speed section; ship the model first", file=sys.stderr)
            return 2
        print(f"rewrote the Speed section of {card}")
        return 0
    model = load_generator(args.model_dir)
    config = dict(model._hub_mixin_config)
    train_args_file = args.model_dir.parent / "training_args.json"
    train_args = json.loads(train_args_file.read_text()) if train_args_file.is_file() else {}
    spec = MODELS[args.name]
    arrow = "photo → sketch" if spec.direction == "photo2sketch" else "sketch → photo"
    architecture = (
        f"`{type(model).__name__}` ({count_params(model) / 1e6:.3f} M parameters), config: "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(config.items()))
        + f". Weights stored as {'float16' if args.fp16 else 'float32'} safetensors; loaded into float32."
        + (ONNX_NOTE if args.onnx else "")
    )
    training = "\n".join([
        f"Trained with this repository's `{trainer_script(train_args.get('command'))}` for {trained_steps(args.model_dir.parent, train_args)} steps, "
        f"batch {train_args.get('train_batch_size', '?')}, at {config.get('sample_size')} px."
        + (f" {args.note}" if args.note else ""),
        "",
        f"Data: {DATA_NOTE} {args.data_source}",
        "",
        "Command:",
        "",
        "```bash",
        train_args.get("command", "(not recorded)"),
        "```",
    ])
    card = {
        "title": f"photosketch {args.name}: {arrow}",
        "summary": f"{spec.description[0].upper()}{spec.description[1:]}, from "
                   "[photosketch](https://github.com/photosketch/photosketch).",
        "limitations": GENERAL_LIMITS + (f"\n\n{args.limitations}" if args.limitations else ""),
        "repo_id": spec.repo_id,
        "class_name": type(model).__name__,
        "architecture": architecture,
        "training": training,
        "evaluation": (evaluation_table(_pairs(args.results), _pairs(args.baseline), _pairs(args.teacher_results),
                                        _pairs(args.previous_results), args.name) if args.results else None),
        "speed": speed_text(args.latency, args.name, args.stream),
        "styles": styles_text(model, args.name),
    }
    out = args.weights_dir / args.name
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (model.half() if args.fp16 else model).save_pretrained(tmp, model_card_kwargs=card)
    if args.onnx:
        write_onnx(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
