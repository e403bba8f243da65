"""scripts/prepare_data.py on a tiny fake FS2K + CUFS layout: splits, styles.csv, unreadable files."""

import csv
import logging

from conftest import load_script, make_face

prepare = load_script("scripts/prepare_data.py")


def _fake_shared(root):
    fs2k, cufs = root / "fs2k", root / "cufs"
    rows = [["split", "id", "photo", "sketch", "style"]]
    for i in range(6):
        split = "train" if i < 4 else "test"
        photo, sketch = f"photo/photo1/image{i:04d}.jpg", f"sketch/sketch1/sketch{i:04d}.jpg"
        for rel in (photo, sketch):
            (fs2k / rel).parent.mkdir(parents=True, exist_ok=True)
            make_face((40, 48), seed=i).save(fs2k / rel, format="JPEG")
        rows.append([split, f"photo1_image{i:04d}", photo, sketch, str(i % 3)])
    (fs2k / "sketch/sketch1/sketch0001.jpg").write_bytes(b"not a jpeg")  # one unreadable file
    with open(fs2k / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    rows = [["split", "subset", "photo", "sketch"]]
    for i, (split, sub) in enumerate([("train", "CUHK_student_train"), ("train", "AR"), ("test", "CUHK_student_test")]):
        photo, sketch = f"{sub}/photos/{i:02d}.png", f"{sub}/sketches/{i:02d}.png"
        for rel in (photo, sketch):
            (cufs / rel).parent.mkdir(parents=True, exist_ok=True)
            make_face((40, 50), seed=10 + i).save(cufs / rel)
        rows.append([split, sub.split("_")[0], photo, sketch])
    with open(cufs / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _styles(path):
    with open(path, newline="") as f:
        return {r["name"]: r["style"] for r in csv.DictReader(f)}


def test_layout_styles_and_skipped_pairs(tmp_path, caplog):
    _fake_shared(tmp_path / "shared")
    out = tmp_path / "out"
    caplog.set_level(logging.INFO, logger="prepare_data")
    assert prepare.main(prepare.parse_args(["--data_dir", str(tmp_path / "shared"), "--output_dir", str(out),
                                            "--val_fraction", "0.25"])) == 0
    # Counts say what was found and what was skipped, not only what was written.
    assert "fs2k: 6 pairs found, 5 written" in caplog.text and "1 skipped" in caplog.text
    assert "cufs: 3 pairs found, 3 written" in caplog.text
    # Every split folder has its styles.csv: FS2K style 0/1/2 -> fs2k-1/2/3, CUFS -> cufs.
    test_styles = _styles(out / "fs2k" / "test" / "styles.csv")
    assert test_styles == {"photo1_image0004": "fs2k-2", "photo1_image0005": "fs2k-3"}
    assert _styles(out / "fs2k" / "test_styles.csv") == test_styles
    assert set(_styles(out / "cufs" / "test" / "styles.csv").values()) == {"cufs"}
    combined = {**_styles(out / "combined" / "train" / "styles.csv"), **_styles(out / "combined" / "val" / "styles.csv")}
    assert combined["fs2k_photo1_image0000"] == "fs2k-1" and combined["cufs_AR_01"] == "cufs"
    # The test splits stay out of combined/ (training and validation only).
    assert not (out / "combined" / "test").exists()
    assert all(not name.endswith(("0004", "0005")) for name in combined)
