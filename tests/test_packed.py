"""photosketch.packed: the one-file training set, its on-device batches and augmentation."""

import pytest
import torch

from conftest import make_paired_split
from photosketch.packed import PackAugment, PackedPairs, augment_pairs, pack_info, write_pack


def _styled_data(root, n_train=6, n_val=2):
    make_paired_split(root / "train", n_train)
    make_paired_split(root / "val", n_val)
    for split, n in (("train", n_train), ("val", n_val)):
        rows = [f"{i},{'fs2k-1' if i % 2 else 'cufs'}" for i in range(n)]
        (root / split / "styles.csv").write_text("name,style\n" + "\n".join(rows) + "\n")
    return root


def test_pack_round_trip(tmp_path):
    data = _styled_data(tmp_path / "data")
    summary = write_pack(tmp_path / "p.safetensors", data, resolution=32, progress=False)
    assert summary["pairs"] == {"train": 6, "val": 2} and summary["styles"] == ["cufs", "fs2k-1"]
    assert pack_info(tmp_path / "p.safetensors") == {"resolution": 32, "styles": ["cufs", "fs2k-1"], "pairs": {"train": 6, "val": 2}}
    train = PackedPairs(tmp_path / "p.safetensors", "train", augment=None)
    assert len(train) == 6 and train.photos.shape == (6, 3, 32, 32) and train.sketches.shape == (6, 1, 32, 32)
    assert train.photos.dtype == torch.uint8
    first = train.first(3)
    assert first["photo"].min() >= -1 and first["photo"].max() <= 1
    assert first["style"] == ["cufs", "fs2k-1", "cufs"]  # names 0, 1, 2 sorted as files: 0.png, 1.png, 2.png


def test_batches_are_seeded_sharded_and_resumable(tmp_path):
    data = _styled_data(tmp_path / "data", n_train=8)
    write_pack(tmp_path / "p.safetensors", data, resolution=32, progress=False)
    train = PackedPairs(tmp_path / "p.safetensors", "train", seed=3)
    full = list(train.batches(epoch=1, batch_size=2))
    assert len(full) == train.num_batches(2) == 4
    again = list(train.batches(epoch=1, batch_size=2, skip=2))  # a run resumed after two batches
    assert torch.equal(again[0]["photo"], full[2]["photo"]) and torch.equal(again[1]["sketch"], full[3]["sketch"])
    other_epoch = list(train.batches(epoch=2, batch_size=2))
    assert not torch.equal(other_epoch[0]["photo"], full[0]["photo"])
    # Two processes see disjoint halves of the epoch.
    seen = [b["index"].tolist() for p in (0, 1) for b in train.batches(1, 2, num_processes=2, process_index=p)]
    flat = [i for batch in seen for i in batch]
    assert sorted(flat) == list(range(8))


def test_augmentation_keeps_pairs_aligned_and_paper_white():
    photo = torch.full((2, 3, 32, 32), 0.0)
    sketch = torch.full((2, 1, 32, 32), -1.0)
    sketch[:, :, :, :16] = 1.0  # left half white, right half black
    photo[:, :, :, :16] = 1.0
    params = PackAugment(max_angle=0, min_scale=1.0, brightness=0, contrast=0, saturation=0, grayscale_prob=0).sample(
        2, torch.Generator().manual_seed(0))
    params["flip"] = torch.tensor([True, False])
    p, s = augment_pairs(photo, sketch, params)
    assert s[0, 0, 0, 0] < 0 < s[0, 0, 0, -1]  # flipped: black now on the left
    assert s[1, 0, 0, 0] > 0 > s[1, 0, 0, -1]
    assert torch.allclose((p[:, 0] > 0.5).float(), (s[:, 0] > 0).float())  # photo and sketch warped together
    # A 45-degree rotation uncovers the corners: white paper for the sketch, not black.
    params["angle"] = torch.tensor([0.785, 0.785])
    params["flip"] = torch.tensor([False, False])
    _, s = augment_pairs(photo, torch.full((2, 1, 32, 32), -1.0), params)
    assert s[0, 0, 0, 0] > 0.9 and s[0, 0, 16, 16] < -0.9


def test_grayscale_augmentation_removes_colour():
    photo = torch.rand(1, 3, 16, 16) * 2 - 1
    params = PackAugment(grayscale_prob=1.0).sample(1, torch.Generator().manual_seed(0))
    p, _ = augment_pairs(photo, torch.zeros(1, 1, 16, 16), params)
    assert torch.allclose(p[0, 0], p[0, 1], atol=1e-6) and torch.allclose(p[0, 1], p[0, 2], atol=1e-6)


def test_bad_pack_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a pack")
    with pytest.raises(ValueError, match="not a readable photosketch pack"):
        pack_info(bad)
    with pytest.raises(FileNotFoundError):
        PackedPairs(tmp_path / "missing.safetensors")
