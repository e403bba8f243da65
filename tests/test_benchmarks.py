import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from photosketch.models import GENERATORS
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "latency.py"


def _table_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| model") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells)
    return rows


@pytest.fixture(scope="module")
def latency():
    return load_script("benchmarks/latency.py")


def test_quick_cli_lists_every_generator_with_resnet9_ratio():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| model"))
    assert "speedup vs ResNet-9" in header
    rows = _table_rows(proc.stdout)
    assert set(GENERATORS) <= set(rows)
    assert rows["resnet"][-2] == "1.00x" and rows["resnet"][-1] == "0.0e+00"  # the reference against itself
    assert all(float(rows[name][-2].rstrip("x")) > 0 for name in GENERATORS)
    assert "End-to-end pipeline" in proc.stdout
    assert "| xdog | aligned + background, at the model's size only | " in proc.stdout  # max_size = the pipeline's size


def test_models_filter_keeps_reference_and_writes_json(latency, tmp_path, capsys):
    out = tmp_path / "latency.json"
    assert latency.main(["--quick", "--threads", "1", "--models", "compact", "--no_pipeline", "--output", str(out)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert set(rows) == {"resnet (reference)", "compact"}
    data = json.loads(out.read_text())
    compact = next(r for r in data["models"] if r["model"] == "compact")
    assert compact["params"] > 0 and compact["macs_per_image"] > 0 and compact["speedup_vs_resnet9"] > 1
    assert latency.main(["--quick", "--models", "nope"]) == 2


def test_count_macs_by_hand(latency):
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 5))
    macs = latency.count_macs(model, torch.zeros(1, 3, 4, 4))
    assert macs == 4 * 4 * 8 * 3 * 9 + 4 * 4 * 8 * 4 * 4 + 5 * 4 * 8 * 8


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime")
def test_onnxruntime_variant_times_generators_and_skips_styles(latency, tmp_path):
    out = tmp_path / "latency.json"
    argv = ["--quick", "--threads", "1", "--models", "compact", "xdog", "--variants", "fp32", "onnxruntime",
            "--no_pipeline", "--output", str(out)]
    assert latency.main(argv) == 0
    rows = {(r["model"], r["variant"]): r for r in json.loads(out.read_text())["models"]}
    assert rows[("compact", "onnxruntime")]["median_ms"] > 0 and rows[("compact", "onnxruntime")]["speedup_vs_resnet9"] > 0
    assert rows[("resnet", "onnxruntime")]["median_ms"] > 0  # the reference also runs under ONNX Runtime
    assert rows[("xdog", "onnxruntime")]["median_ms"] is None and "learned generators only" in rows[("xdog", "onnxruntime")]["error"]


def test_stream_benchmark_runs_the_live_handler(tmp_path):
    # The real SketchApp.live_sketch + the output component's JPEG postprocess, a few tiny frames.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stream.py"), "--quick", "--threads", "1",
                           "--models", "xdog", "--output", str(tmp_path / "stream.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "stream.json").read_text())
    assert [(r["model"], r["face_crop"], r["align"]) for r in data["rows"]] == [
        ("xdog", True, False), ("xdog", False, False), ("xdog", False, True)]
    assert all(r["frames"] == 3 and r["median_ms"] > 0 and r["fps"] > 0 for r in data["rows"])
    assert "keeps up with 20 fps" in proc.stdout
    # The live-drawing table: the real SketchApp.live_photo, the model run on every tick (a new stroke each).
    assert [r["ticks"] for r in data["drawing_rows"]] == [3] and data["drawing_rows"][0]["median_ms"] > 0
    assert "Update while drawing" in proc.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stream.py"), "--quick", "--models", "no-such-model"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert bad.returncode == 2 and "unknown model" in bad.stderr and "Traceback" not in bad.stderr


def test_rejected_backends_are_measured_with_their_error(latency, tmp_path):
    # The CPU options tried for photosketch.runtime and not kept stay reproducible here.
    out = tmp_path / "latency.json"
    argv = ["--quick", "--threads", "1", "--models", "compact", "--variants", "fp32", "torchscript", "int8",
            "--no_pipeline", "--output", str(out)]
    assert latency.main(argv) == 0
    rows = {(r["model"], r["variant"]): r for r in json.loads(out.read_text())["models"]}
    assert rows[("compact", "fp32")]["mean_abs_diff_vs_fp32"] == 0
    assert rows[("compact", "torchscript")]["mean_abs_diff_vs_fp32"] < 1e-5
    int8 = rows[("compact", "int8")]
    assert int8["median_ms"] > 0 and 0 < int8["mean_abs_diff_vs_fp32"] < 0.2  # quantised: close, not equal


def test_generator_budget_trains_and_scores_each_config(tmp_path):
    """benchmarks/generator_budget.py: the real trainer and evaluator, a budget of seconds, a tiny config."""
    from tests.conftest import make_paired_split

    budget = load_script("benchmarks/generator_budget.py")
    data = tmp_path / "data"
    for split, n in (("train", 6), ("val", 3)):
        make_paired_split(data / split, n, size=(40, 40))
        (data / split / "styles.csv").write_text("name,style\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(n)))
    out = tmp_path / "budget.json"
    assert budget.main(["--data_dir", str(data), "--eval_dir", str(data), "--configs", "compact-32", "--minutes", "0.02",
                        "--resolution", "64", "--batch_size", "2", "--work_dir", str(tmp_path / "runs"),
                        "--output", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert row["config"] == "compact-32" and row["steps"] >= 1 and 0 < row["val_fsim"] <= 1 and row["n_val"] == 3
    assert row["params_m"] > 0 and (row["ms_per_step"] is None or row["ms_per_step"] > 0)
