"""scripts/ship_model.py renders measured numbers into a shipped folder (tiny model, tiny data)."""

import json
from pathlib import Path

import safetensors.torch
import torch

from photosketch.evaluate import main as evaluate_main
from photosketch.models import CompactGenerator, load_generator

from conftest import load_script, make_paired_split

ROOT = Path(__file__).resolve().parent.parent


def load_ship():
    return load_script("scripts/ship_model.py")


def test_ship_model_writes_hub_folder_with_measured_card(tmp_path):
    make_paired_split(tmp_path / "data" / "test", 3)
    run = tmp_path / "run"
    torch.manual_seed(0)
    CompactGenerator(ngf=8, n_blocks=1, sample_size=32).save_pretrained(run / "photo2sketch")
    (run / "training_args.json").write_text(json.dumps(
        {"command": "python train/pix2pix.py --data_dir D --max_train_steps 7", "max_train_steps": 7, "train_batch_size": 2}))
    results = tmp_path / "eval"
    assert evaluate_main(["--data_dir", str(tmp_path / "data"), "--direction", "photo2sketch", "--model",
                          str(run / "photo2sketch"), "--output_dir", str(results), "--quiet"]) == 0
    baseline = tmp_path / "xdog"
    assert evaluate_main(["--data_dir", str(tmp_path / "data"), "--direction", "photo2sketch", "--model", "xdog",
                          "--output_dir", str(baseline), "--quiet"]) == 0

    ship = load_ship()
    weights = tmp_path / "weights"
    assert ship.main(ship.parse_args([
        "--model_dir", str(run / "photo2sketch"), "--name", "photo2sketch", "--weights_dir", str(weights), "--fp16",
        "--results", f"tiny test={results / 'results.json'}", "--baseline", f"tiny test={baseline / 'results.json'}",
    ])) == 0
    out = weights / "photo2sketch"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert all(t.dtype == torch.float16 for t in safetensors.torch.load_file(out / "model.safetensors").values())
    card = (out / "README.md").read_text()
    fsim = json.loads((results / "results.json").read_text())["means"]["fsim"]
    xdog = json.loads((baseline / "results.json").read_text())["means"]["fsim"]
    assert f"{fsim:.4f}" in card and f"{xdog:.4f}" in card
    assert "--max_train_steps 7" in card and "7 steps" in card
    assert "library_name: photosketch" in card and "non-commercial" in card
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(load_generator(out)(x), load_generator(run / "photo2sketch")(x), atol=2e-2)
    # A --max_train_minutes run has no step count in its arguments: the card takes the last logged step.
    (run / "training_args.json").write_text(json.dumps({"command": "python train/pix2pix.py --max_train_minutes 5",
                                                        "max_train_steps": None, "train_batch_size": 2}))
    (run / "logs.jsonl").write_text("".join(json.dumps({"step": s, "loss": 0.1}) + "\n" for s in (10, 20, 23)))
    assert ship.main(ship.parse_args(["--model_dir", str(run / "photo2sketch"), "--name", "photo2sketch",
                                      "--weights_dir", str(weights), "--results", f"tiny test={results / 'results.json'}"])) == 0
    assert "for 23 steps" in (out / "README.md").read_text()


def test_ship_a_distilled_student_with_teacher_rows_and_measured_speed(tmp_path, weights, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    make_paired_split(tmp_path / "data" / "test", 2)
    run = tmp_path / "run"
    torch.manual_seed(0)
    CompactGenerator(ngf=4, n_blocks=1, norm="batch", sample_size=32).save_pretrained(run / "photo2sketch")
    (run / "training_args.json").write_text(json.dumps(
        {"command": "python train/distill.py --data_dir D --teacher photo2sketch --max_train_steps 5",
         "max_train_steps": 5, "train_batch_size": 2}))
    CompactGenerator(ngf=8, n_blocks=1, sample_size=32).save_pretrained(tmp_path / "teacher")
    evals = {}
    for who, model in (("student", run / "photo2sketch"), ("teacher", tmp_path / "teacher")):
        evals[who] = tmp_path / f"eval-{who}"
        assert evaluate_main(["--data_dir", str(tmp_path / "data"), "--direction", "photo2sketch", "--model", str(model),
                              "--output_dir", str(evals[who]), "--quiet"]) == 0
    # Real (quick) benchmark runs of the model under its registry name.
    load_generator(run / "photo2sketch").save_pretrained(weights / "photo2sketch-fast")
    latency, stream = load_script("benchmarks/latency.py"), load_script("benchmarks/stream.py")
    assert latency.main(["--quick", "--threads", "1", "--models", "photo2sketch-fast", "--variants", "fp32", "onnxruntime",
                         "--no_pipeline", "--output", str(tmp_path / "latency.json")]) == 0
    assert stream.main(["--quick", "--threads", "1", "--models", "photo2sketch-fast", "--output", str(tmp_path / "stream.json")]) == 0

    ship = load_ship()
    assert ship.main(ship.parse_args([
        "--model_dir", str(run / "photo2sketch"), "--name", "photo2sketch-fast", "--weights_dir", str(tmp_path / "shipped"),
        "--results", f"tiny test={evals['student'] / 'results.json'}",
        "--teacher_results", f"tiny test={evals['teacher'] / 'results.json'}",
        "--previous_results", f"tiny test={evals['teacher'] / 'results.json'}",
    ])) == 0
    card_path = tmp_path / "shipped" / "photo2sketch-fast" / "README.md"
    before = card_path.read_text()
    assert "## Speed\n\nNot measured.\n" in before
    # Speed measured after shipping (on a quiet machine) goes into the shipped card's Speed section only.
    speed_args = ["--name", "photo2sketch-fast", "--weights_dir", str(tmp_path / "shipped"), "--speed_only",
                  "--latency", str(tmp_path / "latency.json"), "--stream", str(tmp_path / "stream.json")]
    assert ship.main(ship.parse_args(speed_args)) == 0
    card = card_path.read_text()
    assert "Not measured." not in card and card.count("## Speed") == 1
    assert card.split("## Speed")[0] == before.split("## Speed")[0]
    assert card.split("## Intended use")[1] == before.split("## Intended use")[1]
    # A benchmark without this model's rows leaves the card alone.
    assert ship.main(ship.parse_args(["--name", "sketch2photo", "--weights_dir", str(tmp_path / "shipped"), "--speed_only",
                                      "--latency", str(tmp_path / "latency.json")])) == 2
    teacher_fsim = json.loads((evals["teacher"] / "results.json").read_text())["means"]["fsim"]
    assert "train/distill.py` for 5 steps" in card and "--teacher photo2sketch" in card
    assert f"| tiny test | teacher: {tmp_path / 'teacher'} | 2 | {teacher_fsim:.4f} |" in card
    assert f"| tiny test | previous photo2sketch-fast (the one this replaces) | 2 | {teacher_fsim:.4f} |" in card
    assert "ONNX Runtime (the pipeline's default)" in card and "PyTorch, BatchNorm folded" in card
    assert "live webcam handler" in card and "benchmarks/stream.py --quick" in card


def test_styled_model_card_has_styles_and_the_do_nothing_floor(tmp_path):
    data = make_paired_split(tmp_path / "data" / "test", 2)
    (data / "styles.csv").write_text("name,style\n0,fs2k-1\n1,cufs\n")
    run = tmp_path / "run"
    torch.manual_seed(0)
    CompactGenerator(ngf=8, n_blocks=1, sample_size=32, styles=["cufs", "fs2k-1"]).save_pretrained(run / "photo2sketch")
    (run / "training_args.json").write_text(json.dumps({"command": "python train/pix2pix.py --style_conditioning"}))
    results = tmp_path / "eval"
    assert evaluate_main(["--data_dir", str(tmp_path / "data"), "--direction", "photo2sketch", "--model",
                          str(run / "photo2sketch"), "--output_dir", str(results), "--quiet"]) == 0
    ship = load_ship()
    assert ship.main(ship.parse_args(["--model_dir", str(run / "photo2sketch"), "--name", "photo2sketch", "--weights_dir",
                                      str(tmp_path / "weights"), "--results", f"tiny={results / 'results.json'}"])) == 0
    card = (tmp_path / "weights" / "photo2sketch" / "README.md").read_text()
    floor = json.loads((results / "results.json").read_text())["floor"]["fsim"]
    assert "## Styles" in card and "`cufs`, `fs2k-1`" in card and 'style="cufs"' in card
    assert f"| tiny | do nothing (grayscale input) | 2 | {floor:.4f}" in card
    assert "| tiny, style cufs | do nothing |" in card
    # A set with one style (CUFS: every sketch is `cufs`) gets no per-style rows that repeat its own.
    res = json.loads((results / "results.json").read_text())
    res["means_by_style"] = {"cufs": res["means_by_style"]["cufs"]}
    assert ", style" not in ship.evaluation_table({"tiny": res}, {})


def test_per_style_rows_and_gaps_to_the_teacher():
    # A student's card lists its teacher and the model it replaces in every style, and says in how many
    # styles it is within 0.01 FSIM of the teacher (a one-style set, CUFS, counts as its style).
    ship = load_ship()

    def res(fsim, styles):
        row = lambda f: {"fsim": f, "ssim": 0.5, "l1": 0.1, "n": 2}  # noqa: E731
        return {"n": 4, "model": "m", "means": row(fsim), "means_by_style": {s: row(f) for s, f in styles.items()}}

    student = {"A": res(0.70, {"cufs": 0.70}), "B": res(0.60, {"s1": 0.65, "s2": 0.55})}
    teacher = {"A": res(0.72, {"cufs": 0.72}), "B": res(0.61, {"s1": 0.655, "s2": 0.56})}
    before = {"B": res(0.58, {"s1": 0.63, "s2": 0.53})}
    table = ship.evaluation_table(student, {}, teacher, before, "photo2sketch-fast")
    assert "| B, style s2 | teacher: m | 2 | 0.5600 |" in table
    assert "| B, style s1 | previous photo2sketch-fast (the one this replaces) | 2 | 0.6300 |" in table
    assert "`cufs` 0.7000 against 0.7200 (-0.0200)" in table and "`s1` 0.6500 against 0.6550 (-0.0050)" in table
    assert "in 2 styles of 3." in table
    assert "Per style against the teacher" not in ship.evaluation_table(student, {})


def _uint8(x: torch.Tensor):
    """[-1, 1] -> the 8-bit levels an image gets (photosketch.image.tensor_to_pil)."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.int16)


def test_onnx_is_shipped_for_the_browser_model_and_computes_the_safetensors_model(tmp_path):
    import numpy as np
    import onnxruntime as ort

    from tests.test_runtime import _with_bn_stats

    run = tmp_path / "run"
    torch.manual_seed(0)
    _with_bn_stats(CompactGenerator(ngf=4, n_blocks=1, norm="batch", sample_size=32)).save_pretrained(run / "photo2sketch")
    ship = load_ship()
    args = ship.parse_args(["--model_dir", str(run / "photo2sketch"), "--name", "photo2sketch-fast", "--fp16",
                            "--weights_dir", str(tmp_path / "weights")])
    assert args.onnx  # the app's in-browser model gets its ONNX by default
    assert ship.main(args) == 0
    out = tmp_path / "weights" / "photo2sketch-fast"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    # The ONNX computes what the shipped (fp16-rounded) safetensors load to, within 1/255 of an image.
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.inference_mode():
        want = load_generator(out)(x)
    assert got.shape == want.shape
    assert (_uint8(got) - _uint8(want)).abs().max() <= 1
    assert np.isfinite(got.numpy()).all()

    # --onnx_only rewrites just that file, from the shipped weights; other models get no ONNX by default.
    (out / "model.onnx").unlink()
    card = (out / "README.md").read_text()
    assert ship.main(ship.parse_args(["--name", "photo2sketch-fast", "--onnx_only", "--weights_dir", str(tmp_path / "weights")])) == 0
    assert (out / "model.onnx").is_file() and (out / "README.md").read_text() == card
    assert "`model.onnx` holds the same weights" in card
    # A card shipped before the ONNX existed gets the sentence once, when --onnx_only adds the file.
    (out / "README.md").write_text(card.replace(ship.ONNX_NOTE, ""))
    for _ in range(2):
        assert ship.main(ship.parse_args(["--name", "photo2sketch-fast", "--onnx_only", "--weights_dir", str(tmp_path / "weights")])) == 0
    assert (out / "README.md").read_text() == card
    assert not ship.parse_args(["--model_dir", "x", "--name", "photo2sketch"]).onnx
    assert ship.main(ship.parse_args(["--name", "sketch2photo", "--onnx_only", "--weights_dir", str(tmp_path / "weights")])) == 2


def test_model_dir_is_required_unless_onnx_only(capsys):
    import pytest

    with pytest.raises(SystemExit):
        load_ship().parse_args(["--name", "photo2sketch"])
    assert "--model_dir is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_ship().parse_args(["--name", "photo2sketch", "--speed_only"])
    assert "--speed_only needs --latency" in capsys.readouterr().err


def test_the_card_names_the_trainer_that_made_the_model():
    ship = load_ship()
    assert ship.trainer_script("python train/pix2pix.py --a\npython train/distill.py --teacher x") == "train/distill.py"
    assert ship.trainer_script("python train/cyclegan.py") == "train/cyclegan.py"
    assert ship.trainer_script(None) == "train/pix2pix.py"


def test_speed_text_has_the_drawing_rows_of_a_sketch_model(tmp_path):
    ship = load_ship()
    meta = {"cpu": "cpu", "threads": 2, "torch": "2", "repeats": 3, "command": "latency"}
    (tmp_path / "latency.json").write_text(json.dumps({"meta": meta, "models": [
        {"model": "sketch2photo", "variant": "onnxruntime", "size": 256, "batch": 1, "median_ms": 18.7,
         "images_per_s": 53.4, "speedup_vs_resnet9": 30.3}]}))
    (tmp_path / "stream.json").write_text(json.dumps({
        "meta": {"width": 640, "height": 480, "threads": 2, "command": "stream"}, "rows": [],
        "drawing_rows": [{"model": "sketch2photo", "median_ms": 107.4, "p90_ms": 108.1},
                         {"model": "other", "median_ms": 1.0, "p90_ms": 2.0}]}))
    text = ship.speed_text(tmp_path / "latency.json", "sketch2photo", tmp_path / "stream.json")
    assert "| 107.4 | 108.1 |" in text and "| 1.0 | 2.0 |" not in text and "Update while drawing" in text
