"""photosketch.training: losses, pool, schedules, checkpoint helpers, grids, export, hub upload."""

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from photosketch.training.args import add_common_args
from photosketch.training.checkpoints import (
    ResumePoint,
    TrainState,
    UnsafeCheckpointError,
    checkpoint_problem,
    checkpoint_step,
    enforce_checkpoint_limit,
    find_latest_checkpoint,
    list_checkpoints,
    mark_checkpoint_complete,
    resolve_resume_checkpoint,
    resume_from_checkpoint,
    save_checkpoint,
)
from photosketch.training.data import epoch_batches, make_train_dataloader
from photosketch.training.export import export_generator, push_folder_to_hub
from photosketch.training.logs import JsonlLogger
from photosketch.training.loop import TrainingLoop
from photosketch.training.losses import GANLoss, ImagePool
from photosketch.training.nets import generator_kwargs
from photosketch.training.optim import (
    get_lr_scheduler,
    lr_scheduler_from_args,
    max_train_steps_from_args,
    sync_scheduler_lr,
)
from photosketch.training.validation import save_validation_grid
from photosketch.models import CompactGenerator, load_generator


def test_gan_losses():
    ls, bce = GANLoss("lsgan"), GANLoss("vanilla")
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert ls(ones, True) == 0 and ls(zeros, False) == 0 and ls(zeros, True) == 1
    assert torch.isclose(bce(zeros, True), torch.log(torch.tensor(2.0)))
    with pytest.raises(ValueError):
        GANLoss("wgan")


def test_image_pool_fills_swaps_and_round_trips():
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: returned as is
    out = pool.query(torch.full((8, 1, 1, 1), 9.0))
    assert out.shape == (8, 1, 1, 1) and (out != 9).any()  # some came from the history
    restored = ImagePool(0)
    restored.load_state_dict(pool.state_dict())
    assert restored.size == 3 and all(torch.equal(a, b) for a, b in zip(restored.images, pool.images))
    assert torch.equal(ImagePool(0).query(first), first)


def test_constant_then_linear_and_lr_sync():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_lr_scheduler("constant_then_linear", opt, num_training_steps=10, decay_start_fraction=0.5)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    # A run resumed with a longer schedule recomputes its LR from the restored step.
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = get_lr_scheduler("constant_then_linear", opt2, num_training_steps=20)
    longer.load_state_dict(sched.state_dict())
    sync_scheduler_lr(longer)
    assert opt2.param_groups[0]["lr"] == 1.0 and longer.last_epoch == 10
    assert isinstance(get_lr_scheduler("cosine", opt2, num_training_steps=5), torch.optim.lr_scheduler.LambdaLR)


def _fake_checkpoint(root, step, complete=True):
    path = root / f"checkpoint-{step}"
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"x" * step)
    if complete:
        mark_checkpoint_complete(path, step)
    return path


def test_checkpoint_helpers(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    for step in (5, 20, 100):
        _fake_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-x").mkdir()
    assert find_latest_checkpoint(tmp_path).name == "checkpoint-100"
    assert resolve_resume_checkpoint(tmp_path, "latest").name == "checkpoint-100"
    assert checkpoint_step(tmp_path / "checkpoint-20") == 20
    _fake_checkpoint(tmp_path, 50, complete=False)  # incomplete and older than a complete one: garbage
    _fake_checkpoint(tmp_path, 200, complete=False)  # incomplete and newest: not counted, not deleted
    assert enforce_checkpoint_limit(tmp_path, None) == []
    removed = enforce_checkpoint_limit(tmp_path, 1)  # after a save: keep the newest complete one
    assert [p.name for p in removed] == ["checkpoint-5", "checkpoint-20", "checkpoint-50"]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-100", "checkpoint-200"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "nope"))


def test_latest_skips_incomplete_and_truncated_checkpoints_with_a_warning(tmp_path, caplog):
    # A save cut short leaves no marker; a file cut short after its marker no longer matches it.
    for step in (10, 20):
        _fake_checkpoint(tmp_path, step)
    _fake_checkpoint(tmp_path, 30, complete=False)
    (tmp_path / "checkpoint-40").mkdir()  # empty: killed before any file was written
    with (tmp_path / "checkpoint-20" / "model.safetensors").open("r+b") as f:
        f.truncate(7)
    with caplog.at_level("WARNING", logger="photosketch.training"):
        latest = resolve_resume_checkpoint(tmp_path, "latest")
    assert latest == tmp_path / "checkpoint-10"
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-40" in message and "checkpoint-30" in message and "checkpoint-20" in message
    assert "truncated" in message and "checkpoint-10" in message
    with pytest.raises(UnsafeCheckpointError, match="not a complete checkpoint"):
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-20"))
    with pytest.raises(UnsafeCheckpointError, match="did not finish"):
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-30"))


def test_common_args_defaults():
    parser = add_common_args(argparse.ArgumentParser())
    args = parser.parse_args(["--data_dir", "d", "--no-augment", "--use_ema"])
    assert (args.learning_rate, args.adam_beta1, args.adam_beta2) == (2e-4, 0.5, 0.999)
    assert args.lr_scheduler == "constant_then_linear" and args.augment is False and args.use_ema is True
    args.generator, args.resolution = "unet", 128
    assert generator_kwargs(args, 3, 1)["num_downs"] == 7


def test_validation_grid_and_jsonl(tmp_path):
    x, y = torch.zeros(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    grid = save_validation_grid(x, y, y, tmp_path / "v" / "step-1.png")
    assert (tmp_path / "v" / "step-1.png").is_file() and grid.size == (3 * 18 + 2, 2 * 18 + 2)
    log = JsonlLogger(tmp_path / "logs.jsonl")
    log.log({"loss/l1": torch.tensor(0.5), "lr": 1e-4}, step=3)
    JsonlLogger(tmp_path / "off.jsonl", enabled=False).log({"a": 1}, step=1)
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
    path = export_generator(model, tmp_path / "out", {"title": "Tiny", "training": "test"}, ema=ema)
    assert sorted(os.listdir(path)) == ["README.md", "config.json", "model.safetensors"]
    loaded = load_generator(path)
    first = next(iter(ema.shadow_params))
    assert torch.equal(next(loaded.parameters()), first)  # EMA weights, not the live ones
    assert "# Tiny" in (path / "README.md").read_text()

    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, **kw: calls.append(("create", kw["repo_id"], kw.get("exist_ok"))))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw["repo_id"], kw["folder_path"])) or "url")
    push_folder_to_hub(path, "me/tiny", token="x")
    assert calls == [("create", "me/tiny", True), ("upload", "me/tiny", str(path))]


def _loop_args(tmp_path, **overrides):
    args = add_common_args(argparse.ArgumentParser()).parse_args(["--data_dir", str(tmp_path)])
    args.output_dir = str(tmp_path / "run")
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def _training_loop(accelerator, args, state, validated, resume=ResumePoint(None, 0, 0), max_train_steps=5):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return TrainingLoop(accelerator, args, state, max_train_steps=max_train_steps, images_per_step=2,
                          lr_scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0),
                          validate=validated.append, resume=resume, progress_skip=("loss/b",))


def test_training_loop_logs_checkpoints_validates_and_stops(accelerator, tmp_path):
    args = _loop_args(tmp_path, logging_steps=2, checkpointing_steps=2, validation_steps=3, checkpoints_total_limit=None)
    state, validated = TrainState(), []
    accelerator.register_for_checkpointing(state)
    loop = _training_loop(accelerator, args, state, validated)
    stops = []
    with loop:
        while not loop.should_stop:
            stops.append(loop.end_of_step(epoch=0, losses={"loss/a": torch.tensor(0.5), "loss/b": torch.tensor(1.0)}))
    assert stops == [False] * 4 + [True] and loop.global_step == state.global_step == 5
    assert [p.name for p in list_checkpoints(args.output_dir)] == ["checkpoint-2", "checkpoint-4"]
    assert validated == [3]
    records = [json.loads(line) for line in (tmp_path / "run" / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 5]  # every --logging_steps, and the last step
    assert records[0]["loss/a"] == 0.5 and records[0]["lr"] == 0.1 and records[0]["epoch"] == 0
    assert "a" in loop.progress.postfix and "b" not in loop.progress.postfix
    loop.exit_if_interrupted()  # not interrupted: nothing happens
    loop.finish()
    assert [p.name for p in list_checkpoints(args.output_dir)][-1] == "checkpoint-5" and validated == [3, 5]


def test_training_loop_resumed_at_its_end_saves_nothing_new(accelerator, tmp_path):
    args = _loop_args(tmp_path, checkpointing_steps=2, validation_steps=4)
    state, validated = TrainState(global_step=4), []
    loop = _training_loop(accelerator, args, state, validated, resume=ResumePoint(tmp_path / "checkpoint-4", 2, 0),
                          max_train_steps=4)
    assert loop.should_stop  # the epoch loop does not start
    loop.finish()
    assert list_checkpoints(args.output_dir) == [] and validated == []


def test_training_loop_ctrl_c_checkpoints_and_exits_130(accelerator, tmp_path):
    import signal

    args = _loop_args(tmp_path, checkpointing_steps=0, validation_steps=0)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    loop = _training_loop(accelerator, args, state, [])
    before = signal.getsignal(signal.SIGINT)
    with loop:
        assert signal.getsignal(signal.SIGINT) == loop._on_sigint
        assert not loop.end_of_step(0, {})
        os.kill(os.getpid(), signal.SIGINT)  # first Ctrl-C: the step finishes, then the loop stops
        assert loop.stop_requested and not loop.interrupted
        assert loop.end_of_step(0, {}) and loop.interrupted
    assert signal.getsignal(signal.SIGINT) == before
    with pytest.raises(SystemExit) as exc:
        loop.exit_if_interrupted()
    assert exc.value.code == 130
    assert [p.name for p in list_checkpoints(args.output_dir)] == ["checkpoint-2"]

    # A second Ctrl-C (the default handler's KeyboardInterrupt) ends the loop at once, without a traceback.
    loop = _training_loop(accelerator, args, TrainState(), [])
    with loop:
        raise KeyboardInterrupt
    assert loop.interrupted and loop.should_stop and signal.getsignal(signal.SIGINT) == before


def test_resume_point_and_epoch_batches(accelerator, tmp_path):
    args = _loop_args(tmp_path, gradient_accumulation_steps=2)
    assert resume_from_checkpoint(accelerator, args, TrainState(), [], steps_per_epoch=3) == (None, 0, 0)
    args.resume_from_checkpoint = "latest"  # no checkpoint yet: a new run
    assert resume_from_checkpoint(accelerator, args, TrainState(), [], steps_per_epoch=3) == (None, 0, 0)

    state = TrainState(global_step=7)
    accelerator.register_for_checkpointing(state)
    save_checkpoint(accelerator, tmp_path / "run", 7, total_limit=None)
    state.global_step = 0
    resume = resume_from_checkpoint(accelerator, args, state, [], steps_per_epoch=3)
    # step 7 of 3 per epoch: epoch 2, after 1 optimizer step = 2 batches of accumulation
    assert resume == (tmp_path / "run" / "checkpoint-7", 2, 2) and state.global_step == 7

    class Data(torch.utils.data.Dataset):
        epoch = None

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return i

        def set_epoch(self, epoch):
            self.epoch = epoch

    dataset = Data()
    loader = accelerator.prepare(torch.utils.data.DataLoader(dataset, batch_size=1))
    assert [int(b) for b in epoch_batches(accelerator, loader, dataset, 2, resume)] == [2, 3, 4, 5]
    assert dataset.epoch == 2
    assert [int(b) for b in epoch_batches(accelerator, loader, dataset, 3, resume)] == [0, 1, 2, 3, 4, 5]


def test_run_setup_helpers(tmp_path):
    args = _loop_args(tmp_path, train_batch_size=4, num_epochs=3, max_train_steps=None, gradient_accumulation_steps=2,
                      lr_warmup_steps=1)
    # 10 batches over 2 processes = 5 each, 2 per optimizer step -> 3 steps per epoch
    assert max_train_steps_from_args(args, num_batches=10, num_processes=2) == 9
    args.max_train_steps = 4
    assert max_train_steps_from_args(args, num_batches=10, num_processes=2) == 4
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = lr_scheduler_from_args(args, opt, max_train_steps=4, num_processes=2)
    lrs = []
    for _ in range(8):  # per-process step counts: 8 = 4 steps x 2 processes
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 0.75, 0.5, 0.25])  # 2 warmup steps, then decay from half way
    loader = make_train_dataloader(list(range(10)), args, num_processes=2)
    assert loader.batch_size == 4 and loader.drop_last
    assert not make_train_dataloader(list(range(3)), args, num_processes=2).drop_last  # smaller than one batch


def test_save_cut_short_keeps_the_previous_checkpoint(accelerator, tmp_path, monkeypatch):
    # With a limit of 1, a save that dies half way must not have deleted the one complete checkpoint.
    state, pool = TrainState(global_step=1), ImagePool(2)
    pool.query(torch.ones(1, 1, 2, 2))
    accelerator.register_for_checkpointing(state)
    accelerator.register_for_checkpointing(pool)
    run = tmp_path / "run"
    save_checkpoint(accelerator, run, 1, total_limit=1)
    original = type(accelerator).save_state

    def save_then_die(self, output_dir, **kwargs):  # the process is killed after some files are written
        original(self, output_dir, **kwargs)
        with (Path(output_dir) / "custom_checkpoint_1.pkl").open("r+b") as f:
            f.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(accelerator), "save_state", save_then_die)
    state.global_step = 2
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, run, 2, total_limit=1)
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-1"]
    assert find_latest_checkpoint(run) == run / "checkpoint-1"

    monkeypatch.setattr(type(accelerator), "save_state", original)
    state.global_step = 0
    args = _loop_args(tmp_path, resume_from_checkpoint="latest")
    assert resume_from_checkpoint(accelerator, args, state, [], steps_per_epoch=1).checkpoint == run / "checkpoint-1"
    assert state.global_step == 1 and len(pool.images) == 1
    state.global_step = 3
    save_checkpoint(accelerator, run, 3, total_limit=1)  # the next save clears the partial folder, then rotates
    assert sorted(os.listdir(run)) == ["checkpoint-3"]
    assert checkpoint_problem(run / "checkpoint-3") is None


class _Planted:
    """Unpickling this runs code: it creates the folder ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin"])
def test_resume_refuses_a_file_that_would_run_code(accelerator, tmp_path, name):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    model, opt = accelerator.prepare(model, opt)
    state = TrainState(global_step=4)
    accelerator.register_for_checkpointing(state)
    run = tmp_path / "run"
    checkpoint = save_checkpoint(accelerator, run, 4, total_limit=None)
    args = _loop_args(tmp_path, resume_from_checkpoint="latest")
    state.global_step = 0
    assert resume_from_checkpoint(accelerator, args, state, [], steps_per_epoch=1).checkpoint == checkpoint
    assert state.global_step == 4  # the untouched checkpoint loads weights-only

    ran = tmp_path / "code-ran"
    torch.save({"global_step": _Planted(ran), "x": torch.zeros(1)}, checkpoint / name)
    mark_checkpoint_complete(checkpoint, 4)  # whoever planted it can rewrite the marker too
    with pytest.raises(UnsafeCheckpointError, match=f"{name}: refusing to resume.*could run code"):
        resume_from_checkpoint(accelerator, args, state, [], steps_per_epoch=1)
    assert not ran.exists()
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


def test_training_loop_sigterm_checkpoints_and_exits_143(accelerator, tmp_path):
    import signal

    def sigterm_not_handled(signum, frame):  # stands in for the default action (terminate) in this process
        raise AssertionError("SIGTERM reached the previous handler")

    args = _loop_args(tmp_path, checkpointing_steps=0, validation_steps=0)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    loop = _training_loop(accelerator, args, state, [])
    before = signal.signal(signal.SIGTERM, sigterm_not_handled)
    try:
        with loop:
            assert not loop.end_of_step(0, {})
            os.kill(os.getpid(), signal.SIGTERM)  # docker stop / kubectl delete / timeout: finish the step, then stop
            assert loop.stop_requested and not loop.interrupted
            assert loop.end_of_step(0, {}) and loop.interrupted
        assert signal.getsignal(signal.SIGTERM) == sigterm_not_handled
    finally:
        signal.signal(signal.SIGTERM, before)
    with pytest.raises(SystemExit) as exc:
        loop.exit_if_interrupted()
    assert exc.value.code == 143
    assert [p.name for p in list_checkpoints(args.output_dir)] == ["checkpoint-2"]
    assert checkpoint_problem(tmp_path / "run" / "checkpoint-2") is None


def test_resumed_loop_logs_each_step_once(accelerator, tmp_path):
    # Checkpoint at 2, logged up to 4, killed mid-line; resuming from 2 must not repeat steps 3 and 4.
    args = _loop_args(tmp_path, logging_steps=1, checkpointing_steps=0, validation_steps=0)
    logs = tmp_path / "run" / "logs.jsonl"
    logs.parent.mkdir(parents=True)
    logs.write_text("".join(json.dumps({"step": s, "loss/a": 1.0}) + "\n" for s in range(1, 5)) + '{"step": 5, "lo')
    state = TrainState(global_step=2)
    loop = _training_loop(accelerator, args, state, [], resume=ResumePoint(tmp_path / "run" / "checkpoint-2", 0, 0))
    with loop:
        while not loop.end_of_step(0, {"loss/a": torch.tensor(0.5)}):
            pass
    assert [json.loads(line)["step"] for line in logs.read_text().splitlines()] == [1, 2, 3, 4, 5]
