"""Trainers stopped as real processes: SIGTERM saves a checkpoint and exits 143, and ``kill -9`` at any
instant (checkpoint saves included) leaves a run that ``--resume_from_checkpoint latest`` continues."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from photosketch.training import checkpoints
from tests.conftest import load_script, make_paired_split

ROOT = Path(__file__).resolve().parent.parent

pix2pix = load_script("train/pix2pix.py", "pix2pix_signals")

TINY = ("--resolution", "32", "--generator", "compact", "--n_blocks", "1", "--ngf", "8", "--ndf", "8",
        "--train_batch_size", "2", "--report_to", "none", "--validation_steps", "0", "--logging_steps", "1",
        "--seed", "3")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_paired_split(tmp_path_factory.mktemp("pairs"), 6)


def start(data_dir, out: Path, *extra) -> subprocess.Popen:
    """``python train/pix2pix.py`` as its own process, output to ``out.log``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(out.with_suffix(".log"), "w")
    cmd = [sys.executable, "train/pix2pix.py", "--data_dir", str(data_dir), "--output_dir", str(out), *TINY,
           "--max_train_steps", "1000000", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_steps(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120) -> None:
    """Until the run has logged ``n`` steps (it is in its step loop)."""
    logs, deadline = out / "logs.jsonl", time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.with_suffix(".log").read_text()[-3000:]
        if logs.is_file() and len(logs.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} steps in {timeout} s")


def resume(data_dir, out: Path, steps: int, *extra) -> None:
    pix2pix.main(pix2pix.parse_args(["--data_dir", str(data_dir), "--output_dir", str(out), *TINY,
                                     "--max_train_steps", str(steps), "--resume_from_checkpoint", "latest", *extra]))


def test_sigterm_saves_a_checkpoint_and_exits_143(data_dir, tmp_path):
    out = tmp_path / "run"
    extra = ("--checkpointing_steps", "100000", "--lr_scheduler", "cosine", "--use_ema")
    proc = start(data_dir, out, *extra)
    wait_for_steps(proc, out, 2)
    proc.send_signal(signal.SIGTERM)  # what docker stop, Kubernetes, timeout and Spaces send
    assert proc.wait(timeout=120) == 143
    log = out.with_suffix(".log").read_text()
    [checkpoint] = checkpoints.list_checkpoints(out)
    assert checkpoints.checkpoint_problem(checkpoint) is None
    assert f"resume with --resume_from_checkpoint {checkpoint}" in log and "Traceback" not in log
    step = checkpoints.checkpoint_step(checkpoint)
    resume(data_dir, out, step + 1, *extra)  # the saved state loads weights-only and training goes on
    assert checkpoints.find_latest_checkpoint(out) == out / f"checkpoint-{step + 1}"
    assert (out / "photo2sketch" / "model.safetensors").is_file()


@pytest.mark.slow
def test_kill_9_at_random_instants_always_resumes(data_dir, tmp_path):
    # A checkpoint every step with a limit of 1: most of the run's time is spent saving and rotating,
    # so most kills land inside a save. Every run must resume from its newest complete checkpoint.
    rng = random.Random(0)
    mid_save = 0
    for i in range(20):
        out = tmp_path / f"run{i}"
        proc = start(data_dir, out, "--checkpointing_steps", "1", "--checkpoints_total_limit", "1")
        wait_for_steps(proc, out, 2)  # step 2 is logged after checkpoint-1 is complete
        time.sleep(rng.uniform(0.0, 2.0))
        proc.kill()
        proc.wait(timeout=60)
        mid_save += any(p.name.startswith(".checkpoint-") for p in out.iterdir())
        latest = checkpoints.find_latest_checkpoint(out)
        assert latest is not None, sorted(os.listdir(out))
        step = checkpoints.checkpoint_step(latest)
        resume(data_dir, out, step + 2, "--checkpointing_steps", "1", "--checkpoints_total_limit", "1")
        assert checkpoints.list_checkpoints(out) == [out / f"checkpoint-{step + 2}"]
        assert json.loads((out / f"checkpoint-{step + 2}" / checkpoints.CHECKPOINT_MARKER).read_text())["step"] == step + 2
        assert not any(p.name.startswith(".checkpoint-") for p in out.iterdir())
    print(f"{mid_save} of 20 kills landed inside a checkpoint save")
    assert mid_save >= 1, "no kill landed inside a checkpoint save"
