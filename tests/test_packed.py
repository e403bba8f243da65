"""photosketch.packed: the one-file training set, its on-device batches and augmentation."""

import numpy as np
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
    assert pack_info(tmp_path / "p.safetensors") == {"resolution": 32, "styles": ["cufs", "fs2k-1"], "pairs": {"train": 6, "val": 2},
                                                     "sparse_per_pair": 0}
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


def test_few_stroke_drawings_are_packed_and_swapped_in_by_share(tmp_path):
    from photosketch.classical import sparse_drawing
    from photosketch.data import square_crop_resize
    from photosketch.image import load_image, uint8_to_tensor
    from photosketch.packed import sparse_seed

    data = _styled_data(tmp_path / "data", n_train=8)
    pack = tmp_path / "p.safetensors"
    summary = write_pack(pack, data, resolution=32, sparse_per_pair=3, progress=False)
    assert summary["sparse_per_pair"] == 3 and pack_info(pack)["sparse_per_pair"] == 3
    train = PackedPairs(pack, "train", augment=None, sparse_share=1.0)
    assert train.sparse.shape == (8, 3, 1, 32, 32) and train.sparse.dtype == torch.uint8
    # Pair 2's second drawing is sparse_drawing of its 32-px photo with that pair's seed (stored as 1 bit).
    photo = square_crop_resize(load_image(data / "train" / "photos" / "2.png").convert("RGB"), 32)
    expected = torch.from_numpy(np.array(sparse_drawing(photo, seed=sparse_seed(2, 1)))) >= 128
    assert torch.equal(train.sparse[2, 1, 0] >= 128, expected)
    assert (train.sparse < 128).any(dim=(2, 3, 4)).all()  # every drawing has ink
    assert not torch.equal(train.sparse[:, 0], train.sparse[:, 1])  # another seed, another drawing
    # share 1: every sketch is one of the pair's own drawings; share 0 (default): none is.
    for batch in train.batches(epoch=0, batch_size=4):
        for i, idx in enumerate(batch["index"].tolist()):
            assert any(torch.equal(batch["sketch"][i], uint8_to_tensor(train.sparse[idx, k])) for k in range(3))
    plain = PackedPairs(pack, "train", augment=None)
    assert plain.sparse is None
    mixed = PackedPairs(pack, "train", augment=None, sparse_share=1 / 3)
    swapped = [not torch.equal(b["sketch"][i], uint8_to_tensor(plain.sketches[b["index"][i]]))
               for e in range(4) for b in mixed.batches(epoch=e, batch_size=4) for i in range(len(b["index"]))]
    assert 0 < sum(swapped) < len(swapped)  # about a third of the pairs: the top third of the coin draws
    coins = torch.cat([b["coin"] for e in range(4) for b in mixed.batches(epoch=e, batch_size=4)])
    assert swapped == (coins >= 2 / 3).tolist()


def test_jpeg_packs_load_as_webp_ones_do(tmp_path):
    data = _styled_data(tmp_path / "data")
    write_pack(tmp_path / "w.safetensors", data, resolution=32, progress=False)
    write_pack(tmp_path / "j.safetensors", data, resolution=32, image_format="jpeg", quality=95, progress=False)
    webp, jpeg = (PackedPairs(tmp_path / f"{n}.safetensors", augment=None) for n in ("w", "j"))
    assert webp.photos.shape == jpeg.photos.shape == (6, 3, 32, 32)
    assert (webp.photos.float() - jpeg.photos.float()).abs().mean() < 12  # the same pictures, two codecs
    with pytest.raises(ValueError, match="WEBP, JPEG"):
        write_pack(tmp_path / "x.safetensors", data, image_format="gif")


def test_a_pack_without_drawings_says_how_to_make_them(tmp_path):
    data = _styled_data(tmp_path / "data")
    write_pack(tmp_path / "p.safetensors", data, resolution=32, progress=False)
    with pytest.raises(ValueError, match="--sparse_per_pair"):
        PackedPairs(tmp_path / "p.safetensors", "train", sparse_share=1.0)


def test_bad_pack_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a pack")
    with pytest.raises(ValueError, match="not a readable photosketch pack"):
        pack_info(bad)
    with pytest.raises(FileNotFoundError):
        PackedPairs(tmp_path / "missing.safetensors")
