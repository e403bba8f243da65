"""photosketch.training.run: the skeleton a trainer fills in (prepare, fit, export), on a toy trainer."""

import json
import logging

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from photosketch.models import CompactGenerator, load_generator
from photosketch.training import ImagePool, Run, backward_step, trainer_parser
from photosketch.training.data import TrainData, make_train_dataloader


class Pairs(torch.utils.data.Dataset):
    """Six 8x8 'photos' and their grey 'sketches'."""

    epoch = None

    def __len__(self):
        return 6

    def __getitem__(self, i):
        photo = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)) * 2 - 1
        return {"photo": photo, "sketch": photo.mean(0, keepdim=True)}

    def set_epoch(self, epoch):
        self.epoch = epoch


def toy_trainer(out, *extra):
    """A whole trainer in the shape of train/*.py: data, networks, prepare, step, validate, export."""
    from accelerate.state import AcceleratorState, GradientState

    parser, _ = trainer_parser("toy", "toy")
    args = parser.parse_args(["--output_dir", str(out), "--resolution", "16", "--train_batch_size", "2", "--report_to", "none",
                              "--logging_steps", "1", "--checkpointing_steps", "2", "--validation_steps", "3", "--use_ema",
                              "--seed", "1", *extra])
    args.command = "python toy.py"
    try:
        run = Run(args, "toy")
        dataset = Pairs()
        loader = make_train_dataloader(dataset, args, run.accelerator.num_processes)
        net = CompactGenerator(in_channels=3, out_channels=1, ngf=4, n_blocks=1, sample_size=16)
        pool = ImagePool(2)  # drawn from the global RNG: its contents and the RNG must survive a resume
        p = run.prepare(TrainData(dataset, loader, len(loader)), models={"net": net, "absent": None},
                        optimizers={"g": net.parameters(), "d": None}, ema_of=("net",), checkpointed=(pool,))
        run.log_plan("toy: 6 pairs")

        def step(batch):
            out = p["net"](batch["photo"])
            loss = F.l1_loss(out, batch["sketch"]) + 0.1 * F.l1_loss(out, pool.query(out.detach()))
            backward_step(run.accelerator, loss, p["optimizer_g"], p["scheduler_g"], p["net"].parameters())
            return {"loss/l1": loss.detach()}

        validated = []
        run.fit(step, validated.append, desc="toy")
        card = dict(title="Toy", summary="s", method="m", data="d", loss="L1", gen_kwargs={})
        paths = run.finish("toy", {"toy": ("net", card)})
        return run, p, validated, paths["toy"]
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def test_prepare_fit_and_export(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        run, p, validated, path = toy_trainer(tmp_path / "run", "--max_train_steps", "4")
    assert p["absent"] is None and p["optimizer_d"] is None and p["scheduler_d"] is None  # a trainer without D
    assert (run.steps_per_epoch, run.num_epochs, run.global_step) == (3, 2, 4) and validated == [3, 4]
    assert "toy: 6 pairs; 2 epochs, 4 steps (batch 2 total = 2 per device x 1 processes x 1 accumulation)" in caplog.text
    names = sorted(f.name for f in (tmp_path / "run" / "checkpoint-4").iterdir())
    # one model, one optimizer, one schedule; custom objects in order: the step, the pool, the EMA
    assert names == ["checkpoint_complete.json", "custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "custom_checkpoint_2.pkl",
                     "model.safetensors", "optimizer.bin", "random_states_0.pkl", "scheduler.bin"]
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    records = [json.loads(line) for line in (tmp_path / "run" / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and [r["epoch"] for r in records] == [0, 0, 0, 1]
    assert path == tmp_path / "run" / "toy" and "- steps: 4," in (path / "README.md").read_text()
    exported = list(load_generator(path).parameters())
    assert all(torch.equal(a, b) for a, b in zip(exported, run.emas["net"].shadow_params))  # the EMA weights
    assert not torch.equal(exported[0], p["net"].net[0].weight)  # not the live ones


def test_resume_continues_exactly(tmp_path):
    toy_trainer(tmp_path / "full", "--max_train_steps", "5")
    toy_trainer(tmp_path / "split", "--max_train_steps", "2")
    run, _, validated, _ = toy_trainer(tmp_path / "split", "--max_train_steps", "5", "--resume_from_checkpoint", "latest")
    assert run.resume.checkpoint == tmp_path / "split" / "checkpoint-2" and (run.resume.first_epoch, run.resume.skip_batches) == (0, 2)
    assert validated == [3, 5]
    for name in ("checkpoint-4/model.safetensors", "toy/model.safetensors"):
        a, b = load_file(tmp_path / "full" / name), load_file(tmp_path / "split" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the image pool (and the RNG it draws from) came back with the checkpoint
    a = torch.load(tmp_path / "full" / "checkpoint-4" / "custom_checkpoint_1.pkl", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoint-4" / "custom_checkpoint_1.pkl", weights_only=True)
    assert len(a["images"]) == 2 and all(torch.equal(x, y) for x, y in zip(a["images"], b["images"]))
