"""Per-image planning and composition behind :class:`~photosketch.pipeline.PhotoSketchPipeline`.

:func:`plan_image` turns one loaded image into the model inputs (the whole image at the working size
and/or each face warped to the training layout, backgrounds optionally whitened) and :func:`compose`
turns the model outputs back into one picture at the image's full resolution (inverse warps, feathered
blending, guided upsampling). The pipeline keeps loading, options and batching; these steps live
here so they can be read and tested on their own, and they take everything they need as arguments.

Guided upsampling (He, Sun and Tang, "Guided Image Filtering", TPAMI 2013; He and Sun, "Fast Guided
Filter", 2015): at the working size the sketch is modelled, per window, as a linear function
``a * I + b`` of the photo's luminance ``I``; the smooth slope ``a`` is warped (or resized) to full
resolution and multiplies the photo detail the working size lost, so stroke edges follow the photo's
real edges instead of being smeared by interpolation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .align import (
    Face,
    FaceAligner,
    alignment_matrix,
    canonical_points,
    canvas_size,
    feather_edges,
    invert_affine,
    paste_region,
    shrink_to,
    warp,
)
from .image import LUMA, ImageInput, load_image, pil_to_tensor, tensor_to_pil, to_mode

__all__ = ["MAX_ASPECT", "FaceJob", "Plan", "compose", "even_backdrop", "frame_drawing", "guided_coefficients", "native_size",
           "plan_image", "working_size"]

# Its notices ("no face found", ...) are the pipeline's: logged under its name, as before the split.
logger = logging.getLogger("photosketch.pipeline")

#: The longer working side is at most this many times ``size`` (panoramas stay bounded).
MAX_ASPECT = 4
#: Guided upsampling (:func:`guided_coefficients`) at the working size: window radius in pixels and
#: regularisation (luminance in [0, 1]); CUFS FSIM barely moves with them (README).
GUIDED_RADIUS = 2
GUIDED_EPS = 1e-3
#: Background whitening is skipped when the person mask covers less than this share of the picture.
MIN_PERSON = 0.05
#: Sketch→photo's even backdrop: the person mask is computed on a copy at most this many pixels on its
#: longer side (MediaPipe's segmenter works at 256 x 256 anyway), then enlarged.
BACKDROP_MASK_SIDE = 256


def working_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``size`` and the aspect ratio kept (longer side <= MAX_ASPECT * size)."""
    scale = size / min(width, height)
    if max(width, height) * scale > MAX_ASPECT * size:
        scale = MAX_ASPECT * size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def native_size(size: int, max_size: int | None, native: float) -> int:
    """The working size for content that has ``native`` pixels where the model's ``size`` would go
    (an image's shorter side, an aligned face's canvas width): ``size`` when it has no more resolution
    than that, else its own resolution, up to ``max_size`` (``None`` or ``<= size``: always ``size``).
    Upscaling a small face adds no detail, so it never runs above ``size``; a large one keeps more of
    its eyes and hair than a ``size``-px copy would."""
    if not max_size or max_size <= size:
        return size
    return int(min(max_size, max(size, round(native))))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_coefficients(p: np.ndarray, guide: np.ndarray, radius: int = 2, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's per-pixel linear model ``p ~ a * guide + b`` (He et al. 2013, eqs. 7-8),
    averaged over each window. ``p`` and ``guide`` are H x W float32 in [0, 1].

    Applied to an upscaled guide, ``a_up * guide_full + b_up`` is the fast guided filter's
    upsampling (He and Sun 2015): the result takes its edges from the full-resolution guide.
    """
    p = p.astype(np.float32)
    guide = guide.astype(np.float32)
    mean_i, mean_p = _box(guide, radius), _box(p, radius)
    cov = _box(guide * p, radius) - mean_i * mean_p
    var = _box(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box(a, radius), _box(b, radius)


@dataclass
class FaceJob:
    """One aligned face: its model input's index, the image -> canvas transform, the canvas weight
    (feathered edges x person mask) and the canvas luminance (the guide for upsampling)."""

    index: int
    matrix: np.ndarray
    alpha: np.ndarray
    guide: np.ndarray


@dataclass
class Plan:
    """One input image: what runs through the model and how the outputs become the result."""

    image: Image.Image  # after loading and the optional face crop: the result's size
    inputs: list[torch.Tensor] = field(default_factory=list)
    whole: int | None = None  # index of the whole-image input, if it runs
    whole_guide: np.ndarray | None = None  # its luminance in [0, 1] (working size)
    whole_mask: np.ndarray | None = None  # person mask at the working size (background whitening)
    faces: list[FaceJob] = field(default_factory=list)
    background: bool = False  # faces go on a white page (True) or over the whole-image result


def luminance(img: Image.Image | np.ndarray) -> np.ndarray:
    """H x W float32 luminance in [0, 1] (ITU-R 601, PIL's "L")."""
    arr = np.asarray(img.convert("L") if isinstance(img, Image.Image) else img, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr @ np.array(LUMA, dtype=np.float32)
    return arr / 255.0


def soft_mask(prob: np.ndarray, size: int) -> np.ndarray:
    """A person probability map -> a weight with crisp but feathered edges: the segmenter's wide
    grey halo is squeezed (0.3 -> 0, 0.7 -> 1), then blurred by ~1 % of the working size."""
    import cv2

    t = np.clip((prob - 0.3) / 0.4, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    return cv2.GaussianBlur(t.astype(np.float32), (0, 0), max(0.5, size / 200))


def sample(arr: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``arr`` at the nearest pixels to ``points`` ((n, 2) x, y), clamped to the array."""
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, arr.shape[1] - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, arr.shape[0] - 1)
    return arr[ys, xs]


def to_array(out: torch.Tensor) -> np.ndarray:
    """A model output (C, H, W) in [-1, 1] -> H x W (x C) float32 in [0, 1], rounded to 8 bits as a
    saved sketch would be."""
    arr = np.asarray(tensor_to_pil(out), dtype=np.float32) / 255.0
    return arr


def whole_input(img: Image.Image, size: int, in_channels: int) -> tuple[torch.Tensor, Image.Image]:
    """The whole image at the working size, as a tensor (and as the resized PIL image)."""
    img = to_mode(img, in_channels)
    work = working_size(*img.size, size)
    if work != img.size:
        # PIL on the 8-bit image: shrinking a 4000x3000 photo this way is fast and antialiased;
        # reducing_gap lets PIL first reduce by an integer factor (much faster, same quality).
        shrinking = work[0] < img.width
        img = img.resize(work, Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC,
                         reducing_gap=3.0 if shrinking else None)
    return pil_to_tensor(img, in_channels), img


def whiten(img: Image.Image, mask: np.ndarray, in_channels: int) -> torch.Tensor:
    """``img`` with everything outside ``mask`` (H x W weights) blended to white, as a model input."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    arr = arr * mask[..., None] + 255.0 * (1.0 - mask[..., None])
    return pil_to_tensor(Image.fromarray(arr.round().astype(np.uint8)), in_channels)


#: Sketch→photo framing (:func:`frame_drawing`): the training sketches' ink (1st-99th percentile box) spans
#: about 0.72 of the frame's width and 0.90 of its height, centred; a drawing is brought to 0.8 of the height.
FRAME_HEIGHT, FRAME_WIDTH = 0.8, 0.85
#: Below this gain the drawing is left as it is (it already fills the frame about as a training sketch
#: does); above the cap a few strokes would be blown up into a blur.
FRAME_MIN_GAIN, FRAME_MAX_GAIN = 1.15, 3.0


def frame_drawing(img: Image.Image, *, ink: int = 160) -> Image.Image:
    """A drawing that fills a small part of its page, centred and enlarged to the training framing.

    Sketch→photo models learned from sketches whose strokes fill the frame (hair at the top, shoulders
    at the bottom); a face drawn small on a big sketchpad comes out as a blur. Here the box of the ink
    (pixels darker than ``ink``; 1st to 99th percentile, so a stray dot does not count) is centred and
    scaled so that it spans :data:`FRAME_HEIGHT` of the height (at most :data:`FRAME_WIDTH` of the width),
    by a gain of at most :data:`FRAME_MAX_GAIN`; the result has the input's size and mode, white paper
    where the page ran out. A drawing that already fills its page (gain below :data:`FRAME_MIN_GAIN`)
    or a blank page comes back unchanged, as the same object.
    """
    gray = np.asarray(img.convert("L"))
    h, w = gray.shape
    ys, xs = np.nonzero(gray < ink)
    if len(xs) < max(4, 0.0005 * gray.size):
        return img
    x0, x1 = np.percentile(xs, [1, 99])
    y0, y1 = np.percentile(ys, [1, 99])
    gain = min(FRAME_HEIGHT * h / max(y1 - y0, 1.0), FRAME_WIDTH * w / max(x1 - x0, 1.0), FRAME_MAX_GAIN)
    if gain < FRAME_MIN_GAIN:
        return img
    cx, cy, half_w, half_h = (x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2, w / gain / 2, h / gain / 2
    white = 255 if img.mode in ("L", "1", "P", "I", "F") else (255,) * len(img.getbands())
    source = img if img.mode not in ("1", "P") else img.convert("L")
    return source.transform((w, h), Image.Transform.EXTENT, (cx - half_w, cy - half_h, cx + half_w, cy + half_h),
                            resample=Image.Resampling.BICUBIC, fillcolor=white)


def even_backdrop(photo: Image.Image, aligner: FaceAligner, *, source: Image.Image | None = None) -> Image.Image:
    """A generated photo (sketch→photo) with its painted background replaced by one even colour.

    The sketch→photo models learned FS2K's backgrounds, which they paint as blotchy, textured blue and
    grey around the person whatever the drawing shows there. MediaPipe's person mask of the *generated*
    photo (:meth:`~photosketch.align.FaceAligner.person_mask`) separates the painted person from that
    background; the background becomes the median colour the model painted there (its own choice of
    tone, without the blotches), blended through the mask's feathered edge (:func:`soft_mask`).
    ``source`` (same size) is the photo the mask and colour are taken from, by default ``photo``: the
    pipeline passes the model's own output, so a recoloured face ("another face") keeps the same backdrop.
    Unchanged without MediaPipe, or when the mask finds almost no person or almost no background.
    """
    import cv2

    rgb = np.asarray(photo.convert("RGB"))
    seen = rgb if source is None else np.asarray(source.convert("RGB"))
    h, w = seen.shape[:2]
    small, scale = shrink_to(seen, BACKDROP_MASK_SIDE)
    prob = aligner.person_mask(small)
    if prob is None or not MIN_PERSON <= float((prob > 0.5).mean()) <= 1.0 - MIN_PERSON or not (prob < 0.3).any():
        return photo.convert("RGB")
    colour = np.median(small[prob < 0.3].reshape(-1, 3), axis=0).astype(np.float32)
    prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR) if scale != 1.0 else prob
    keep = soft_mask(prob, min(h, w))[..., None]
    out = rgb.astype(np.float32) * keep + colour * (1.0 - keep)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def plan_image(image: ImageInput, *, size: int, in_channels: int, canvas: tuple[float, float, float, float],
               aligner: FaceAligner, face_crop: bool, align: bool, background: bool, faces: str,
               given: Sequence[Face] | None = None, max_size: int | None = None,
               enlarge_surround: bool = True) -> Plan:
    """Load ``image`` (cropped to its largest face by ``aligner.crop`` with ``face_crop``) and plan its
    model inputs: each face found by ``aligner`` (or ``given``) warped into a ``canvas`` at working
    ``size``, and the whole image unless the faces go on a white page (``background`` with landmarks).
    With ``max_size``, the whole image and each face run at their own resolution between ``size`` and
    ``max_size`` (:func:`native_size`). ``enlarge_surround=False``: when faces were found, the whole image
    under them is not enlarged to ``size`` if smaller (the faces, which need the model's training scale,
    keep their ``size``-px canvases; enlarging the surround adds no detail, only cost)."""
    img = load_image(image)
    if face_crop:
        img, _ = aligner.crop(img)
    plan = Plan(img)
    found = (list(given) if given is not None else aligner.detect(img)) if align else []
    if align and not found:
        name = f"{os.fspath(image)}: " if isinstance(image, (str, os.PathLike)) else ""
        logger.warning("%sno face found; converting the whole image", name)
    if faces == "largest":
        found = found[:1]
    rgb = np.asarray(img.convert("RGB")) if found or background else None
    plan.background = bool(found) and background and aligner.has_landmarks
    if found and background and not plan.background:
        logger.info("no person mask without mediapipe: the background is sketched too")
    if not plan.background:  # the whole image runs: alone, or as the base the faces go over
        whole_size = native_size(size, max_size, min(img.size))
        if found and not enlarge_surround:
            whole_size = min(whole_size, min(img.size))
        tensor, work = whole_input(img, whole_size, in_channels)
        plan.whole, plan.whole_guide = 0, luminance(work)
        if not found and background:
            prob = aligner.person_mask(np.asarray(work.convert("RGB")))
            if prob is not None and float((prob > 0.5).mean()) >= MIN_PERSON:
                plan.whole_mask = soft_mask(prob, whole_size)
                tensor = whiten(work, plan.whole_mask, in_channels)
        plan.inputs.append(tensor)
    for face in found:
        matrix = alignment_matrix(face, img.size, size, canvas)
        # The canvas width at which this face is drawn at its own resolution: size / (canvas px per photo px).
        face_size = native_size(size, max_size, size / np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        if face_size != size:
            matrix = alignment_matrix(face, img.size, face_size, canvas)
        w, h = canvas_size(face_size, canvas)
        edges = feather_edges((w, h), ramp=0.08 * face_size)
        landmarks = canonical_points(face_size, canvas)  # where every aligned face has them
        warped = warp(rgb, matrix, (w, h), border=255.0)
        alpha, tensor = edges, None
        if plan.background:
            prob = aligner.person_mask(warped)
            # The face itself must be "person": a segmenter that misses it (a drawing, a statue,
            # a face too small) would otherwise whiten the whole picture into a blank page.
            if prob is not None and float(np.median(sample(prob, landmarks))) >= 0.5:
                mask = soft_mask(prob, face_size)
                alpha = edges * mask
                tensor = whiten(Image.fromarray(warped), mask, in_channels)
            elif prob is not None:
                logger.info("the person mask misses the face; its background is kept")
        if tensor is None:
            tensor = pil_to_tensor(Image.fromarray(warped), in_channels)
        plan.faces.append(FaceJob(len(plan.inputs), matrix, alpha, luminance(warped)))
        plan.inputs.append(tensor)
    return plan


def upscale(out: np.ndarray, guide: np.ndarray, guide_full: np.ndarray | None, place: Callable, upsample: str) -> np.ndarray:
    """``out`` (working resolution, [0, 1]) brought to full resolution by ``place`` (a resize or an
    inverse warp of an array, with its border value).

    Guided: the interpolated sketch plus the photo's detail that the working size lost
    (``guide_full`` minus the interpolated ``guide``), scaled by the local slope ``a`` of the
    guided filter's model ``sketch ~ a * photo + b`` (He et al. 2013). Where the sketch follows
    the photo's edges they come back sharp; where it does not (``a`` ~ 0) it is plain
    interpolation, so the sketch's own strokes are never blurred. (The guided filter's output
    itself, ``a * photo + b``, averages the sketch over each window: it lowered CUFS FSIM.)
    """
    if upsample != "guided":
        return place(out, 1.0, True)
    detail = guide_full - place(guide, 1.0, True)
    channels = [out] if out.ndim == 2 else [out[..., c] for c in range(out.shape[2])]
    result = []
    for p in channels:
        a, _ = guided_coefficients(p, guide, GUIDED_RADIUS, GUIDED_EPS)
        result.append(place(p, 1.0, True) + place(a, 0.0, False) * detail)
    return np.clip(result[0] if out.ndim == 2 else np.stack(result, axis=-1), 0.0, 1.0)


def compose(plan: Plan, outputs: list[torch.Tensor], *, upsample: str) -> Image.Image:
    """The model ``outputs`` (one per ``plan.inputs``) made into one picture of ``plan.image``'s size."""
    img = plan.image
    if plan.whole is not None and not plan.faces and plan.whole_mask is None and (
            upsample == "bicubic" or outputs[plan.whole].shape[-1] >= img.width):
        # Whole image, nothing to blend, no upscaling to guide: exactly the plain resize.
        out = tensor_to_pil(outputs[plan.whole])
        if out.size != img.size:
            up = img.width > out.width
            out = out.resize(img.size, Image.Resampling.BICUBIC if up else Image.Resampling.LANCZOS)
        return out
    import cv2

    full_w, full_h = img.size
    luma = luminance(img) if upsample == "guided" else None
    if plan.whole is not None:
        out = to_array(outputs[plan.whole])

        def resize(arr, border, cubic):
            return cv2.resize(arr, (full_w, full_h), interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)

        if out.shape[1] >= full_w:
            page = cv2.resize(out, (full_w, full_h), interpolation=cv2.INTER_AREA)
        else:
            page = upscale(out, plan.whole_guide, luma, resize, upsample)
        if plan.whole_mask is not None:
            mask = resize(plan.whole_mask, 0.0, False)
            page = 1.0 - (mask[..., None] if page.ndim == 3 else mask) * (1.0 - page)
    else:
        channels = outputs[plan.faces[0].index].shape[0]
        page = np.ones((full_h, full_w) if channels == 1 else (full_h, full_w, channels), np.float32)
    for job in plan.faces:
        out = to_array(outputs[job.index])
        back = invert_affine(job.matrix)  # canvas -> image
        region = paste_region(back, (out.shape[1], out.shape[0]), img.size)
        if region is None:
            continue
        x0, y0, x1, y1 = region
        back[:, 2] -= (x0, y0)
        box = (x1 - x0, y1 - y0)

        def place(arr, border, cubic, back=back, box=box):
            return warp(arr, back, box, border=border, cubic=cubic)

        upscaling = np.sqrt(abs(np.linalg.det(back[:, :2]))) > 1.0
        if upscaling:
            sketch = upscale(out, job.guide, None if luma is None else luma[y0:y1, x0:x1], place, upsample)
        else:
            sketch = np.clip(place(out, 1.0, False), 0.0, 1.0)
        alpha = place(job.alpha, 0.0, False)
        if sketch.ndim == 3:
            alpha = alpha[..., None]
        target = page[y0:y1, x0:x1]
        layer = 1.0 - alpha * (1.0 - sketch)
        # White page: keep the darker of overlapping faces' strokes. Over the whole-image sketch:
        # the face replaces it, blended across the feathered edge.
        page[y0:y1, x0:x1] = np.minimum(target, layer) if plan.background else target * (1 - alpha) + sketch * alpha
    arr = (np.clip(page, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
