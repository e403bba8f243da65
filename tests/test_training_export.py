"""photosketch.training.export: where an export goes, which repo it is pushed to, the card fields."""

import argparse

import pytest
import torch

from photosketch.models import CompactGenerator, load_generator
from photosketch.training import export


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "my run"), hub_model_id=None, push_to_hub=False, hub_token=None,
                command="python train/x.py --a 1", resolution=32, train_batch_size=2, gradient_accumulation_steps=3,
                learning_rate=2e-4, adam_beta1=0.5, adam_beta2=0.999, lr_scheduler="constant_then_linear", use_ema=True,
                seed=7, mixed_precision=None)
    return argparse.Namespace(**{**base, **kw})


@pytest.fixture
def pushes(monkeypatch):
    calls = []
    monkeypatch.setattr(export, "push_folder_to_hub", lambda folder, repo_id, **kw: calls.append((folder.name, repo_id)) or "url")
    return calls


@pytest.mark.parametrize("hub_model_id, push, repo_suffix, card_repo, pushed", [
    (None, False, False, None, []),                                      # a local export: no repo id in the card
    (None, True, False, "my-run-photo2sketch", [("photo2sketch", "my-run-photo2sketch")]),
    ("me/p2s", False, False, "me/p2s", []),
    ("me/cyc", True, True, "me/cyc-photo2sketch", [("photo2sketch", "me/cyc-photo2sketch")]),  # one repo per model
])
def test_export_and_push_repo_ids(tmp_path, pushes, hub_model_id, push, repo_suffix, card_repo, pushed):
    torch.manual_seed(0)
    seen = []
    model = CompactGenerator(ngf=4, n_blocks=1, sample_size=32)
    path = export.export_and_push(model, _args(tmp_path, hub_model_id=hub_model_id, push_to_hub=push), "photo2sketch",
                                  lambda repo_id: seen.append(repo_id) or {"title": "T"}, accelerator=None,
                                  repo_suffix=repo_suffix)
    assert path == tmp_path / "my run" / "photo2sketch" and seen == [card_repo] and pushes == pushed
    assert torch.equal(next(load_generator(path).parameters()), next(model.parameters()))


def test_model_card_fields_read_the_same_for_every_trainer(tmp_path):
    card = export.model_card_kwargs(_args(tmp_path), title="T", summary="S", method="pix2pix:", data="`d` (6 pairs)",
                                    loss="L1 x 100", steps=7, class_name="CompactGenerator", gen_kwargs={"ngf": 4},
                                    repo_id=None)
    lines = card["training"].splitlines()
    assert lines[:5] == ["pix2pix:", "", "```bash", "python train/x.py --a 1", "```"]
    assert "- steps: 7, resolution: 32x32, batch size: 2 x 3 accumulation" in lines
    assert any(line.endswith("schedule `constant_then_linear`, EMA weights") for line in lines)
    assert card["architecture"] == '`CompactGenerator` with `{"ngf": 4}`.' and card["repo_id"] is None
    assert export.default_hub_model_id("runs/my run", "x") == "my-run-x"
