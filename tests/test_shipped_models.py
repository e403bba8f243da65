"""Regression test for the models shipped in weights/: a broken export, a changed preprocessing
step or a silently different architecture changes these outputs and fails here.

The references in tests/data/ were made by the same code; after an intended change (retrained
weights), regenerate them with

    PHOTOSKETCH_UPDATE_REFERENCES=1 python -m pytest tests/test_shipped_models.py
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app_browser
from app_browser import BROWSER_MODEL
from photosketch import PhotoSketchPipeline
from photosketch.classical import line_drawing
from photosketch.hub import MODELS, WEIGHTS_DIR, default_model
from photosketch.pipeline import default_style

from conftest import make_face

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = sorted(name for name, spec in MODELS.items() if spec.repo_id)
UPDATE = os.environ.get("PHOTOSKETCH_UPDATE_REFERENCES") == "1"


def fixed_input(name: str) -> Image.Image:
    photo = make_face((160, 200), seed=7)
    return photo if MODELS[name].direction == "photo2sketch" else line_drawing(photo)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_folder_is_in_exact_hub_layout(name):
    folder = WEIGHTS_DIR / name
    # The model the app runs in the browser also ships its ONNX export (scripts/ship_model.py --onnx).
    onnx = ["model.onnx"] if name == BROWSER_MODEL else []
    assert sorted(p.name for p in folder.iterdir()) == sorted(["README.md", "config.json", "model.safetensors", *onnx])
    config = json.loads((folder / "config.json").read_text())
    assert config["_class_name"] in {"ResnetGenerator", "UnetGenerator", "CompactGenerator"}
    card = (folder / "README.md").read_text()
    for needed in ("library_name: photosketch", "FSIM", "FS2K", "CUFS", "non-commercial", "```bash"):
        assert needed in card, f"{name} model card lacks {needed!r}"
    assert (folder / "model.safetensors").stat().st_size < 20 * 2**20


@pytest.mark.parametrize("backend", ["auto", "torch"])  # auto: ONNX Runtime when installed
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_output_matches_reference(name, backend):
    # The model's own output (whole image, plain resizes): alignment, background whitening and guided
    # upsampling are tested in test_pipeline.
    pipe = PhotoSketchPipeline.from_pretrained(name, num_threads=1, backend=backend, align=False, background=False,
                                               upsample="bicubic")
    out = np.asarray(pipe(fixed_input(name)), dtype=np.int16)
    ref_path = DATA / f"reference_{name}.png"
    if UPDATE and backend == "torch":
        DATA.mkdir(exist_ok=True)
        Image.fromarray(out.astype(np.uint8)).save(ref_path)
    ref = np.asarray(Image.open(ref_path), dtype=np.int16)
    assert out.shape == ref.shape
    diff = np.abs(out - ref)
    # float rounding across CPUs / thread counts moves a few pixels by a level or two, no more
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 4, (diff.mean(), diff.max())


def test_defaults_are_the_shipped_models():
    assert default_model("photo2sketch") == "photo2sketch"
    assert default_model("sketch2photo") == "sketch2photo"
    assert default_model("photo2sketch", fast=True) == "photo2sketch-fast"  # the live webcam stream


def test_shipped_onnx_is_the_shipped_model():
    """weights/photo2sketch-fast/model.onnx (what the browser runs) gives the safetensors model's sketch, within
    1/255, on a face at the working size, in the style the browser feeds it; it was exported from these weights,
    not from an older run."""
    import onnxruntime as ort
    import torch

    from photosketch.hub import load_model
    from photosketch.image import pil_to_tensor

    folder = WEIGHTS_DIR / BROWSER_MODEL
    model = load_model(BROWSER_MODEL).eval()
    size = model._hub_mixin_config["sample_size"]
    x = pil_to_tensor(fixed_input(BROWSER_MODEL).resize((size, size), Image.Resampling.LANCZOS))[None]
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    # A style-conditioned student's model.onnx also takes the style weights: the browser feeds the default style's.
    feeds = {"input": x.numpy()}
    if model.styles:
        feeds["style"] = np.asarray([app_browser.browser_config()["style_weights"]], dtype=np.float32)
    got = torch.from_numpy(session.run(None, feeds)[0])
    with torch.inference_mode():
        want = model(x, style=default_style(model.styles)) if model.styles else model(x)

    def levels(t):
        return t.clamp(-1, 1).add(1).mul(127.5).round().to(torch.int16)

    assert got.shape == want.shape == (1, 1, size, size)
    assert (levels(got) - levels(want)).abs().max() <= 1
    assert levels(want).float().std() > 5  # a sketch, not a blank
