"""photosketch.training: losses, pool, schedules, checkpoint helpers, grids, export, hub upload."""

import argparse
import json
import os

import pytest
import torch

from photosketch import training as T
from photosketch.models import CompactGenerator, load_generator


def test_gan_losses():
    ls, bce = T.GANLoss("lsgan"), T.GANLoss("vanilla")
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert ls(ones, True) == 0 and ls(zeros, False) == 0 and ls(zeros, True) == 1
    assert torch.isclose(bce(zeros, True), torch.log(torch.tensor(2.0)))
    with pytest.raises(ValueError):
        T.GANLoss("wgan")


def test_image_pool_fills_swaps_and_round_trips():
    torch.manual_seed(0)
    pool = T.ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as is
    out = pool.query(torch.full((8, 1, 1, 1), 9.0))
    assert out.shape == (8, 1, 1, 1) and (out != 9).any()  # some came from the history
    restored = T.ImagePool(0)
    restored.load_state_dict(pool.state_dict())
    assert restored.size == 3 and all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))
    assert torch.equal(T.ImagePool(0).query(first), first)


def test_constant_then_linear_and_lr_sync():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = T.get_lr_scheduler("constant_then_linear", opt, num_training_steps=10, decay_start_fraction=0.5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    # A run resumed with a longer schedule recomputes its LR from the restored step.
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = T.get_lr_scheduler("constant_then_linear", opt2, num_training_steps=20)
    longer.load_state_dict(sched.state_dict())
    T.sync_scheduler_lr(longer)
    assert opt2.param_groups[0]["lr"] == 1.0 and longer.last_epoch == 10
    assert isinstance(T.get_lr_scheduler("cosine", opt2, num_training_steps=5), torch.optim.lr_scheduler.LambdaLR)


def test_checkpoint_helpers(tmp_path):
    assert T.find_latest_checkpoint(tmp_path) is None
    for step in (5, 20, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert T.find_latest_checkpoint(tmp_path).name == "checkpoint-100"
    assert T.resolve_resume_checkpoint(tmp_path, "latest").name == "checkpoint-100"
    assert T.checkpoint_step(tmp_path / "checkpoint-20") == 20
    removed = T.enforce_checkpoint_limit(tmp_path, 2)
    assert [p.name for p in removed] == ["checkpoint-5", "checkpoint-20"]
    assert [p.name for p in T.list_checkpoints(tmp_path)] == ["checkpoint-100"]
    with pytest.raises(FileNotFoundError):
        T.resolve_resume_checkpoint(tmp_path, str(tmp_path / "nope"))


def test_common_args_defaults():
    parser = T.add_common_args(argparse.ArgumentParser())
    args = parser.parse_args(["--data_dir", "d", "--no-augment", "--use_ema"])
    assert (args.learning_rate, args.adam_beta1, args.adam_beta2) == (2e-4, 0.5, 0.999)
    assert args.lr_scheduler == "constant_then_linear" and args.augment is False and args.use_ema is True
    args.generator, args.resolution = "unet", 128
    assert T.generator_kwargs(args, 3, 1)["num_downs"] == 7


def test_validation_grid_and_jsonl(tmp_path):
    x, y = torch.zeros(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    grid = T.save_validation_grid(x, y, y, tmp_path / "v" / "step-1.png")
    assert (tmp_path / "v" / "step-1.png").is_file() and grid.size == (3 * 18 + 2, 2 * 18 + 2)
    log = T.JsonlLogger(tmp_path / "logs.jsonl")
    log.log({"loss/l1": torch.tensor(0.5), "lr": 1e-4}, step=3)
    T.JsonlLogger(tmp_path / "off.jsonl", enabled=False).log({"a": 1}, step=1)
    record = json.loads((tmp_path / "logs.jsonl").read_text())
    assert record["step"] == 3 and record["loss/l1"] == 0.5 and not (tmp_path / "off.jsonl").exists()


def test_export_generator_with_ema_and_push(tmp_path, monkeypatch):
    from diffusers.training_utils import EMAModel
    from huggingface_hub import HfApi

    model = CompactGenerator(ngf=8, n_blocks=1, sample_size=32)
    ema = EMAModel(model.parameters(), decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    path = T.export_generator(model, tmp_path / "out", {"title": "Tiny", "training": "test"}, ema=ema)
    assert sorted(os.listdir(path)) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_generator(path)
    first = next(iter(ema.shadow_params))
    assert torch.equal(next(loaded.parameters()), first)  # EMA weights, not the live ones
    assert "# Tiny" in (path / "README.md").read_text()

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, **kw: calls.append(("create", kw["repo_id"], kw.get("exist_ok"))))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw["repo_id"], kw["folder_path"])) or "url")
    T.push_folder_to_hub(path, "me/tiny", token="x")
    assert calls == [("create", "me/tiny", True), ("upload", "me/tiny", str(path))]
