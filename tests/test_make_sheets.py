"""scripts/make_drawing_sheet.py and the helpers the contact-sheet scripts share (scripts/make_style_sheet.py)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                                                   "OMP_NUM_THREADS": "2"})


def test_drawing_sheet_puts_each_example_drawing_through_each_model(tmp_path):
    done = run("make_drawing_sheet.py", "--models", "a=sketch2photo", "b=sketch2photo", "--output", tmp_path / "s.jpg",
               "--cell", "64")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 drawings x 2 models" in done.stderr
    sheet = Image.open(tmp_path / "s.jpg")
    assert sheet.height == 18 + 6 * 64 and sheet.width > 3 * 40  # a header, six rows, three columns
    # Two seeds: two more columns, the last model's photo with another skin tone and hair colour.
    done = run("make_drawing_sheet.py", "--models", "a=sketch2photo", "--seeds", "0", "1", "--output", tmp_path / "t.jpg",
               "--cell", "64")
    assert done.returncode == 0 and "6 drawings x 1 models + 2 seeds" in done.stderr, done.stderr[-2000:]
    assert Image.open(tmp_path / "t.jpg").width > Image.open(tmp_path / "s.jpg").width
    # --painted_background: one more column, the last model with the background it paints itself.
    done = run("make_drawing_sheet.py", "--models", "a=sketch2photo", "--painted_background", "--output", tmp_path / "u.jpg",
               "--cell", "64")
    assert done.returncode == 0, done.stderr[-2000:]
    cells = [Image.open(tmp_path / n).width for n in ("u.jpg", "s.jpg")]
    assert cells[0] == cells[1]  # drawing + painted + default, as wide as drawing + two models


def test_sheets_refuse_a_missing_portrait_folder_in_one_line(tmp_path):
    done = run("make_style_sheet.py", "--portraits", tmp_path / "none", "--output", tmp_path / "s.jpg")
    assert done.returncode == 1 and done.stderr.strip() == f"{tmp_path / 'none'}: no such folder"


def test_style_sheet_with_named_styles_and_the_fixed_size_columns(tmp_path):
    from conftest import make_face

    (tmp_path / "portraits").mkdir()
    make_face((400, 320)).save(tmp_path / "portraits" / "face.png")
    done = run("make_style_sheet.py", "--portraits", tmp_path / "portraits", "--output", tmp_path / "s.jpg", "--cell", "64",
               "--styles", "fs2k-2", "--fixed_size")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 portraits x 3 styles" in done.stderr  # pencil, fs2k-2, fs2k-2 at 256 px only; the face and its B&W copy
    assert Image.open(tmp_path / "s.jpg").height == 18 + 2 * 64
    done = run("make_style_sheet.py", "--portraits", tmp_path / "portraits", "--output", tmp_path / "t.jpg", "--styles", "nope")
    assert done.returncode == 1 and done.stderr.strip().startswith("--styles: ") and "nope" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_style_sheet_compare_columns_take_a_style(tmp_path):
    from conftest import make_face

    (tmp_path / "portraits").mkdir()
    make_face((400, 320)).save(tmp_path / "portraits" / "face.png")
    base = ["--portraits", tmp_path / "portraits", "--cell", "64", "--styles", "fs2k-2", "--no-grayscale_copy"]
    done = run("make_style_sheet.py", *base, "--output", tmp_path / "s.jpg", "--compare", "same=photo2sketch@fs2k-2",
               "other=photo2sketch@cufs")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 portraits x 4 styles" in done.stderr  # pencil, fs2k-2, and the two compare columns
    sheet = np.asarray(Image.open(tmp_path / "s.jpg").convert("L"), dtype=float)[18:]
    w = sheet.shape[1] // 5  # five columns of one width: every cell is the face crop's shape
    model, same, other = (sheet[:, c * w:(c + 1) * w] for c in (2, 3, 4))
    assert np.abs(model - same).mean() < 0.5 * np.abs(same - other).mean()  # each column drew its own style
    done = run("make_style_sheet.py", *base, "--output", tmp_path / "t.jpg", "--compare", "b=photo2sketch@nope")
    assert done.returncode == 1 and done.stderr.strip().startswith("--compare b=photo2sketch@nope: "), done.stderr[-500:]
    assert len(done.stderr.strip().splitlines()) == 1
