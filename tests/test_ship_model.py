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
        "--latency", str(tmp_path / "latency.json"), "--stream", str(tmp_path / "stream.json"),
    ])) == 0
    card = (tmp_path / "shipped" / "photo2sketch-fast" / "README.md").read_text()
    teacher_fsim = json.loads((evals["teacher"] / "results.json").read_text())["means"]["fsim"]
    assert "train/distill.py` for 5 steps" in card and "--teacher photo2sketch" in card
    assert f"| tiny test | teacher: {tmp_path / 'teacher'} | 2 | {teacher_fsim:.4f} |" in card
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
