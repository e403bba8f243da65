"""photosketch.data: pair finding and the training datasets, on tiny generated images."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photosketch.data import AugmentParams, PairedDataset, UnpairedDataset, augment_image, square_crop_resize
from tests.conftest import make_face


def make_pairs(root, n=4, size=40):
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / "sketches").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        face = make_face((size, size), seed=i)
        face.save(root / "photos" / f"{i}.png")
        Image.fromarray(255 - np.asarray(face.convert("L"))).save(root / "sketches" / f"{i}.jpg")
    return root


def test_paired_items_shapes_range_and_layouts(tmp_path):
    make_pairs(tmp_path / "flat")
    make_pairs(tmp_path / "split" / "train", n=3)
    make_pairs(tmp_path / "split" / "test", n=2)
    ds = PairedDataset(tmp_path / "flat", resolution=32)
    assert len(ds) == 4
    item = ds[0]
    assert item["photo"].shape == (3, 32, 32) and item["sketch"].shape == (1, 32, 32) and item["name"] == "0"
    for t in (item["photo"], item["sketch"]):
        assert t.dtype == torch.float32 and -1 <= t.min() and t.max() <= 1
    assert len(PairedDataset(tmp_path / "split", split="train", resolution=32)) == 3
    assert len(PairedDataset(tmp_path / "split", split="test", resolution=32)) == 2
    assert PairedDataset(tmp_path / "flat", resolution=32, sketch_channels=3)[0]["sketch"].shape == (3, 32, 32)


def test_augmentation_is_seeded_per_item_and_epoch(tmp_path):
    make_pairs(tmp_path)
    a, b = PairedDataset(tmp_path, resolution=32, seed=1), PairedDataset(tmp_path, resolution=32, seed=1)
    assert torch.equal(a[1]["photo"], b[1]["photo"]) and torch.equal(a[1]["sketch"], b[1]["sketch"])
    b.set_epoch(1)
    assert not torch.equal(a[1]["photo"], b[1]["photo"])
    plain = PairedDataset(tmp_path, resolution=32, augment=False)
    assert torch.equal(plain[2]["photo"], plain[2]["photo"])


def test_pair_gets_the_same_geometric_augmentation():
    # White background, so the photo's border fill and the sketch's white fill agree.
    rgb = np.full((40, 40, 3), 255, np.uint8)
    rgb[5:20, 8:14] = (10, 10, 10)  # an off-centre bar: a flip or crop mismatch moves it
    photo = Image.fromarray(rgb)
    sketch = photo.convert("L")
    params = AugmentParams(flip=True, angle=4.0, scale=0.9, cx=0.2, cy=0.8)
    p = np.asarray(augment_image(photo, params, 32, is_photo=True).convert("L"), dtype=float)
    s = np.asarray(augment_image(sketch, params, 32, is_photo=False), dtype=float)
    assert np.abs(p - s).max() <= 2
    unflipped = np.asarray(augment_image(sketch, AugmentParams(angle=4.0, scale=0.9, cx=0.2, cy=0.8), 32, is_photo=False), float)
    assert np.abs(unflipped - s).max() > 100


def test_bad_file_skipped_with_warning_and_all_bad_raises(tmp_path, caplog):
    make_pairs(tmp_path, n=3)
    # A truncated file has a valid header, so it is only found out when loaded, mid-epoch.
    good = (tmp_path / "photos" / "1.png").read_bytes()
    (tmp_path / "photos" / "1.png").write_bytes(good[: len(good) // 2])
    ds = PairedDataset(tmp_path, resolution=32)
    assert len(ds) == 3
    with caplog.at_level(logging.WARNING, logger="photosketch.data"):
        item = ds[1]
    assert item["name"] == "2"  # replaced by the next readable pair
    assert any("1.png" in r.getMessage() for r in caplog.records)
    for i in (0, 2):
        (tmp_path / "photos" / f"{i}.png").write_bytes(good[:60])
    with pytest.raises(RuntimeError, match="none of the 3"):
        PairedDataset(tmp_path, resolution=32)[0]
    for i in (0, 1, 2):  # not images at all: dropped when the dataset is built
        (tmp_path / "photos" / f"{i}.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="none of the 3 pairs could be read"):
        PairedDataset(tmp_path, resolution=32)


def test_empty_or_unmatched_folders_raise_clearly(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "sketches").mkdir()
    with pytest.raises(FileNotFoundError, match="both need some"):
        PairedDataset(tmp_path)
    make_face((16, 16)).save(tmp_path / "photos" / "a.png")
    make_face((16, 16)).save(tmp_path / "sketches" / "b.png")
    with pytest.raises(ValueError, match="no photo matches"):
        PairedDataset(tmp_path)
    with pytest.raises(ValueError, match="sketch_source"):
        PairedDataset(tmp_path, sketch_source="drawn")


def test_line_drawing_sources(tmp_path):
    pytest.importorskip("photosketch.classical")
    make_pairs(tmp_path, n=6)
    lines = PairedDataset(tmp_path, resolution=32, sketch_source="lines", augment=False)
    real = PairedDataset(tmp_path, resolution=32, sketch_source="real", augment=False)
    assert lines[0]["sketch"].shape == (1, 32, 32)
    assert not torch.equal(lines[0]["sketch"], real[0]["sketch"])
    mixed = PairedDataset(tmp_path, resolution=32, sketch_source="mixed", augment=False, seed=0)
    picks = ["lines" if torch.equal(mixed[i]["sketch"], lines[i]["sketch"]) else "real" for i in range(6)]
    assert picks == ["lines" if torch.equal(PairedDataset(tmp_path, resolution=32, sketch_source="mixed", augment=False,
                                                          seed=0)[i]["sketch"], lines[i]["sketch"]) else "real"
                     for i in range(6)]
    sparse = PairedDataset(tmp_path, resolution=32, sketch_source="sparse", augment=False)
    assert sparse[0]["sketch"].shape == (1, 32, 32) and not torch.equal(sparse[0]["sketch"], lines[0]["sketch"])
    assert torch.equal(sparse[0]["sketch"], PairedDataset(tmp_path, resolution=32, sketch_source="sparse", augment=False)[0]["sketch"])
    sparse.set_epoch(1)  # a new drawing of the same photo each epoch
    assert not torch.equal(sparse[0]["sketch"], PairedDataset(tmp_path, resolution=32, sketch_source="sparse", augment=False)[0]["sketch"])
    every = PairedDataset(tmp_path, resolution=32, sketch_source="all", augment=False, seed=0)
    kinds = {"real" if torch.equal(every[i]["sketch"], real[i]["sketch"]) else
             "lines" if torch.equal(every[i]["sketch"], lines[i]["sketch"]) else "sparse" for i in range(6)}
    assert len(kinds) >= 2
    # photos only: "lines" needs no sketches folder
    only = tmp_path / "only"
    (only / "photos").mkdir(parents=True)
    make_face((20, 20)).save(only / "photos" / "x.png")
    assert len(PairedDataset(only, resolution=32, sketch_source="lines")) == 1
    assert len(PairedDataset(only, resolution=32, sketch_source="sparse")) == 1


def test_unpaired_dataset_is_reproducible(tmp_path):
    make_pairs(tmp_path, n=3)
    for i in range(3, 5):
        make_face((40, 40), seed=i).convert("L").save(tmp_path / "sketches" / f"{i}.png")
    ds = UnpairedDataset(tmp_path / "photos", tmp_path / "sketches", resolution=32, seed=5)
    assert len(ds) == 5
    names = [ds[i]["sketch_name"] for i in range(5)]
    again = UnpairedDataset(tmp_path / "photos", tmp_path / "sketches", resolution=32, seed=5)
    assert names == [again[i]["sketch_name"] for i in range(5)]
    assert torch.equal(ds[4]["photo"], again[4]["photo"]) and ds[4]["photo_name"] == "1"
    with pytest.raises(FileNotFoundError):
        UnpairedDataset(tmp_path / "photos", tmp_path / "nope")


def test_face_crop_keeps_the_pair_aligned(tmp_path, monkeypatch):
    face = pytest.importorskip("photosketch.face")
    make_pairs(tmp_path, n=1, size=60)

    def fake_crop(img, detector=None, **kw):  # the detector itself is tested in test_face.py
        return img.crop((10, 5, 50, 55)), (10, 5, 40, 50)

    monkeypatch.setattr(face, "crop_face", fake_crop)
    monkeypatch.setattr(face, "FaceDetector", lambda: None)
    item = PairedDataset(tmp_path, resolution=32, augment=False, face_crop=True)[0]
    # unaugmented items are centre square crops (aspect kept), resized to the resolution
    photo = square_crop_resize(Image.open(tmp_path / "photos" / "0.png").crop((10, 5, 50, 55)), 32)
    sketch = square_crop_resize(Image.open(tmp_path / "sketches" / "0.jpg").crop((10, 5, 50, 55)), 32)
    from photosketch.image import pil_to_tensor

    assert torch.equal(item["photo"], pil_to_tensor(photo, 3))
    assert torch.allclose(item["sketch"], pil_to_tensor(sketch, 1))


def test_unreadable_files_are_counted_found_and_skipped(tmp_path, caplog):
    (tmp_path / "photos").mkdir()
    (tmp_path / "sketches").mkdir()
    for i in range(10):
        make_face((32, 32), seed=i).save(tmp_path / "photos" / f"{i}.png")
        make_face((32, 32), seed=i).convert("L").save(tmp_path / "sketches" / f"{i}.png")
    (tmp_path / "photos" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with caplog.at_level("WARNING", logger="photosketch.data"):
        ds = PairedDataset(tmp_path, resolution=32)
    assert len(ds) == 9 and "3" not in [p.stem for p, _ in ds.pairs]
    assert "10 pairs found, 1 skipped (unreadable: 3.png)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="photosketch.data"):
        unpaired = UnpairedDataset(tmp_path / "photos", tmp_path / "sketches", resolution=32)
    assert (len(unpaired.photos), len(unpaired.sketches)) == (9, 10)
    assert "10 photos found, 1 skipped (unreadable: 3.png)" in caplog.text


def test_a_folder_is_header_read_once_until_a_file_changes(tmp_path, monkeypatch):
    """A trainer lists its folder twice (argument check, training data): the second listing opens nothing."""
    import os

    from photosketch import data

    make_pairs(tmp_path, n=4)
    opened = []
    real_open = data.Image.open
    monkeypatch.setattr(data.Image, "open", lambda path, *a, **k: opened.append(Path(path).name) or real_open(path, *a, **k))
    PairedDataset(tmp_path, resolution=32)
    assert len(opened) == 8  # 4 photos + 4 sketches
    opened.clear()
    PairedDataset(tmp_path, resolution=32, augment=False)
    assert opened == []
    photo = next((tmp_path / "photos").iterdir())
    photo.write_bytes(b"not an image")  # replaced: read again, and now skipped
    os.utime(photo, ns=(1, 1))
    assert len(PairedDataset(tmp_path, resolution=32)) == 3 and opened == [photo.name]


def test_photo_jitter_and_grayscale_augmentation(tmp_path):
    make_pairs(tmp_path, n=8)
    gray = PairedDataset(tmp_path, resolution=32, grayscale_prob=1.0)
    for i in range(3):
        photo = gray[i]["photo"]
        assert torch.allclose(photo[0], photo[1], atol=1 / 127) and torch.allclose(photo[1], photo[2], atol=1 / 127)
    default = PairedDataset(tmp_path, resolution=32)
    # grayscale_prob is drawn last: the geometry of every item is the same as without it
    assert torch.equal(gray[0]["sketch"], default[0]["sketch"])
    assert not torch.allclose(default[0]["photo"][0], default[0]["photo"][1], atol=1 / 127)  # colour kept
    still = PairedDataset(tmp_path, resolution=32, photo_jitter=0.0)
    flat = PairedDataset(tmp_path, resolution=32, augment=False)
    assert torch.equal(still[0]["sketch"], default[0]["sketch"])
    params = AugmentParams.sample(np.random.default_rng(0), jitter=0.0)
    assert (params.brightness, params.contrast, params.saturation, params.grayscale) == (1.0, 1.0, 1.0, False)
    assert flat[0]["photo"].shape == still[0]["photo"].shape
    with pytest.raises(ValueError, match="grayscale_prob"):
        PairedDataset(tmp_path, resolution=32, grayscale_prob=2.0)


def test_train_crop_is_one_seeded_window_for_photo_and_sketch(tmp_path):
    make_pairs(tmp_path, size=48)
    full = PairedDataset(tmp_path, resolution=32, seed=4)
    crop = PairedDataset(tmp_path, resolution=32, seed=4, crop_size=16)
    windows = set()
    for i in range(len(full)):
        a, b = full[i], crop[i]
        assert b["photo"].shape == (3, 16, 16) and b["sketch"].shape == (1, 16, 16)
        # The window is cut from the same augmented full-size pair, at the same place in both images.
        hits = [(t, l) for t in range(17) for l in range(17)
                if torch.equal(a["photo"][:, t:t + 16, l:l + 16], b["photo"])
                and torch.equal(a["sketch"][:, t:t + 16, l:l + 16], b["sketch"])]
        assert hits
        windows.add(hits[0])
        assert torch.equal(crop[i]["photo"], b["photo"])  # seeded: the same window again
    assert len(windows) > 1  # not always the same corner
    # Without augmentation (validation) the whole square comes back; a crop larger than the image is refused.
    assert PairedDataset(tmp_path, resolution=32, augment=False, crop_size=16)[0]["photo"].shape == (3, 32, 32)
    assert UnpairedDataset(tmp_path / "photos", tmp_path / "sketches", resolution=32, crop_size=16)[0]["sketch"].shape == (1, 16, 16)
    with pytest.raises(ValueError, match="crop_size must be between 1 and the resolution"):
        PairedDataset(tmp_path, resolution=32, crop_size=64)
