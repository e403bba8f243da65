"""photosketch.training.data: training data from the flags and a paired batch as (condition, target)."""

import argparse

import pytest
import torch

from conftest import make_paired_split
from photosketch.training.args import add_common_args
from photosketch.training.data import (
    PairedInputs,
    check_paired_data,
    check_unpaired_data,
    paired_channels,
    paired_train_data,
    unpaired_train_data,
)


def _parser_and_args(argv):
    parser = add_common_args(argparse.ArgumentParser(prog="trainer"), data_dir_required=False)
    parser.add_argument("--photo_dir")
    parser.add_argument("--sketch_dir")
    parser.add_argument("--sketch_source", default="real")
    parser.add_argument("--direction", default="photo2sketch")
    return parser, parser.parse_args(["--resolution", "32", "--train_batch_size", "2", *argv])


def test_paired_channels_and_inputs_follow_the_direction():
    _, args = _parser_and_args(["--direction", "sketch2photo", "--channels_last"])
    assert paired_channels(args) == (1, 3)
    photo, sketch = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    cond, real = PairedInputs(args, "cpu")({"photo": photo, "sketch": sketch})
    assert torch.equal(cond, sketch) and torch.equal(real, photo)
    assert cond.is_contiguous(memory_format=torch.channels_last) and real.is_contiguous(memory_format=torch.channels_last)
    args.direction = "photo2sketch"
    assert paired_channels(args) == (3, 1)


def test_pack_batches_get_line_drawings_of_their_photos(tmp_path):
    _, args = _parser_and_args(["--sketch_source", "lines"])
    inputs = PairedInputs(args, "cpu")
    assert inputs.line_drawings is None  # a folder's PairedDataset draws its own lines
    args.data_pack = str(tmp_path / "pack.safetensors")
    inputs = PairedInputs(args, "cpu")
    photo, sketch = torch.rand(2, 3, 16, 16) * 2 - 1, torch.zeros(2, 1, 16, 16)
    cond, real = inputs({"photo": photo, "sketch": sketch, "coin": torch.tensor([0.1, 0.9])})
    with torch.no_grad():
        assert torch.equal(cond, photo) and torch.allclose(real, inputs.line_drawings.drawer(photo))


def test_paired_data_from_a_folder(tmp_path, accelerator, capsys):
    data = make_paired_split(tmp_path / "data" / "train", 5)
    (data / "styles.csv").write_text("name,style\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(5)))
    parser, args = _parser_and_args(["--data_dir", str(tmp_path / "data")])
    assert check_paired_data(parser, args) == ["a", "b"]
    train = paired_train_data(args, accelerator)
    assert len(train.dataset) == 5 and train.num_batches == len(train.dataloader) == 2  # the last partial batch dropped
    args.data_pack = str(tmp_path / "pack.safetensors")
    with pytest.raises(SystemExit):
        check_paired_data(parser, args)
    assert "give either --data_dir or --data_pack, not both" in capsys.readouterr().err


def test_unpaired_data_from_folders_or_data_dir(tmp_path, accelerator, capsys):
    make_paired_split(tmp_path / "d" / "train", 3)
    parser, args = _parser_and_args(["--data_dir", str(tmp_path / "d")])
    check_unpaired_data(parser, args)
    assert args.train_photo_dir == str(tmp_path / "d" / "train" / "photos")
    train = unpaired_train_data(args, accelerator)
    assert len(train.dataset) == 3 and train.num_batches == len(train.dataloader) == 1

    (tmp_path / "empty").mkdir()
    parser, args = _parser_and_args(["--photo_dir", str(tmp_path / "empty"), "--sketch_dir", str(tmp_path / "d" / "train" / "sketches")])
    with pytest.raises(SystemExit):
        check_unpaired_data(parser, args)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("trainer: error: --photo_dir/--sketch_dir: ") and "Traceback" not in err


def test_photo_augmentation_follows_the_direction(tmp_path, accelerator, capsys):
    from photosketch.packed import write_pack
    from photosketch.training.args import photo_augmentation

    _, args = _parser_and_args([])
    assert photo_augmentation(args) == (0.25, 0.2)  # photo in: exposure jitter and B&W portraits
    args.direction = "sketch2photo"
    assert photo_augmentation(args) == (0.0, 0.0)  # photo out: the target is left as it is
    args.photo_jitter, args.grayscale_prob = 0.1, 0.5
    assert photo_augmentation(args) == (0.1, 0.5)
    make_paired_split(tmp_path / "data" / "train", 4)
    write_pack(tmp_path / "p.safetensors", tmp_path / "data", resolution=32, progress=False)
    _, args = _parser_and_args(["--data_pack", str(tmp_path / "p.safetensors"), "--direction", "sketch2photo"])
    pack = paired_train_data(args, accelerator).dataset
    assert (pack.augment.brightness, pack.augment.grayscale_prob) == (0.0, 0.0)
    parser, args = _parser_and_args(["--data_pack", str(tmp_path / "p.safetensors"), "--sketch_source", "sparse"])
    with pytest.raises(SystemExit):
        check_paired_data(parser, args)
    assert "--sketch_source sparse needs a pack with few-stroke drawings" in capsys.readouterr().err
