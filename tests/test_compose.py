import logging

import numpy as np
import pytest
import torch
from conftest import make_face
from PIL import Image

from photosketch.align import CANVAS, Face, FaceAligner, canvas_size
from photosketch.compose import (
    FaceJob,
    Plan,
    compose,
    even_backdrop,
    frame_drawing,
    guided_coefficients,
    luminance,
    native_size,
    plan_image,
    sample,
    soft_mask,
    whiten,
    working_size,
)


class _NoFaces(FaceAligner):
    """An aligner that finds nothing and has no person masks (no MediaPipe needed)."""

    has_landmarks = False

    def detect(self, image):
        return []

    def person_mask(self, rgb):
        return None


def _plan(image, aligner, **kw):
    settings = dict(size=32, in_channels=3, canvas=CANVAS, aligner=aligner, face_crop=False, align=True,
                    background=False, faces="each")
    settings.update(kw)
    return plan_image(image, **settings)


def test_no_face_plans_one_whole_image_input(caplog):
    scene = Image.fromarray(np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))).convert("RGB")
    with caplog.at_level(logging.WARNING, logger="photosketch.pipeline"):
        plan = _plan(scene, _NoFaces())
    assert [r.getMessage() for r in caplog.records] == ["no face found; converting the whole image"]
    assert plan.whole == 0 and plan.faces == [] and not plan.background and plan.whole_mask is None
    (tensor,) = plan.inputs
    assert tuple(tensor.shape) == (3, *reversed(working_size(160, 120, 32)))  # (3, 32, 43)
    assert plan.whole_guide.shape == (32, 43) and 0.0 <= plan.whole_guide.min() <= plan.whole_guide.max() <= 1.0
    # compose with the input itself as "output": the plain resize back to the image's size.
    out = compose(plan, [tensor[:1]], upsample="bicubic")
    assert out.size == scene.size and out.mode == "L"


def test_a_given_face_plans_a_canvas_and_composes_back_at_full_size():
    photo = make_face((200, 160))
    face = Face(np.array([[70.0, 85.0], [130.0, 85.0], [100.0, 105.0], [100.0, 125.0]]), (50, 40, 100, 130), "mesh")
    plan = _plan(photo, _NoFaces(), given=[face])
    assert plan.whole == 0 and len(plan.faces) == 1 and len(plan.inputs) == 2
    job = plan.faces[0]
    w, h = canvas_size(32, CANVAS)
    assert isinstance(job, FaceJob) and job.index == 1 and tuple(plan.inputs[1].shape) == (3, h, w)
    assert job.alpha.shape == job.guide.shape == (h, w)
    white = [torch.ones(1, *t.shape[1:]) for t in plan.inputs]
    for upsample in ("guided", "bicubic"):
        out = np.asarray(compose(plan, white, upsample=upsample))
        assert out.shape == (160, 200) and out.min() >= 254  # white in, white out, faces blended in
    # "largest" keeps one face; no alignment plans none.
    assert len(_plan(photo, _NoFaces(), given=[face, face], faces="largest").faces) == 1
    assert _plan(photo, _NoFaces(), given=[face], align=False).faces == []


def test_faces_on_a_white_page_have_no_whole_image_input():
    class _Masked(_NoFaces):
        has_landmarks = True

        def person_mask(self, rgb):
            return np.ones(rgb.shape[:2], np.float32)  # everything is the person

    photo = make_face((120, 120))
    face = Face(np.array([[45.0, 50.0], [75.0, 50.0], [60.0, 62.0], [60.0, 75.0]]), (30, 25, 60, 75), "mesh")
    plan = _plan(photo, _Masked(), given=[face], background=True)
    assert plan.background and plan.whole is None and isinstance(plan, Plan) and len(plan.inputs) == 1
    black = [-torch.ones(1, *plan.inputs[0].shape[1:])]
    out = np.asarray(compose(plan, black, upsample="guided"))
    assert out.shape == (120, 120) and out[60, 60] < 50 and out[0, 0] == 255  # the face is drawn, the page white


def test_native_size_follows_the_content_between_size_and_max_size():
    assert native_size(256, 384, 200.0) == 256  # a small face is never enlarged past the model's size
    assert native_size(256, 384, 300.4) == 300  # its own resolution
    assert native_size(256, 384, 900.0) == 384  # capped
    assert native_size(256, None, 900.0) == native_size(256, 256, 900.0) == 256  # off


def test_a_small_surround_under_faces_runs_as_it_is_without_enlarge_surround():
    photo = make_face((200, 160))  # 200 x 160: the shorter side under the model's 256
    face = Face(np.array([[70.0, 85.0], [130.0, 85.0], [100.0, 105.0], [100.0, 125.0]]), (50, 40, 100, 130), "mesh")
    w, h = canvas_size(256, CANVAS)
    enlarged = _plan(photo, _NoFaces(), given=[face], size=256)
    as_is = _plan(photo, _NoFaces(), given=[face], size=256, enlarge_surround=False)
    assert tuple(enlarged.inputs[0].shape[1:]) == tuple(reversed(working_size(200, 160, 256))) == (256, 320)
    assert tuple(as_is.inputs[0].shape[1:]) == (160, 200)  # the photo's own pixels, no resize
    assert tuple(as_is.inputs[1].shape[1:]) == tuple(enlarged.inputs[1].shape[1:]) == (h, w)  # the face: model size
    out = compose(as_is, [t[:1] for t in as_is.inputs], upsample="guided")
    assert out.size == photo.size
    # Without faces the whole image is all there is: enlarged to the model's size as always.
    alone = _plan(photo, _NoFaces(), size=256, enlarge_surround=False)
    assert tuple(alone.inputs[0].shape[1:]) == (256, 320)


def test_max_size_runs_large_images_and_faces_at_their_own_resolution():
    scene = Image.fromarray(np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))).convert("RGB")
    assert tuple(_plan(scene, _NoFaces(), max_size=200).inputs[0].shape[1:]) == (120, 160)  # its own 120 px
    assert tuple(_plan(scene, _NoFaces(), max_size=48).inputs[0].shape[1:]) == (48, 64)  # capped at 48
    assert tuple(_plan(scene, _NoFaces()).inputs[0].shape[1:]) == (32, 43)  # default: the working size
    # A face 60 px between the eyes: at 32 px its canvas shrinks it; with room it is drawn at its own scale.
    photo = make_face((400, 320))
    face = Face(np.array([[170.0, 170.0], [230.0, 170.0], [200.0, 200.0], [200.0, 230.0]]), (130, 120, 140, 160), "mesh")
    plan = _plan(photo, _NoFaces(), given=[face], max_size=512)
    job = plan.faces[0]
    scale = np.sqrt(abs(np.linalg.det(job.matrix[:, :2])))
    assert 32 < plan.inputs[1].shape[2] < 512 and abs(scale - 1.0) < 0.01  # canvas px = photo px
    w, h = canvas_size(plan.inputs[1].shape[2], CANVAS)
    assert tuple(plan.inputs[1].shape[1:]) == (h, w) and job.alpha.shape == job.guide.shape == (h, w)
    white = [torch.ones(1, *t.shape[1:]) for t in plan.inputs]
    assert np.asarray(compose(plan, white, upsample="guided")).shape == (320, 400)


def test_soft_mask_is_a_feathered_weight_in_0_1():
    prob = np.zeros((64, 64), np.float32)
    prob[16:48, 16:48] = 0.9
    prob[:4] = 0.25  # the segmenter's faint halo is squeezed to nothing
    mask = soft_mask(prob, 64)
    assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask[32, 32] > 0.99 and mask[1, 32] < 0.01 and 0.1 < mask[16, 32] < 0.9


def test_whiten_luminance_and_sample():
    img = Image.new("RGB", (4, 2), (0, 0, 0))
    mask = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], np.float32)
    t = whiten(img, mask, 3)
    assert t.shape == (3, 2, 4) and float(t[:, :, :2].max()) == -1.0 and float(t[:, :, 2:].min()) == 1.0
    assert np.array_equal(luminance(Image.fromarray(np.full((2, 2, 3), 255, np.uint8))), np.ones((2, 2), np.float32))
    arr = np.arange(12).reshape(3, 4)
    assert sample(arr, np.array([[0.4, 0.6], [9.0, -3.0]])).tolist() == [4, 3]  # nearest, clamped


@pytest.mark.parametrize("w, h", [(640, 480), (480, 640), (5000, 100)])
def test_working_size_is_the_pipelines(w, h):
    from photosketch.pipeline import MAX_ASPECT
    from photosketch.pipeline import working_size as pipeline_working_size

    ww, hh = working_size(w, h, 64)
    assert pipeline_working_size(w, h, 64) == (ww, hh) and max(ww, hh) <= MAX_ASPECT * 64


def test_guided_coefficients_recover_a_linear_relation_and_sharpen_upsampling():
    import cv2

    rng = np.random.default_rng(1)
    guide = rng.uniform(0, 1, (40, 40)).astype(np.float32)
    a, b = guided_coefficients(0.6 * guide + 0.2, guide, radius=2, eps=1e-6)
    assert np.allclose(a[5:-5, 5:-5], 0.6, atol=1e-3) and np.allclose(b[5:-5, 5:-5], 0.2, atol=1e-3)
    # A sharp edge at 256 px; the "sketch" only exists at 32 px. Guided by the full-resolution
    # edge, the upsampled sketch is much closer to the truth than bicubic interpolation.
    full = np.ones((256, 256), np.float32)
    full[:, 133:] = 0.1
    low_guide = cv2.resize(full, (32, 32), interpolation=cv2.INTER_AREA)
    low_sketch = 1.0 - 0.8 * (1.0 - low_guide)
    truth = 1.0 - 0.8 * (1.0 - full)
    a, b = guided_coefficients(low_sketch, low_guide)
    up = lambda x: cv2.resize(x, (256, 256), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    guided = up(a) * full + up(b)
    bicubic = cv2.resize(low_sketch, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert np.abs(guided - truth).mean() < 0.3 * np.abs(bicubic - truth).mean()




def _ink_box(img):
    ys, xs = np.nonzero(np.asarray(img.convert("L")) < 160)
    return xs.min(), ys.min(), xs.max(), ys.max()


def _drawn_face(size=(120, 150), box=(10, 10, 110, 140), mode="L"):
    from PIL import ImageDraw

    img = Image.new(mode, size, "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    d.ellipse(box, outline="black", width=2)  # the face's outline
    w, h = x1 - x0, y1 - y0
    for ex in (0.3, 0.7):  # eyes, nose, mouth
        d.ellipse((x0 + w * ex - 3, y0 + h * 0.4 - 3, x0 + w * ex + 3, y0 + h * 0.4 + 3), outline="black", width=2)
    d.line((x0 + w * 0.5, y0 + h * 0.45, x0 + w * 0.5, y0 + h * 0.6), fill="black", width=2)
    d.line((x0 + w * 0.35, y0 + h * 0.75, x0 + w * 0.65, y0 + h * 0.75), fill="black", width=2)
    return img


def test_frame_drawing_centres_and_enlarges_a_small_drawing():
    small = _drawn_face(box=(5, 8, 45, 58))  # a face drawn small, in the top-left corner
    framed = frame_drawing(small)
    assert framed.size == small.size and framed.mode == "L"
    x0, y0, x1, y1 = _ink_box(framed)
    assert 0.72 < (y1 - y0) / 150 < 0.88  # brought to about 0.8 of the height
    assert abs((x0 + x1) / 2 - 60) < 4 and abs((y0 + y1) / 2 - 75) < 4  # and centred
    assert np.asarray(framed)[0, 0] == 255 and np.asarray(framed)[-1, -1] == 255  # white paper where the page ran out
    rgb = frame_drawing(small.convert("RGB"))
    assert rgb.mode == "RGB" and np.abs(np.asarray(rgb.convert("L"), float) - np.asarray(framed, float)).mean() < 2


def test_frame_drawing_leaves_a_full_drawing_a_blank_page_and_a_dot_alone():
    full = _drawn_face(box=(12, 10, 108, 140))
    assert frame_drawing(full) is full
    blank = Image.new("L", (120, 150), "white")
    assert frame_drawing(blank) is blank
    dot = blank.copy()
    dot.putpixel((60, 75), 0)
    assert frame_drawing(dot) is dot  # a stray speck is not a drawing to blow up
    tiny = _drawn_face(box=(50, 60, 62, 75))  # very small: enlarged at most 3x, not to 0.8 of the height
    x0, y0, x1, y1 = _ink_box(frame_drawing(tiny))
    assert (y1 - y0) < 3.3 * 16


class _LeftHalfPerson(_NoFaces):
    """Person masks that call the left half of any picture a person and the right half background."""

    def person_mask(self, rgb):
        mask = np.zeros(rgb.shape[:2], np.float32)
        mask[:, : rgb.shape[1] // 2] = 1.0
        return mask


def test_even_backdrop_paints_the_background_one_colour_and_keeps_the_person():
    rng = np.random.default_rng(0)
    blotchy = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # larger than the mask's 256 px side
    out = np.asarray(even_backdrop(Image.fromarray(blotchy), _LeftHalfPerson()))
    assert out.shape == blotchy.shape
    background = out[:, 230:].reshape(-1, 3)
    colour = np.median(blotchy[:, 200:].reshape(-1, 3), axis=0)
    assert np.abs(background.astype(int) - colour).max() <= 2  # one colour, the median the model painted there
    np.testing.assert_array_equal(out[:, :170], blotchy[:, :170])  # the person, away from the feathered edge
    # source=: mask and colour come from another photo (the model's own, before "another face" recoloured it).
    other = np.full_like(blotchy, 40)
    out = np.asarray(even_backdrop(Image.fromarray(blotchy), _LeftHalfPerson(), source=Image.fromarray(other)))
    assert (out[:, 230:] == 40).all() and np.array_equal(out[:, :170], blotchy[:, :170])
    # Without person masks (no MediaPipe), the photo is left as it is.
    np.testing.assert_array_equal(np.asarray(even_backdrop(Image.fromarray(blotchy), _NoFaces())), blotchy)


def test_even_backdrop_leaves_a_picture_that_is_all_person_or_all_background():
    class _All(_NoFaces):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def person_mask(self, rgb):
            return np.full(rgb.shape[:2], self.value, np.float32)

    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for value in (0.0, 1.0):
        np.testing.assert_array_equal(np.asarray(even_backdrop(photo, _All(value))), np.asarray(photo))
