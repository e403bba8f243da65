import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from photosketch.evaluate import main
from photosketch.models import CompactGenerator

from conftest import make_face

KEYS = {"model", "direction", "data_dir", "split", "n", "means", "per_image", "protocol", "timing"}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small float64 work, shared CI cores


@pytest.fixture
def paired(tmp_path):
    """4 photo / sketch pairs of 48x40 under DIR/test/{photos,sketches}."""
    root = tmp_path / "data"
    for sub in ("photos", "sketches"):
        (root / "test" / sub).mkdir(parents=True)
    for i in range(4):
        photo = make_face((48, 40), seed=i)
        photo.save(root / "test" / "photos" / f"{i:02d}.png")
        sketch = ImageOps.autocontrast(ImageOps.invert(photo.convert("L")))  # any gray image will do
        sketch.save(root / "test" / "sketches" / f"{i:02d}.jpg")
    return root


def _results(out_dir):
    return json.loads((out_dir / "results.json").read_text())


def test_classical_photo2sketch(paired, tmp_path):
    pytest.importorskip("photosketch.classical")
    out = tmp_path / "out"
    rc = main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", "xdog",
               "--output_dir", str(out), "--size", "64", "--quiet", "--num_samples", "2"])
    assert rc == 0
    r = _results(out)
    assert KEYS <= set(r)
    assert r["n"] == 4 and len(r["per_image"]) == 4 and r["split"] == "test"
    for key in ("fsim", "ssim", "l1"):
        assert -1.0 <= r["means"][key] <= 1.0  # SSIM can be negative; FSIM and L1 are in [0, 1]
        assert r["means"][key] == pytest.approx(np.mean([row[key] for row in r["per_image"]]))
    assert not {"lpips", "dists", "fid"} & set(r["means"])  # not computed: no placeholder strings among the numbers
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height > 2 * 40  # two rows


def test_generator_folder_both_directions(paired, tmp_path):
    torch.manual_seed(0)
    p2s = tmp_path / "p2s"
    CompactGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32).save_pretrained(p2s)
    out = tmp_path / "out_p2s"
    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(p2s),
                 "--output_dir", str(out), "--quiet", "--limit", "3"]) == 0
    r = _results(out)
    assert r["n"] == 3 and r["size"] == 32 and r["model_class"] == "CompactGenerator"
    assert (out / "contact_sheet.png").is_file()

    s2p = tmp_path / "s2p"
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(s2p)
    styles = tmp_path / "styles.csv"
    styles.write_text("name,style\n00.jpg,1\n01,1\n02,2\n")
    out = tmp_path / "out_s2p"
    assert main(["--data_dir", str(paired), "--direction", "sketch2photo", "--model", str(s2p),
                 "--output_dir", str(out), "--quiet", "--styles_csv", str(styles)]) == 0
    r = _results(out)
    assert r["n"] == 4 and r["input_channels"] == 1
    assert 0.0 <= r["means"]["fsimc"] <= 1.0
    by_style = r["means_by_style"]
    assert {k: v["n"] for k, v in by_style.items()} == {"1": 2, "2": 1, "unlisted": 1}
    assert set(by_style["1"]) >= {"fsim", "ssim", "l1", "fsimc"}


def test_errors_exit_2_without_traceback(paired, tmp_path, capsys):
    assert main(["--data_dir", str(tmp_path / "missing"), "--direction", "photo2sketch", "--model", "xdog"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("photosketch.evaluate: error:") and "Traceback" not in err and err.count("\n") == 1

    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(tmp_path / "nope"),
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err

    empty = tmp_path / "empty_model"
    empty.mkdir()
    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(empty),
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


def test_classical_cannot_do_sketch2photo(paired, tmp_path, capsys):
    pytest.importorskip("photosketch.classical")
    assert main(["--data_dir", str(paired), "--direction", "sketch2photo", "--model", "pencil",
                 "--output_dir", str(tmp_path / "o")]) == 2
    assert "sketch2photo" in capsys.readouterr().err


def test_sketch2photo_on_line_drawings_of_the_photos(paired, tmp_path, capsys):
    from photosketch.classical import line_drawing

    s2p = tmp_path / "s2p"
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(s2p)
    out = tmp_path / "out_lines"
    assert main(["--data_dir", str(paired), "--direction", "sketch2photo", "--model", str(s2p),
                 "--sketch_source", "lines", "--output_dir", str(out), "--quiet", "--num_samples", "1"]) == 0
    r = _results(out)
    assert r["sketch_source"] == "lines" and r["n"] == 4
    assert all(row["input"].startswith("line_drawing(") for row in r["per_image"])
    assert "--sketch_source lines" in r["command"]
    # the contact sheet's input cell is the line drawing of the ground-truth photo, not the drawn sketch
    assert np.asarray(line_drawing(Image.open(paired / "test" / "photos" / "00.png"))).mean() > 200

    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", "xdog",
                 "--sketch_source", "lines", "--output_dir", str(tmp_path / "o")]) == 2
    assert "sketch2photo" in capsys.readouterr().err
    # sparse: a few-stroke drawing per pair, seeded by its index, the same for every run and model
    for run in ("sparse_a", "sparse_b"):
        assert main(["--data_dir", str(paired), "--direction", "sketch2photo", "--model", str(s2p),
                     "--sketch_source", "sparse", "--output_dir", str(tmp_path / run), "--quiet", "--num_samples", "1"]) == 0
    a, b = _results(tmp_path / "sparse_a"), _results(tmp_path / "sparse_b")
    assert [row["input"] for row in a["per_image"]][0].startswith("sparse_drawing(") and a["sketch_source"] == "sparse"
    assert [row["fsim"] for row in a["per_image"]] == [row["fsim"] for row in b["per_image"]]


def test_floor_row_and_styled_models(paired, tmp_path, capsys):
    # The do-nothing floor is computed with every model; a styled model draws each image in the
    # style of its own ground truth (styles.csv beside the split), or in the one --style names.
    (paired / "test" / "styles.csv").write_text("name,style\n00,a\n01,b\n02,a\n03,b\n")
    torch.manual_seed(0)
    model = CompactGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32, styles=["a", "b"])
    model.save_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(tmp_path / "m"),
                 "--output_dir", str(out), "--quiet"]) == 0
    r = _results(out)
    assert r["style"] == "auto" and [row["model_style"] for row in r["per_image"]] == ["a", "b", "a", "b"]
    assert set(r["means_by_style"]) == {"a", "b"} and "floor" in r["means_by_style"]["a"]
    assert 0 < r["floor"]["fsim"] <= 1 and "do nothing" in capsys.readouterr().out
    # The floor is what it says: the grayscale input scored as the output.
    from photosketch import metrics

    photo = Image.open(paired / "test" / "photos" / "00.png").convert("L")
    gt = Image.open(paired / "test" / "sketches" / "00.jpg").convert("L")
    assert r["per_image"][0]["floor"]["fsim"] == pytest.approx(metrics.fsim(photo.resize(gt.size, Image.BICUBIC), gt))

    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(tmp_path / "m"),
                 "--output_dir", str(out), "--quiet", "--style", "b"]) == 0
    assert {row["model_style"] for row in _results(out)["per_image"]} == {"b"}
    assert main(["--data_dir", str(paired), "--direction", "photo2sketch", "--model", str(tmp_path / "m"),
                 "--output_dir", str(out), "--quiet", "--style", "c"]) == 2
    assert "unknown style 'c'" in capsys.readouterr().err


def test_through_the_pipeline_with_alignment(paired, tmp_path, capsys):
    """--align / --background / --upsample score the pipeline's preprocessing; off is the plain protocol."""
    out_plain, out_pipe = tmp_path / "plain", tmp_path / "pipe"
    common = ["--data_dir", str(paired), "--direction", "photo2sketch", "--model", "xdog", "--size", "32", "--quiet"]
    assert main([*common, "--output_dir", str(out_plain)]) == 0
    assert main([*common, "--output_dir", str(out_pipe), "--align", "--background", "--upsample", "guided"]) == 0
    plain, piped = _results(out_plain), _results(out_pipe)
    assert plain["pipeline"] is None
    assert piped["pipeline"] == {"align": True, "background": True, "upsample": "guided"}
    assert piped["n"] == 4 and all(0.0 <= row["fsim"] <= 1.0 for row in piped["per_image"])
    # 48 x 40 pairs from a 32-px working size: the guided upsampling changes the outputs.
    assert [row["l1"] for row in piped["per_image"]] != [row["l1"] for row in plain["per_image"]]
    # sketch2photo: the even backdrop, through the pipeline without framing (test sketches fill their page).
    torch.manual_seed(0)
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(tmp_path / "s2p")
    out_s2p = tmp_path / "s2p_out"
    assert main(["--data_dir", str(paired), "--direction", "sketch2photo", "--model", str(tmp_path / "s2p"), "--quiet",
                 "--background", "--output_dir", str(out_s2p)]) == 0
    assert _results(out_s2p)["pipeline"] == {"align": False, "background": True, "upsample": "bicubic", "frame": False}


def test_max_size_runs_larger_inputs_at_their_own_size(paired, tmp_path, capsys):
    """--max_size: a 48 x 40 photo runs at 40 px instead of --size 32 (as PhotoSketchPipeline's max_size)."""
    common = ["--data_dir", str(paired), "--direction", "photo2sketch", "--model", "xdog", "--size", "32", "--quiet"]
    assert main([*common, "--output_dir", str(tmp_path / "fixed")]) == 0
    assert main([*common, "--output_dir", str(tmp_path / "own"), "--max_size", "64"]) == 0
    fixed, own = _results(tmp_path / "fixed"), _results(tmp_path / "own")
    assert fixed["max_size"] is None and own["max_size"] == 64
    assert [row["l1"] for row in own["per_image"]] != [row["l1"] for row in fixed["per_image"]]
    # Capped at the input's own size: --max_size 40 and 64 run the same 40-px images.
    assert main([*common, "--output_dir", str(tmp_path / "cap"), "--max_size", "40"]) == 0
    assert [row["l1"] for row in _results(tmp_path / "cap")["per_image"]] == [row["l1"] for row in own["per_image"]]
    assert main([*common, "--max_size", "16"]) == 2
    assert "--max_size must be at least --size" in capsys.readouterr().err
