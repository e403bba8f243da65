import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_face
from PIL import Image

from photosketch.cli import main
from photosketch.models import CompactGenerator

ROOT = Path(__file__).resolve().parent.parent


def run(*args, tmp_path):
    """``python -m photosketch ...`` in a subprocess, offline, with empty weights/ and HF cache."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "PHOTOSKETCH_WEIGHTS_DIR": str(tmp_path / "no-weights"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    return subprocess.run([sys.executable, "-m", "photosketch", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_face((40, 32)).save(folder / "a.jpg")
    make_face((24, 24), seed=1).convert("L").save(folder / "b.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image, not picked up")
    return folder


def test_to_sketch_folder_with_a_corrupt_file(inputs, tmp_path):
    out = tmp_path / "out"
    r = run("to-sketch", inputs, "-o", out, "--model", "pencil", "--strength", "0.7", tmp_path=tmp_path)
    assert r.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").size == (40, 32) and Image.open(out / "a.png").mode == "L"
    lines = [line for line in r.stderr.splitlines() if line.startswith("photosketch:")]
    errors = [line for line in lines if "no face found" not in line]  # the tiny synthetic faces: notices
    assert len(errors) == 1 and "broken.png" in errors[0]
    assert len(lines) <= 3 and "Traceback" not in r.stderr


def test_to_photo_without_a_model_exits_2(inputs, tmp_path):
    r = run("to-photo", inputs / "b.png", "-o", tmp_path / "out", tmp_path=tmp_path)
    assert r.returncode == 2
    assert "no sketch→photo model is installed" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_to_photo_with_a_model_folder(inputs, tmp_path):
    model = tmp_path / "s2p"
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(model)
    out = tmp_path / "photos"
    r = run("to-photo", inputs / "b.png", inputs / "a.jpg", "-o", out, "--model", model, "--size", "32",
            "--threads", "1", "--no-face-crop", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert Image.open(out / "b.png").mode == "RGB" and Image.open(out / "b.png").size == (24, 24)
    assert Image.open(out / "a.png").size == (40, 32)
    # --seed: another face (skin tone, hair colour) for the same sketch.
    r = run("to-photo", inputs / "b.png", "-o", tmp_path / "seeded", "--model", model, "--size", "32", "--seed", "5",
            tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr and (tmp_path / "seeded" / "b.png").is_file()
    # --frame (default on) centres and enlarges a small drawing first; --no-frame paints it as it is.
    from test_compose import _drawn_face

    _drawn_face(box=(5, 8, 45, 58)).save(inputs / "small.png")
    for flag in ("--frame", "--no-frame"):
        r = run("to-photo", inputs / "small.png", "-o", tmp_path / flag, "--model", model, "--size", "32", flag,
                tmp_path=tmp_path)
        assert r.returncode == 0, r.stderr
    framed, plain = (np.asarray(Image.open(tmp_path / f / "small.png")) for f in ("--frame", "--no-frame"))
    assert framed.shape == plain.shape == (150, 120, 3) and not np.array_equal(framed, plain)


def test_models_lists_what_is_usable(tmp_path):
    r = run("models", tmp_path=tmp_path)
    assert r.returncode == 0
    assert "xdog" in r.stdout and "available" in r.stdout and "(default)" in r.stdout
    line = next(line for line in r.stdout.splitlines() if line.strip().startswith("sketch2photo "))
    assert "not installed" in line


# In-process checks of argument handling (fast, no subprocess).


def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_face().save(tmp_path / "x.png")
    assert main(["to-sketch", "missing.jpg", "-o", "out"]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    assert main(["to-sketch", "x.png", "-o", "out", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and len(err.strip().splitlines()) == 1
    assert main(["to-sketch", "x.png", "-o", "out", "--strength", "3"]) == 2
    assert main(["to-photo", "x.png", "-o", "out", "--model", "xdog"]) == 2
    assert "is a photo2sketch model" in capsys.readouterr().err
    assert main(["-q", "to-sketch", "x.png", "x.png", "-o", "out", "--face-crop", "-v"]) == 0
    assert (tmp_path / "out" / "x-1.png").is_file()  # same stem twice: no overwrite
    assert (tmp_path / "out" / "x.png").is_file()


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_backend_choice_gives_the_same_sketch(inputs, tmp_path, backend):
    from photosketch.runtime import onnxruntime_available

    if backend == "onnxruntime" and not onnxruntime_available():
        pytest.skip("needs onnxruntime")
    model = tmp_path / "p2s"
    CompactGenerator(ngf=8, n_blocks=1, norm="batch", sample_size=32).save_pretrained(model)
    assert main(["to-sketch", str(inputs / "a.jpg"), "-o", str(tmp_path / backend), "--model", str(model),
                 "--backend", backend, "-q"]) == 0
    assert main(["to-sketch", str(inputs / "a.jpg"), "-o", str(tmp_path / "ref"), "--model", str(model),
                 "--backend", "torch", "-q"]) == 0
    import numpy as np

    a = np.asarray(Image.open(tmp_path / backend / "a.png"), np.int16)
    b = np.asarray(Image.open(tmp_path / "ref" / "a.png"), np.int16)
    assert np.abs(a - b).max() <= 1


def test_onnxruntime_backend_without_the_package_is_a_one_line_error(inputs, tmp_path, capsys, monkeypatch):
    from photosketch import runtime

    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    model = tmp_path / "p2s"
    CompactGenerator(ngf=8, n_blocks=1, sample_size=32).save_pretrained(model)
    assert main(["to-sketch", str(inputs / "a.jpg"), "-o", str(tmp_path / "out"), "--model", str(model),
                 "--backend", "onnxruntime", "-q"]) == 2
    err = capsys.readouterr().err
    assert "pip install onnxruntime onnx" in err and "Traceback" not in err


def test_align_background_and_faces_flags(tmp_path, capsys, monkeypatch):
    from photosketch import pipeline

    seen = {}
    real = pipeline.PhotoSketchPipeline.from_pretrained

    def spy(*args, **kwargs):
        seen.update({k: kwargs[k] for k in ("align", "background", "faces")})
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.PhotoSketchPipeline, "from_pretrained", spy)
    monkeypatch.chdir(tmp_path)
    make_face().save(tmp_path / "x.png")
    assert main(["to-sketch", "x.png", "-o", "out", "--model", "pencil", "-q"]) == 0
    assert seen == {"align": None, "background": None, "faces": "each"}  # None: the pipeline's default (on)
    assert main(["to-sketch", "x.png", "-o", "out", "--model", "pencil", "--no-align", "--no-background",
                 "--faces", "largest", "-q"]) == 0
    assert seen == {"align": False, "background": False, "faces": "largest"}
    with pytest.raises(SystemExit):
        main(["to-sketch", "x.png", "-o", "out", "--faces", "all"])
    assert "invalid choice: 'all'" in capsys.readouterr().err
    # to-photo: --no-background keeps the background the model paints (default: one even colour)
    tiny = tmp_path / "s2p"
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(tiny)
    assert main(["to-photo", "x.png", "-o", "out", "--model", str(tiny), "--no-background", "-q"]) == 0
    assert seen["background"] is False


def test_max_size_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_face((400, 300)).save(tmp_path / "x.png")
    assert main(["to-sketch", "x.png", "-o", "fixed", "--model", "pencil", "--size", "64", "--max-size", "64", "-q"]) == 0
    assert main(["to-sketch", "x.png", "-o", "own", "--model", "pencil", "--size", "64", "--max-size", "300", "-q",
                 "--no-align", "--no-background"]) == 0
    fixed, own = (Image.open(tmp_path / d / "x.png") for d in ("fixed", "own"))
    assert fixed.size == own.size == (400, 300)
    assert main(["to-sketch", "x.png", "-o", "bad", "--size", "64", "--max-size", "10", "--model", "pencil"]) == 2
    err = capsys.readouterr().err
    assert "--max-size: max_size must be at least the working size (64); got 10" in err and len(err.strip().splitlines()) == 1


def test_style_flag(inputs, tmp_path, capsys):
    import numpy as np
    import torch

    model = CompactGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32, styles=["a", "b"])
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 1.0)
    model.save_pretrained(tmp_path / "m")
    outs = {}
    for style in ("a", "b"):
        assert main(["to-sketch", str(inputs / "a.jpg"), "-o", str(tmp_path / style), "--model", str(tmp_path / "m"),
                     "--style", style, "--backend", "torch"]) == 0
        outs[style] = np.asarray(Image.open(tmp_path / style / "a.png"), dtype=int)
    assert np.abs(outs["a"] - outs["b"]).mean() > 1
    assert main(["to-sketch", str(inputs / "a.jpg"), "-o", str(tmp_path / "x"), "--model", str(tmp_path / "m"),
                 "--style", "c"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "photosketch: --style: unknown style 'c'; choose one of: a, b"
