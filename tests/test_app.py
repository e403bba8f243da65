"""The Space end to end over HTTP: launch build_demo() locally and call it with gradio_client."""

from __future__ import annotations

import io
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_face

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import app as space  # noqa: E402
from photosketch import hub  # noqa: E402
from photosketch.models import CompactGenerator  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A tiny sketch->photo model installed as a shipped folder (weights/sketch2photo layout)."""
    root = tmp_path_factory.mktemp("weights")
    CompactGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=1, sample_size=32).save_pretrained(root / "sketch2photo")
    return root


@pytest.fixture(scope="module")
def server(weights_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hub, "WEIGHTS_DIR", weights_dir)
        demo = space.build_demo()
        assert "sketch2photo" in demo.photosketch.sketch_models
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                                quiet=True, **space.launch_kwargs())
        client = Client(url, verbose=False, download_files=str(weights_dir.parent / "downloads"))
        try:
            yield demo, client
        finally:
            client.close()
            demo.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("uploads")
    out = {}
    make_face((96, 120)).save(out.setdefault("face", d / "face.png"))
    sketch = Image.new("L", (64, 80), 255)
    sketch.paste(0, (20, 20, 44, 24))  # a black stroke
    sketch.save(out.setdefault("sketch", d / "sketch.png"))
    Image.new("RGBA", (64, 64), (255, 255, 255, 0)).save(out.setdefault("blank", d / "blank.png"))
    (out.setdefault("text", d / "notes.png")).write_text("this is not an image\n")
    data = (d / "face.png").read_bytes()
    (out.setdefault("truncated", d / "truncated.png")).write_bytes(data[: len(data) // 2])
    Image.new("RGB", (1, 1), "white").save(out.setdefault("tiny", d / "tiny.png"))
    frames = [make_face((48, 48), seed=i) for i in range(3)]
    frames[0].save(out.setdefault("gif", d / "anim.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    # Wider than MAX_SIDE (cheap: one flat colour compresses to a few kB).
    Image.new("RGB", (5000, 600), (200, 180, 160)).save(out.setdefault("wide", d / "wide.png"))
    (out.setdefault("bomb", d / "bomb.png")).write_bytes(_png_header_only(12_000, 6_000))
    return out


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` (72 MP) but holds almost no data: a decompression bomb
    stand-in that must be refused from its header, never decoded."""
    buf = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    ihdr = raw[16:29]  # after the 8-byte signature, 4-byte length and b"IHDR"
    ihdr[0:8] = struct.pack(">II", width, height)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    return bytes(raw)


def _pad(path: Path | None) -> dict:
    """A Sketchpad value as an API caller sends it."""
    return {"background": None, "layers": [], "composite": handle_file(str(path)) if path else None}


def test_photo_to_sketch(server, files):
    demo, client = server
    out = client.predict(handle_file(str(files["face"])), "xdog", False, 0.7, api_name="/photo_to_sketch")
    sketch = Image.open(out)
    assert sketch.format == "PNG"
    assert sketch.size == (96, 120)  # no crop: the input's size
    arr = np.asarray(sketch.convert("L"))
    assert arr.min() < 128 < arr.max()  # lines on paper, not a blank page
    assert "xdog" in demo.photosketch.loaded


def test_sketch_to_photo(server, files):
    demo, client = server
    out = client.predict(_pad(files["sketch"]), "sketch2photo", api_name="/sketch_to_photo")
    photo = Image.open(out)
    assert photo.mode == "RGB" and photo.size == (64, 80)
    # loaded once, then reused
    client.predict(_pad(files["sketch"]), "sketch2photo", api_name="/sketch_to_photo")
    assert demo.photosketch.loaded.count("sketch2photo") == 1
    # The appended seed: another face's colouring, the same for the same seed.
    seeded = [np.asarray(Image.open(client.predict(_pad(files["sketch"]), "sketch2photo", 4, api_name="/sketch_to_photo")))
              for _ in range(2)]
    assert np.array_equal(*seeded) and seeded[0].shape == np.asarray(photo).shape


def test_sketch_to_photo_even_background_switch(server, files, monkeypatch):
    demo, client = server
    pipe = demo.photosketch.pipeline("sketch2photo", "sketch2photo")
    # A person mask of the left half: what is painted on the right is background.
    monkeypatch.setattr(pipe.aligner, "person_mask", lambda rgb: np.tile(np.arange(rgb.shape[1]) < rgb.shape[1] // 2,
                                                                          (rgb.shape[0], 1)).astype(np.float32))

    def right_half(*extra):
        out = np.asarray(Image.open(client.predict(_pad(files["sketch"]), "sketch2photo", *extra, api_name="/sketch_to_photo")))
        return out[:, 40:].reshape(-1, 3).astype(int)

    for even in (right_half(), right_half("", True), right_half("2", True)):  # on by default, with a seed too
        assert np.abs(even - even[0]).max() <= 1
    painted = right_half("", False)
    assert np.abs(painted - painted[0]).max() > 10  # the model's own background


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("text", "not an image"),
        ("truncated", "truncated"),
        ("tiny", "1×1"),
        ("bomb", "MP limit"),
    ],
)
def test_bad_photos_get_a_message(server, files, name, message):
    _, client = server
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(files[name])), "xdog", True, 0.5, api_name="/photo_to_sketch")


def test_missing_inputs(server, files):
    _, client = server
    with pytest.raises(AppError, match="Upload a photo"):
        client.predict(None, "xdog", True, 0.5, api_name="/photo_to_sketch")
    with pytest.raises(AppError, match="Draw something first"):
        client.predict(_pad(files["blank"]), "sketch2photo", api_name="/sketch_to_photo")
    with pytest.raises(AppError, match="Draw something first"):
        client.predict(_pad(None), "sketch2photo", api_name="/sketch_to_photo")
    with pytest.raises(AppError, match="could not be read|not an image"):
        client.predict(_pad(files["text"]), "sketch2photo", api_name="/sketch_to_photo")
    with pytest.raises(AppError, match="MP limit"):
        client.predict(_pad(files["bomb"]), "sketch2photo", api_name="/sketch_to_photo")
    # A truncated sketch is named as such, as on the photo tab (not just "could not be read").
    with pytest.raises(AppError, match="truncated"):
        client.predict(_pad(files["truncated"]), "sketch2photo", api_name="/sketch_to_photo")


def test_large_and_animated_uploads_are_handled(server, files):
    _, client = server
    wide = Image.open(client.predict(handle_file(str(files["wide"])), "xdog", False, 0.5, api_name="/photo_to_sketch"))
    assert max(wide.size) <= space.MAX_SIDE  # downscaled, with a warning
    anim = Image.open(client.predict(handle_file(str(files["gif"])), "xdog", False, 0.5, api_name="/photo_to_sketch"))
    assert anim.size == (48, 48)  # the first frame
    # the server is still answering after every kind of bad input
    ok = client.predict(handle_file(str(files["face"])), "pencil", True, 0.5, api_name="/photo_to_sketch")
    assert Image.open(ok).size[0] > 0


def test_without_a_sketch2photo_model_the_tab_says_so():
    def loader(name):
        raise hub.ModelNotAvailableError("no sketch→photo model is installed: train one")

    sketch_app = space.SketchApp(loader=loader)
    sketch_app.sketch_models = []
    demo = space.build_demo(sketch_app)
    notices = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "no-sketch-model"]
    assert notices and "No sketch → photo model is installed" in notices[0]["props"]["value"]
    with pytest.raises(gr.Error, match="no sketch→photo model is installed"):
        sketch_app.sketch_to_photo({"background": None, "layers": [], "composite": Image.new("L", (32, 32), 0)}, None)


def test_api_names_are_stable(server):
    _, client = server
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/photo_to_sketch", "/sketch_to_photo"} <= set(endpoints)
    assert [p["parameter_name"] for p in endpoints["/photo_to_sketch"]["parameters"]] == [
        "photo", "model", "face_crop", "strength", "style", "align", "background"]
    assert len(endpoints["/photo_to_sketch"]["returns"]) == 1  # just the sketch (the slider is UI-only)


def test_identical_concurrent_requests_all_get_whole_files(server, files):
    """Four users, one example: every answer must be a complete PNG (see app.save_png)."""
    _, client = server
    jobs = [client.submit(handle_file(str(files["face"])), "xdog", False, 0.5, api_name="/photo_to_sketch")
            for _ in range(4)]
    for job in jobs:
        with Image.open(job.result(timeout=120)) as img:
            img.load()  # raises on a truncated file
            assert img.size == (96, 120)


def test_save_png_is_content_addressed(tmp_path):
    img = make_face((32, 32))
    first, second = space.save_png(img, tmp_path), space.save_png(img.copy(), tmp_path)
    assert first == second and Image.open(first).size == (32, 32)
    assert np.array_equal(np.asarray(Image.open(first).convert(img.mode)), np.asarray(img))  # fast zlib, still lossless
    assert not list(tmp_path.rglob(".part-*"))  # no staging file left behind


def test_live_modes_skip_quietly():
    sketch_app = space.SketchApp(loader=lambda name: pytest.fail("no model should load"))
    sketch_app.sketch_models = ["sketch2photo"]
    blank = {"background": None, "layers": [], "composite": Image.new("L", (64, 64), 255)}
    # live mode off, or an empty canvas while drawing: no output change and no pop-up
    skip = type(gr.skip())
    assert all(isinstance(out, skip) for out in sketch_app.live_photo(blank, "sketch2photo", False))
    assert all(isinstance(out, skip) for out in sketch_app.live_photo(blank, "sketch2photo", True))
    assert sketch_app.live_sketch(None, "xdog", True, 0.5) == (None, None)


def test_live_drawing_runs_the_model_only_when_the_drawing_changes(tmp_path):
    runs = []

    class Pipe:
        def __call__(self, img, face_crop=False, seed=None, background=True):
            runs.append(img.size)
            return Image.new("RGB", img.size, (120, 90, 70))

    sketch_app = space.SketchApp(loader=lambda name: Pipe(), output_dir=tmp_path)
    sketch_app.sketch_models = ["sketch2photo"]
    drawing = Image.new("L", (64, 64), 255)
    drawing.paste(0, (10, 10, 30, 12))
    photo, key = sketch_app.live_photo({"composite": drawing}, "sketch2photo", True, None)
    assert Path(photo).is_file() and runs == [(64, 64)]
    again = sketch_app.live_photo({"composite": drawing.copy()}, "sketch2photo", True, key)
    assert all(isinstance(out, type(gr.skip())) for out in again) and len(runs) == 1  # unchanged: no run
    drawing.paste(0, (10, 40, 30, 42))
    _, new_key = sketch_app.live_photo({"composite": drawing}, "sketch2photo", True, key)
    assert new_key != key and len(runs) == 2
    # Switching "Even background" is a change too: the photo is painted again.
    _, off_key = sketch_app.live_photo({"composite": drawing}, "sketch2photo", True, new_key, None, False)
    assert off_key != new_key and len(runs) == 3


def test_another_face_steps_the_seed(tmp_path):
    seeds = []

    class Pipe:
        def __call__(self, img, face_crop=False, seed=None, background=True):
            seeds.append(seed)
            return Image.new("RGB", img.size, (120, 90, 70))

    sketch_app = space.SketchApp(loader=lambda name: Pipe(), output_dir=tmp_path)
    drawing = Image.new("L", (64, 64), 255)
    drawing.paste(0, (10, 10, 30, 12))
    photo, seed = sketch_app.another_face({"composite": drawing}, "sketch2photo", None)
    assert Path(photo).is_file() and seed == 0
    assert sketch_app.another_face({"composite": drawing}, "sketch2photo", "")[1] == 0  # the box, empty
    _, seed = sketch_app.another_face({"composite": drawing}, "sketch2photo", 6.0)  # gr.Number sends floats
    assert seed == 7 and seeds == [0, 0, 7]
    for bad in (-1, 2.5, "x", 2**32):
        with pytest.raises(gr.Error, match="seed"):
            sketch_app.sketch_to_photo({"composite": drawing}, "sketch2photo", bad)
    # The live update redraws when the seed changes, not only the drawing.
    _, key = sketch_app.live_photo({"composite": drawing}, "sketch2photo", True, None, 1)
    _, other = sketch_app.live_photo({"composite": drawing}, "sketch2photo", True, key, 2)
    assert other != key and seeds[-2:] == [1, 2]


def test_examples_are_shipped_and_licensed():
    faces, sketches = space._examples("face_*.png"), space._examples("sketch_*.png")
    sparse = space._examples("sparse_*.png")
    assert len(faces) >= 2 and len(sketches) >= 2 and len(sparse) >= 4  # few-stroke drawings, as people draw
    for path in faces + sketches + sparse:
        with Image.open(path) as img:
            assert min(img.size) >= space.MIN_SIDE
    assert "CC0" in (space.EXAMPLES_DIR / "README.md").read_text()


def _prop(demo, elem_id, key):
    return next(c["props"][key] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_live_stream_defaults_to_the_fast_student(weights):
    from tests.test_hub import save_tiny

    # Only the full model installed: the live stream uses it; with the student too, the student.
    save_tiny(weights / "photo2sketch", n_blocks=2)
    demo = space.build_demo(space.SketchApp(loader=lambda name: pytest.fail("no model should load")))
    assert _prop(demo, "live-model", "value") == "photo2sketch" == _prop(demo, "photo-model", "value")
    save_tiny(weights / "photo2sketch-fast", n_blocks=1)
    demo = space.build_demo(space.SketchApp(loader=lambda name: pytest.fail("no model should load")))
    assert _prop(demo, "live-model", "value") == "photo2sketch-fast"
    assert _prop(demo, "photo-model", "value") == "photo2sketch"  # uploads keep the full model
    stream = next(d for d in demo.config["dependencies"] if d.get("api_name") == "photo_to_sketch_live")
    assert stream["stream_every"] == pytest.approx(1 / space.LIVE_FPS)


@pytest.mark.parametrize("env, host", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")])
def test_python_app_py_listens_on_localhost_unless_told(monkeypatch, env, host):
    # `python app.py` as a user runs it, up to the launch call: only this machine by default, and
    # GRADIO_SERVER_NAME (which Spaces set) wins.
    import runpy

    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # leave this process's allocator alone
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    if env is None:
        monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    else:
        monkeypatch.setenv("GRADIO_SERVER_NAME", env)
    runpy.run_path(str(Path(space.__file__)), run_name="__main__")
    assert launched["server_name"] == host and launched["server_port"] == 7999


def test_style_picker_and_styled_sketches(weights, tmp_path):
    # A style-conditioned photo2sketch: the picker shows its styles with the preview files that
    # exist, uploads are drawn in the picked style, an unknown style is a message, not a traceback.
    import torch

    model = CompactGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32,
                             styles=["cufs", "fs2k-1", "fs2k-2"])
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 1.0)
    model.save_pretrained(weights / "photo2sketch")
    sketch_app = space.SketchApp(output_dir=tmp_path / "out")
    demo = space.build_demo(sketch_app)
    assert _prop(demo, "photo-style", "visible") is True and _prop(demo, "photo-style", "value") == "fs2k-2"
    assert [c[1] if isinstance(c, (list, tuple)) else c for c in _prop(demo, "photo-style", "choices")] == [
        "cufs", "fs2k-1", "fs2k-2"]
    photo = tmp_path / "face.png"
    make_face((64, 64)).save(photo)
    a, _ = sketch_app.photo_to_sketch(str(photo), "photo2sketch", False, 0.5, "cufs")
    b, _ = sketch_app.photo_to_sketch(str(photo), "photo2sketch", False, 0.5, "fs2k-1")
    assert np.abs(np.asarray(Image.open(a), dtype=int) - np.asarray(Image.open(b), dtype=int)).mean() > 1
    with pytest.raises(gr.Error, match="Unknown style 'oil'"):
        sketch_app.photo_to_sketch(str(photo), "photo2sketch", False, 0.5, "oil")
    # Classical styles have no style input: the picker hides, and a stale style value is ignored.
    radio, gallery = sketch_app.style_picker("pencil", "cufs")
    assert radio["visible"] is False and gallery["visible"] is False
    assert sketch_app.photo_to_sketch(str(photo), "pencil", False, 0.5, "cufs")[0]
    radio, _ = sketch_app.style_picker("photo2sketch", "fs2k-1")
    assert radio["visible"] is True and radio["value"] == "fs2k-1"


def test_align_and_background_checkboxes(server, tmp_path):
    """Both default on in the UI and the API (old 4- and 5-argument calls keep working); off is the
    whole-picture sketch, as before they existed. The live stream does not align (speed first)."""
    demo, client = server
    assert _prop(demo, "photo-align", "value") is True and _prop(demo, "photo-background", "value") is True
    photo = Path(__file__).resolve().parent.parent / "examples" / "photo_astronaut.jpg"
    old = Image.open(client.predict(handle_file(str(photo)), "xdog", False, 0.5, api_name="/photo_to_sketch"))
    on = Image.open(client.predict(handle_file(str(photo)), "xdog", False, 0.5, None, True, True,
                                   api_name="/photo_to_sketch"))
    off = Image.open(client.predict(handle_file(str(photo)), "xdog", False, 0.5, None, False, False,
                                    api_name="/photo_to_sketch"))
    assert old.size == on.size == off.size == Image.open(photo).size
    assert np.array_equal(np.asarray(old), np.asarray(on))  # omitted arguments take the checkboxes' defaults
    pipe = demo.photosketch.pipeline("xdog", "photo2sketch")
    expected = pipe(photo, align=False, background=False)
    assert np.array_equal(np.asarray(off), np.asarray(expected))
    if pipe.aligner.has_landmarks:  # white page around the person; the flag and the shuttle are not drawn
        corner = np.asarray(on)[:120, 380:]
        assert corner.min() == 255 and np.asarray(off)[:120, 380:].min() < 128


def test_sketchpad_is_not_realtime_and_live_drawing_polls(weights):
    """Issue 16.6: a change/input listener on the pad switches gradio's editor into realtime uploads (one per
    stroke, and a stale upload id sent after an example was picked); live drawing uses an inactive timer."""
    demo = space.build_demo(space.SketchApp(loader=lambda name: pytest.fail("no model should load")))
    pad = next(c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "sketchpad")
    triggers = [(t[0], t[1]) for d in demo.config["dependencies"] for t in d["targets"]]
    assert not [e for i, e in triggers if i == pad and e in ("change", "input")]
    timer = next(c for c in demo.config["components"] if c["type"] == "timer")
    assert timer["props"]["active"] is False and timer["props"]["value"] == space.LIVE_DRAW_EVERY
    tick = next(d for d in demo.config["dependencies"] if (timer["id"], "tick") in [tuple(t) for t in d["targets"]])
    assert tick["trigger_mode"] == "once" and pad in tick["inputs"]
    # "Another face" reads the pad and the seed box and writes the photo and the next seed.
    ids = {c.get("props", {}).get("elem_id"): c["id"] for c in demo.config["components"]}
    another = next(d for d in demo.config["dependencies"] if (ids["another-face"], "click") in [tuple(t) for t in d["targets"]])
    assert another["inputs"] == [pad, ids["sketch-model"], ids["sketch-seed"], ids["photo-even-background"]]
    assert another["outputs"] == [ids["photo-output"], ids["sketch-seed"]]
    assert {ids["sketch-seed"], ids["photo-even-background"]} <= set(tick["inputs"])  # live updates use both too


def test_generated_examples_are_up_to_date():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(space.ROOT / "scripts" / "make_examples.py"), "--check"],
                          capture_output=True, text=True, timeout=300, cwd=space.ROOT)
    assert done.returncode == 0, done.stderr


def test_live_alignment_tracks_the_face_between_frames(monkeypatch):
    from photosketch.align import FaceTrack

    sketch_app = space.SketchApp()
    pipe = sketch_app.pipeline("xdog", "photo2sketch")
    calls = []
    real_detect = pipe.aligner.detect
    monkeypatch.setattr(pipe.aligner, "detect", lambda img: calls.append(img.size) or real_detect(img))
    frame = np.asarray(Image.open(space.EXAMPLES_DIR / "photo_astronaut.jpg").convert("RGB"))
    track = None
    for _ in range(space.LIVE_TRACK_EVERY + 1):
        sketch, track = sketch_app.live_sketch(frame, "xdog", False, 0.5, True, track)
        assert sketch.mode == "L" and max(sketch.size) == space.LIVE_SIDE
    assert isinstance(track, FaceTrack) and track.faces  # the astronaut's face, found and kept
    assert len(calls) == 2  # found on the first frame, then again LIVE_TRACK_EVERY frames later
    # Alignment off: no track, as before.
    assert sketch_app.live_sketch(frame, "xdog", True, 0.5)[1] is None


class _Shapes(torch.nn.Module):
    """A "model" that records the height and width of each batch it runs and returns its input's red channel."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return x[:, :1]


def test_live_frames_run_at_the_model_size_and_uploads_at_their_own():
    from photosketch import PhotoSketchPipeline

    model = _Shapes()
    sketch_app = space.SketchApp(loader=lambda name: PhotoSketchPipeline(model, size=64, backend="torch", align=False,
                                                                         background=False))
    frame = np.full((480, 640, 3), 128, np.uint8)
    sketch_app.live_sketch(frame, "m", False, 0.5)  # shrunk to 320 x 240, run at the model's 64 px
    sketch_app._sketch(Image.fromarray(frame), "m", False, None, notify=False)  # an upload: up to 1.5 x 64
    assert model.seen == [(64, 85), (96, 128)]


def test_fit_shrinks_to_the_limits_and_fast_stays_antialiased():
    photo = make_face((640, 480))
    assert space.fit(photo, max_side=1024) is photo  # never enlarged
    fine, fast = space.fit(photo, max_side=320), space.fit(photo, max_side=320, fast=True)
    assert fine.size == fast.size == (320, 240)
    # A box-filtered reduce, not point sampling: a one-pixel checkerboard comes out flat grey, as with Lanczos.
    checker = Image.fromarray(((np.indices((480, 640)).sum(0) % 2) * 255).astype(np.uint8))
    flat = np.asarray(space.fit(checker, max_side=320, fast=True), np.float32)
    assert abs(float(flat.mean()) - 127.5) < 2.0 and float(flat.std()) < 2.0  # point sampling: all 0 or all 255
    assert float(np.abs(np.asarray(fine, np.float32) - np.asarray(fast, np.float32)).mean()) < 3.0


def test_live_aligned_frames_run_the_surround_as_it_is_and_the_face_at_the_model_size():
    from photosketch import PhotoSketchPipeline
    from photosketch.align import canvas_size

    model = _Shapes()
    pipe = PhotoSketchPipeline(model, size=256, backend="torch", background=False)
    sketch_app = space.SketchApp(loader=lambda name: pipe)
    # A 640 x 480 webcam frame with the astronaut in it: 320 x 240 after the live downscale, under 256 px.
    frame = Image.new("RGB", (640, 480), (128, 128, 128))
    frame.paste(Image.open(space.EXAMPLES_DIR / "photo_astronaut.jpg").convert("RGB").resize((400, 400)), (120, 40))
    sketch, track = sketch_app.live_sketch(np.asarray(frame), "m", False, 0.5, True, None)
    assert track.faces and sketch.size == (320, 240)
    w, h = canvas_size(256, pipe.canvas)
    assert model.seen == [(240, 320), (h, w)]  # the frame as it is, then the face on its model-size canvas
    # An upload of the same small picture keeps the surround enlarged to the model's size.
    model.seen.clear()
    sketch_app._sketch(frame.resize((320, 240)), "m", False, None, notify=False, align=True)
    assert model.seen[0] == (256, 341) and model.seen[1:] == [(h, w)]


def test_live_stream_draws_the_picked_style_of_a_styled_live_model():
    # The style picker also steers the live webcam stream when its model is style-conditioned (the
    # style-conditioned photo2sketch-fast); an unconditioned model ignores it.
    import torch

    from photosketch import PhotoSketchPipeline
    from photosketch.models import CompactGenerator, StyleNorm

    torch.manual_seed(0)
    model = CompactGenerator(ngf=4, n_blocks=1, norm="batch", sample_size=32, styles=["a", "b"]).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, StyleNorm):
                m.film.weight.normal_(0, 1.0)
    pipe = PhotoSketchPipeline(model, backend="torch", align=False, background=False)
    sketch_app = space.SketchApp(loader=lambda name: pipe)
    frame = np.asarray(make_face((64, 48), seed=2).convert("RGB"))
    drawn = {s: np.asarray(sketch_app.live_sketch(frame, "m", False, 0.5, False, None, s)[0]) for s in ("a", "b")}
    assert not np.array_equal(drawn["a"], drawn["b"])
    assert np.array_equal(np.asarray(sketch_app.live_sketch(frame, "m", False, 0.5)[0]), drawn["a"])  # the default style
