"""photosketch.training.validation: what the grids show, eval-mode / EMA outputs, the grid files."""

import argparse

import torch
from PIL import Image

from conftest import make_paired_split
from photosketch.training.validation import eval_weights, paired_validation, unpaired_validation, write_validation_grid


def _args(data_dir, **kw):
    base = dict(data_dir=str(data_dir) if data_dir else None, data_pack=None, num_validation_images=4, resolution=32, sketch_channels=1,
                seed=0, sketch_source="real", direction="photo2sketch")
    return argparse.Namespace(**{**base, **kw})


def test_paired_validation_reads_styles_and_orients_by_direction(tmp_path):
    data = tmp_path / "data"
    make_paired_split(data / "train", 3)
    make_paired_split(data / "val", 2)
    (data / "val" / "styles.csv").write_text("name,style\n0,cufs\n1,fs2k-1\n")
    val = paired_validation(_args(data))
    assert val.inputs.shape == (2, 3, 32, 32) and val.targets.shape == (2, 1, 32, 32)
    assert val.styles == ["cufs", "fs2k-1"] and "(val)" in val.source
    flipped = paired_validation(_args(data, direction="sketch2photo"))
    assert torch.equal(flipped.inputs, val.targets) and torch.equal(flipped.targets, val.inputs)


def test_line_drawing_validation_needs_no_drawn_sketches(tmp_path):
    # --sketch_source lines on photos alone: the styles come from the same items, no second dataset
    # that would look for the sketches.
    data = tmp_path / "data"
    make_paired_split(data / "train", 3)
    make_paired_split(data / "val", 2)
    for f in (data / "val" / "sketches").iterdir():
        f.unlink()
    (data / "val" / "sketches").rmdir()
    val = paired_validation(_args(data, sketch_source="lines"))
    assert val.targets.shape == (2, 1, 32, 32) and val.styles == ["", ""]


def test_unpaired_validation_uses_the_training_folders_without_val(tmp_path):
    make_paired_split(tmp_path / "photos_here", 3)
    args = _args(None, train_photo_dir=str(tmp_path / "photos_here" / "photos"),
                 train_sketch_dir=str(tmp_path / "photos_here" / "sketches"))
    photos, sketches, source = unpaired_validation(args)
    assert photos.shape == (3, 3, 32, 32) and sketches.shape == (3, 1, 32, 32) and "(train)" in source


def test_eval_weights_swaps_in_ema_and_restores(accelerator):
    from diffusers.training_utils import EMAModel

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    ema = EMAModel(net.parameters(), decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    live = net[0].weight.detach().clone()
    with eval_weights(accelerator, (net, ema), (torch.nn.Identity(), None)) as (inner, _):
        assert inner is net and not net.training and not torch.is_grad_enabled()
        assert torch.equal(net[0].weight, ema.shadow_params[0])
    assert net.training and torch.equal(net[0].weight, live)


def test_write_validation_grid(accelerator, tmp_path):
    columns = [torch.zeros(2, 3, 16, 16), torch.ones(2, 1, 16, 16), -torch.ones(2, 1, 16, 16), torch.zeros(2, 3, 16, 16)]
    grid = write_validation_grid(accelerator, tmp_path, 7, columns, suffix="-photo")
    assert Image.open(tmp_path / "validation" / "step-7-photo.png").size == grid.size == (4 * 18 + 2, 2 * 18 + 2)
    assert grid.getpixel((2 + 18 + 1, 3)) == (255, 255, 255) and grid.getpixel((2 + 36 + 1, 3)) == (0, 0, 0)
