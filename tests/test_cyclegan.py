"""train/cyclegan.py end to end on 6 tiny synthetic photos + 6 unrelated sketches (32 px, ngf=8, one
residual block): about a second per in-process run; the `accelerate launch` runs take longer."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from photosketch.training import loop, validation
from photosketch.models import load_generator
from tests.conftest import load_script, make_face

ROOT = Path(__file__).resolve().parent.parent


cyclegan = load_script("train/cyclegan.py", "cyclegan_trainer")


def make_unpaired(root: Path, n: int = 6, size: int = 40) -> Path:
    """Photos and sketches with different names and faces: nothing pairs them."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "sketches").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_face((size, size), seed=i).save(root / "photos" / f"photo{i:02d}.png")
        sketch = 255 - np.asarray(make_face((size, size), seed=100 + i).convert("L"))
        Image.fromarray(sketch).save(root / "sketches" / f"sketch{i:02d}.png")
    return root


@pytest.fixture(autouse=True)
def _fresh_accelerate_state_one_thread():
    # Accelerator state is a process-wide singleton; each in-process run starts clean. One intra-op
    # thread: these nets are tiny, and on a busy 2-core machine more threads only contend.
    from accelerate.state import AcceleratorState, GradientState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_unpaired(tmp_path_factory.mktemp("unpaired"))


TINY = ["--resolution", "32", "--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--train_batch_size", "2",
        "--report_to", "none", "--num_validation_images", "2", "--logging_steps", "1", "--seed", "3"]


def run(data_dir, out, *extra):
    data = ["--data_dir", str(data_dir)] if data_dir is not None else []
    argv = [*data, "--output_dir", str(out), *TINY, "--validation_steps", "0", *extra]
    return cyclegan.main(cyclegan.parse_args(argv))


def checkpoints(out):
    return sorted(int(p.name.split("-")[1]) for p in Path(out).glob("checkpoint-*"))


def test_checkpoints_logs_validation_and_export(data_dir, tmp_path):
    out = tmp_path / "run"
    exports = run(data_dir, out, "--max_train_steps", "4", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2",
                  "--validation_steps", "2")
    assert checkpoints(out) == [3, 4]
    # Two generators + two discriminators; the step, both image pools as custom objects.
    names = {p.name for p in (out / "checkpoint-4").iterdir()}
    assert {"model.safetensors", "model_1.safetensors", "model_2.safetensors", "model_3.safetensors",
            "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "custom_checkpoint_2.pkl"} <= names
    for step in (2, 4):
        for row in ("photo", "sketch"):
            grid = Image.open(out / "validation" / f"step-{step}-{row}.png")
            assert grid.size == (3 * 34 + 2, 2 * 34 + 2)  # 2 rows: input | translated | reconstructed
    records = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss/gan_photo2sketch", "loss/gan_sketch2photo", "loss/cycle_photo", "loss/cycle_sketch",
            "loss/identity_photo", "loss/identity_sketch", "loss/disc_photo", "loss/disc_sketch", "lr",
            "perf/images_per_s"} <= records[0].keys()
    assert records[0]["lr"] == pytest.approx(2e-4) and records[-1]["lr"] < 2e-4  # constant, then linear decay

    assert exports == {"photo2sketch": out / "photo2sketch", "sketch2photo": out / "sketch2photo"}
    shapes = {"photo2sketch": (3, 1), "sketch2photo": (1, 3)}
    for name, (c_in, c_out) in shapes.items():
        model = load_generator(exports[name])
        assert type(model).__name__ == "ResnetGenerator"
        config = json.loads((exports[name] / "config.json").read_text())
        assert (config["in_channels"], config["out_channels"], config["n_blocks"]) == (c_in, c_out, 1)
        assert model(torch.zeros(1, c_in, 32, 32)).shape == (1, c_out, 32, 32)
        card = (exports[name] / "README.md").read_text()
        assert "train/cyclegan.py" in card and "steps: 4" in card and "CycleGAN" in card


def test_resume_matches_uninterrupted_run(data_dir, tmp_path):
    # A pool of 3 fills within the first 2 steps (batch 2), so steps 3-4 swap images using the
    # restored pool contents and global RNG; EMA and the LR decay depend on restored state too, and
    # batch 2 of 6 items puts step 2 mid-epoch, so the resumed epoch must skip its first batch.
    common = ("--checkpointing_steps", "2", "--use_ema", "--pool_size", "3")
    run(data_dir, tmp_path / "full", "--max_train_steps", "4", *common)
    run(data_dir, tmp_path / "split", "--max_train_steps", "2", *common)
    assert checkpoints(tmp_path / "split") == [2]
    run(data_dir, tmp_path / "split", "--max_train_steps", "4", "--resume_from_checkpoint", "latest", *common)
    assert checkpoints(tmp_path / "split") == [2, 4]
    files = ["checkpoint-4/model.safetensors", "checkpoint-4/model_1.safetensors", "checkpoint-4/model_2.safetensors",
             "checkpoint-4/model_3.safetensors", "photo2sketch/model.safetensors", "sketch2photo/model.safetensors"]
    for name in files:
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resume"


def test_folders_three_channel_sketches_and_push_to_hub(data_dir, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    calls = {"create": [], "upload": []}

    def create_repo(self, repo_id, **kwargs):
        calls["create"].append(repo_id)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"].append((repo_id, sorted(os.listdir(folder_path))))
        return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    out = tmp_path / "run"
    # --photo_dir/--sketch_dir instead of --data_dir; 3-channel sketches take the plain identity loss.
    run(None, out, "--photo_dir", str(data_dir / "photos"), "--sketch_dir", str(data_dir / "sketches"),
        "--max_train_steps", "2", "--checkpointing_steps", "0", "--sketch_channels", "3",
        "--push_to_hub", "--hub_model_id", "me/faces")
    assert calls["create"] == ["me/faces-photo2sketch", "me/faces-sketch2photo"]
    files = ["README.md", "config.json", "model.safetensors"]
    assert calls["upload"] == [("me/faces-photo2sketch", files), ("me/faces-sketch2photo", files)]
    assert not checkpoints(out)
    for name in ("photo2sketch", "sketch2photo"):
        model = load_generator(out / name)
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
        assert f"me/faces-{name}" in (out / name / "README.md").read_text()


def test_validation_images_come_from_val_never_test(tmp_path):
    data = tmp_path / "data"
    for split, value in (("train", 200), ("val", 10), ("test", 90)):
        for sub in ("photos", "sketches"):
            (data / split / sub).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40, 40), (value, value, value)).save(data / split / sub / f"{i}.png")
    common = dict(resolution=32, sketch_channels=1)
    for paired in (True, False):
        photos, sketches, source = validation.validation_images(
            4, data_dir=data, photo_dir=data / "train" / "photos", sketch_dir=data / "train" / "sketches", paired=paired,
            **common)
        assert photos.shape == (2, 3, 32, 32) and sketches.shape == (2, 1, 32, 32) and "val" in source
        assert torch.allclose(photos, torch.full_like(photos, 10 / 127.5 - 1), atol=0.02)
    # Without val/: the first training images, never test/.
    for sub in ("photos", "sketches"):
        for f in (data / "val" / sub).iterdir():
            f.unlink()
        (data / "val" / sub).rmdir()
    (data / "val").rmdir()
    assert validation.validation_split(data) == "train" and validation.validation_split(None) == "train"
    photos, _, source = validation.validation_images(4, data_dir=data, paired=True, **common)
    assert "train" in source and torch.allclose(photos, torch.full_like(photos, 200 / 127.5 - 1), atol=0.02)


def test_interrupt_saves_a_checkpoint(data_dir, tmp_path, monkeypatch):
    original = loop.Throughput.add

    def add_then_interrupt(self, n):  # Ctrl-C arriving during step 1
        original(self, n)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(loop.Throughput, "add", add_then_interrupt)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        run(data_dir, out, "--max_train_steps", "4", "--checkpointing_steps", "0")
    assert exc.value.code == 130
    assert checkpoints(out) == [1]
    assert not (out / "photo2sketch").exists()


def test_arguments(data_dir, tmp_path, capsys):
    base = ["--data_dir", str(data_dir)]
    assert cyclegan.parse_args(base).n_blocks == 9  # CycleGAN: 9 blocks at 256 px
    assert cyclegan.parse_args([*base, "--resolution", "128"]).n_blocks == 6  # 6 at 128 px
    args = cyclegan.parse_args(base)
    assert (args.generator, args.gan_mode, args.lambda_cycle, args.lambda_identity, args.pool_size) == (
        "resnet", "lsgan", 10.0, 0.5, 50)
    assert (args.learning_rate, args.adam_beta1, args.lr_scheduler) == (2e-4, 0.5, "constant_then_linear")
    for bad in ([], ["--photo_dir", str(data_dir / "photos")], [*base, "--photo_dir", "x", "--sketch_dir", "y"],
                ["--data_dir", str(tmp_path)]):
        with pytest.raises(SystemExit) as exc:
            cyclegan.parse_args(bad)
        assert exc.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def _launch(*launch_args, env_extra=None, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", *launch_args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_accelerate_launch_cpu(data_dir, tmp_path):
    out = tmp_path / "run"
    log = _launch("--cpu", "--num_processes", "1", "train/cyclegan.py", "--data_dir", str(data_dir),
                  "--output_dir", str(out), *TINY, "--max_train_steps", "2", "--checkpointing_steps", "2",
                  "--validation_steps", "2")
    assert "batch 2 total = 2 per device x 1 processes" in log
    assert checkpoints(out) == [2]
    for name, c_in in (("photo2sketch", 3), ("sketch2photo", 1)):
        assert sorted(os.listdir(out / name)) == ["README.md", "config.json", "model.safetensors"]
        assert load_generator(out / name)(torch.zeros(1, c_in, 32, 32)).shape[-2:] == (32, 32)


def test_two_processes_on_cpu_and_resume(data_dir, tmp_path):
    # DDP over gloo: ACCELERATE_USE_CPU=1 with --multi_gpu starts torchrun with 2 CPU processes
    # (`--cpu` would pick the single-process launcher).
    out = tmp_path / "run"
    launch = ("--multi_gpu", "--num_processes", "2", "train/cyclegan.py", "--data_dir", str(data_dir),
              "--output_dir", str(out), *TINY, "--train_batch_size", "1", "--checkpointing_steps", "1",
              "--validation_steps", "0")
    log = _launch(*launch, "--max_train_steps", "2", env_extra={"ACCELERATE_USE_CPU": "1"})
    assert "batch 2 total = 1 per device x 2 processes" in log
    assert checkpoints(out) == [1, 2]
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(os.listdir(out / "checkpoint-2"))
    log = _launch(*launch, "--max_train_steps", "3", "--resume_from_checkpoint", "latest",
                  env_extra={"ACCELERATE_USE_CPU": "1"})
    assert "resuming from" in log and "checkpoint-2" in log
    assert checkpoints(out) == [1, 2, 3]  # named by the restored step, not by accelerate's save counter
    assert [json.loads(line)["step"] for line in (out / "logs.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert load_generator(out / "sketch2photo")(torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
