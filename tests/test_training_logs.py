"""photosketch.training.logs: logs.jsonl as an accelerate tracker, tracker start-up, main-process logging."""

import argparse
import json

import torch
from accelerate.tracking import GeneralTracker

from photosketch.training.args import add_common_args
from photosketch.training.checkpoints import ResumePoint, TrainState
from photosketch.training.logs import JsonlLogger, init_trackers
from photosketch.training.loop import TrainingLoop


def test_jsonl_logger_is_an_accelerate_tracker(accelerator, tmp_path):
    log = JsonlLogger(tmp_path / "logs.jsonl")
    assert isinstance(log, GeneralTracker) and log.name == "jsonl" and log.tracker == tmp_path / "logs.jsonl"
    accelerator.trackers.append(log)
    accelerator.log({"loss/a": torch.tensor(0.25), "epoch": 1}, step=3)
    record = json.loads((tmp_path / "logs.jsonl").read_text())
    assert record["step"] == 3 and record["loss/a"] == 0.25 and record["epoch"] == 1 and "time" in record
    log.store_init_configuration({"lr": 1.0})  # the config lives in training_args.json: nothing is written
    assert len((tmp_path / "logs.jsonl").read_text().splitlines()) == 1


def test_each_training_loop_adds_one_jsonl_tracker(accelerator, tmp_path):
    parser = add_common_args(argparse.ArgumentParser(), data_dir_required=False)
    args = parser.parse_args(["--output_dir", str(tmp_path), "--logging_steps", "1", "--checkpointing_steps", "0",
                              "--validation_steps", "0"])
    sched = torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), lambda s: 1.0)
    for _ in range(2):  # a second loop on the same accelerator replaces the first one's tracker
        loop = TrainingLoop(accelerator, args, TrainState(), max_train_steps=1, images_per_step=1, lr_scheduler=sched,
                            validate=lambda step: None, resume=ResumePoint(None, 0, 0))
    assert [t.name for t in accelerator.trackers] == ["jsonl"]
    with loop:
        loop.end_of_step(0, {"loss/a": torch.tensor(1.0)})
    assert len((tmp_path / "logs.jsonl").read_text().splitlines()) == 1


def test_drop_after_keeps_each_step_once(tmp_path):
    path = tmp_path / "logs.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "lo')
    JsonlLogger(path).drop_after(2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
    JsonlLogger(tmp_path / "other.jsonl", enabled=False).drop_after(0)  # off the main process: nothing
    assert not (tmp_path / "other.jsonl").exists()


def test_init_trackers_passes_the_scalar_flags(tmp_path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    class Capture(GeneralTracker):
        name, requires_logging_directory = "capture", False
        config = None

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            self.config = values

    capture = Capture()
    try:
        accelerator = Accelerator(cpu=True, log_with=[capture])
        init_trackers(accelerator, argparse.Namespace(lr=0.1, name="x", on=True, ids=[1, 2], none=None), "proj")
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    assert capture.config == {"lr": 0.1, "name": "x", "on": True}  # trackers reject lists and None
