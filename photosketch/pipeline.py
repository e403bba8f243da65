"""``PhotoSketchPipeline``: any image in, a sketch (or a photo) out, at the input's size.

    from photosketch import PhotoSketchPipeline
    pipe = PhotoSketchPipeline.from_pretrained()            # best photo→sketch model installed
    sketch = pipe("me.jpg")                                 # PIL image, same size as me.jpg
    photos = PhotoSketchPipeline.from_pretrained("sketch2photo")(["a.png", "b.png"])

Steps: load (EXIF rotation, transparency on white, any mode -> RGB / L), optional face crop, then

- **aligned** (photo→sketch default, :mod:`photosketch.align`): each face found is warped (similarity
  transform on its eyes, nose and mouth) to the layout of the training photos in a canvas of the
  model's working size, its background optionally whitened with a person mask; the model runs on the
  canvases; each sketch is warped back and blended, feathered, into a white page (background on) or
  into the whole-image sketch (background off) at the photo's full resolution;
- **whole image** (alignment off, or no face found): resize to the working size with PIL, run the
  model, bring the result back to the input's (or the crop's) size.

Results larger than the working size are brought to full resolution with a guided filter steered by
the photo's luminance (``upsample="guided"``, photo→sketch default), so strokes keep sharp edges
instead of being smeared by bicubic interpolation.

Working size (whole image): the image is scaled, keeping its aspect ratio, so its *shorter* side is ``size``
(the ``size`` argument, else the model's ``sample_size``, else 256), with the longer side capped at
``MAX_ASPECT * size``. Every generator is fully convolutional and pads any input to its stride
(see ``photosketch.models``), so there is no need to squash the image to a square (which would
distort faces and change their scale relative to training) or to letterbox it (padding bands the
model never saw in training would waste compute and can bleed artefacts into the picture). The
classical styles measure ``sigma`` in pixels, so a fixed working scale also makes their look
independent of the input's resolution. Memory is bounded by ``size * MAX_ASPECT * size`` whatever the
input, and large photos are shrunk by PIL before any tensor exists.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from PIL import Image
from torch import nn

from .align import CANVAS, Face, FaceAligner
from .appearance import Appearance, recolor
# MAX_ASPECT and working_size live with the planning; importable from here as before.
from .compose import MAX_ASPECT, compose, even_backdrop, frame_drawing, plan_image, working_size  # noqa: F401
from .hub import DIRECTIONS, MODELS, default_model, load_model, resolve_direction
from .image import ImageInput, load_image
from .runtime import OnnxRunner, make_runner

__all__ = ["DEFAULT_SIZE", "FACES", "MAX_ASPECT", "PREFERRED_STYLES", "UPSAMPLERS", "PhotoSketchPipeline"]

logger = logging.getLogger(__name__)

#: Working size (shorter side) when neither the caller nor the model's config gives one.
DEFAULT_SIZE = 256
#: The default style of a style-conditioned model: the first of these it draws (else its first
#: style). Chosen by eye on real portraits (README "Styles"): dark continuous strokes on white.
PREFERRED_STYLES = ("fs2k-2", "fs2k-3", "cufs", "fs2k-1")
#: photo→sketch's default ``max_size`` as a multiple of the working size: on real portraits 1.5x
#: drew eyes, glasses and hair more sharply than 1x, and 2x began to draw skin texture (README, "Large
#: portraits at their own resolution").
MAX_SIZE_FACTOR = 1.5
#: ``faces=``: sketch every face found, or only the largest.
FACES = ("each", "largest")
#: ``upsample=``: how a result smaller than the image is brought to full size.
UPSAMPLERS = ("guided", "bicubic")

_LOAD_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "weights_dir")


@contextmanager
def _threads(n: int | None):
    """``torch.set_num_threads(n)`` for the duration of the block only."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _accepts_strength(model: nn.Module) -> bool:
    try:
        return "strength" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def default_style(styles) -> str | None:
    """The style a model draws when none is named: the first of :data:`PREFERRED_STYLES` it has, else
    its first style; ``None`` for models without styles."""
    preferred = [s for s in PREFERRED_STYLES if s in styles]
    return preferred[0] if preferred else (styles[0] if styles else None)


class PhotoSketchPipeline:
    """Run a photo→sketch or sketch→photo model (learned or classical) on user images.

    Args:
        model: any module mapping N x C x H x W in [-1, 1] to the same (a generator from
            :mod:`photosketch.models` or a style from :mod:`photosketch.classical`).
        direction: ``"photo2sketch"`` or ``"sketch2photo"``; only used for defaults and messages.
        size: working size (shorter side, pixels); default: the model's ``sample_size`` or 256.
        max_size: photos (or aligned faces) with more resolution than ``size`` run at their own
            resolution, up to this working size (:func:`photosketch.compose.native_size`): a large
            portrait keeps its eyes and hair sharper than at ``size``, a small one is never enlarged
            beyond ``size``. Default for photo→sketch: :data:`MAX_SIZE_FACTOR` x ``size``
            (further up the model, trained at ``size``, draws skin texture instead of strokes); for
            sketch→photo ``size`` (a drawing's extra pixels are no extra detail). ``max_size=size``
            always runs at ``size``.
        face_crop: crop to the largest face (with hair and chin) before running; the output then
            has the crop's size. Faces are found by OpenCV's Haar cascade, else (profiles, turned
            heads) by MediaPipe; no face = whole image.
        num_threads: torch CPU threads while the pipeline runs (restored afterwards), and ONNX
            Runtime's threads.
        backend: how the model runs (:mod:`photosketch.runtime`): ``"auto"`` (ONNX Runtime for
            learned CPU models when it is installed, else PyTorch), ``"torch"`` or ``"onnxruntime"``.
            Outputs agree to float rounding; ONNX Runtime is 1.5-2.5x faster on CPU.
        style: for style-conditioned models (``pipe.styles`` lists them): the style to draw in;
            default the first of :data:`PREFERRED_STYLES` the model has. Models without styles
            take none.
        align: warp each face to the training layout before the model and back afterwards
            (:mod:`photosketch.align`); faces come from MediaPipe's landmarks, else OpenCV's Haar
            box; no face = the whole image. Default: on for photo→sketch, off for sketch→photo.
        background: photo→sketch: whiten the background with a person mask before the model
            and keep the page white around the person. Off: the background is sketched too (and,
            when aligned, the faces are pasted into the whole-image sketch). Sketch→photo: replace
            the blotchy background the model paints with one even colour, found by a person mask of
            the generated photo (:func:`photosketch.compose.even_backdrop`). Default on for both;
            needs MediaPipe, else skipped (with a notice for photo→sketch).
        faces: ``"each"`` face found (default) or only the ``"largest"``.
        upsample: ``"guided"`` (photo→sketch default): results smaller than the image are brought
            to full size by a guided filter steered by the photo, so strokes stay crisp;
            ``"bicubic"``: plain interpolation (sketch→photo default).
        canvas: the aligned canvas around a face as (left, top, right, bottom) in units of the
            training square (:data:`photosketch.align.CANVAS`, the CUFS framing, by default); a
            larger canvas draws more of the shoulders at more compute.
        frame: sketch→photo only (its default: on): a drawing that fills a small part of its page is
            centred and enlarged to the training sketches' framing first
            (:func:`photosketch.compose.frame_drawing`), so a face drawn small on a big sketchpad is
            painted as a face, not a blur; the photo then shows the drawing enlarged.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        direction: str = "photo2sketch",
        size: int | None = None,
        face_crop: bool = False,
        num_threads: int | None = None,
        backend: str = "auto",
        style: str | None = None,
        align: bool | None = None,
        background: bool | None = None,
        faces: str = "each",
        upsample: str | None = None,
        canvas: tuple[float, float, float, float] = CANVAS,
        frame: bool | None = None,
        max_size: int | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        self.model = model.eval()
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1; got {num_threads}")
        # What actually runs: BatchNorm folded into the convs, under ONNX Runtime when available.
        self._runner = make_runner(self.model, backend, num_threads)
        #: The backend in use: "onnxruntime" or "torch".
        self.backend = "onnxruntime" if isinstance(self._runner, OnnxRunner) else "torch"
        self.direction = direction
        config = getattr(model, "_hub_mixin_config", None) or {}
        if size is None:
            size = config.get("sample_size") or DEFAULT_SIZE
        if int(size) < 1:
            raise ValueError(f"size must be a positive number of pixels; got {size}")
        self.size = int(size)
        self.num_threads = num_threads
        self.face_crop = bool(face_crop)
        to_sketch = direction == "photo2sketch"
        self.max_size = self.check_max_size(
            (round(MAX_SIZE_FACTOR * self.size) if to_sketch else self.size) if max_size is None else max_size)
        self.align = to_sketch if align is None else bool(align)
        self.background = True if background is None else bool(background)
        self.faces = self._check_faces(faces)
        self.upsample = self._check_upsample(("guided" if to_sketch else "bicubic") if upsample is None else upsample)
        self.frame = self._check_frame(not to_sketch if frame is None else bool(frame))
        left, top, right, bottom = (float(v) for v in canvas)
        if not (left < 0.5 < right and top < 0.5 < bottom):
            raise ValueError(f"canvas must be (left, top, right, bottom) around the training square's centre; got {canvas}")
        self.canvas = (left, top, right, bottom)
        # Input channels follow the model: 1 -> grayscale. Classical styles take RGB (they compute
        # luminance themselves); an unknown module gets RGB photos / grayscale sketches.
        default_in = 3 if direction == "photo2sketch" else 1
        self.in_channels = int(config.get("in_channels") or getattr(model, "in_channels", default_in))
        self.takes_strength = _accepts_strength(model)
        #: The styles the model draws (empty for models without a style input).
        self.styles: tuple[str, ...] = tuple(getattr(model, "styles", ()) or ())
        #: The style used when a call names none.
        self.style = self.check_style(style) if style is not None else default_style(self.styles)
        #: Faces (MediaPipe landmarks, Haar fallback) and person masks; MediaPipe loads on first use.
        self.aligner = FaceAligner()

    def check_style(self, style: str) -> str:
        """``style`` when the model draws it; else a one-line ``ValueError`` listing the valid ones."""
        if not self.styles:
            raise ValueError(f"{type(self.model).__name__} has one style; style={style!r} does not apply")
        self.model.style_index(style)  # PhotoSketchModel's one-line error listing the valid names
        return style

    def _check_frame(self, frame: bool) -> bool:
        if frame and self.direction != "sketch2photo":
            raise ValueError("frame applies to sketch→photo drawings; photo→sketch aligns faces instead (align=True)")
        return frame

    def check_max_size(self, max_size: int) -> int:
        """``max_size`` when it is at least the working size; else a one-line ``ValueError``."""
        if int(max_size) < self.size:
            raise ValueError(f"max_size must be at least the working size ({self.size}); got {max_size}")
        return int(max_size)

    @staticmethod
    def _check_faces(faces: str) -> str:
        if faces not in FACES:
            raise ValueError(f"faces must be one of {', '.join(FACES)}; got {faces!r}")
        return faces

    @staticmethod
    def _check_upsample(upsample: str) -> str:
        if upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLERS)}; got {upsample!r}")
        return upsample

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        *,
        direction: str | None = None,
        size: int | None = None,
        face_crop: bool = False,
        num_threads: int | None = None,
        backend: str = "auto",
        style: str | None = None,
        align: bool | None = None,
        background: bool | None = None,
        faces: str = "each",
        upsample: str | None = None,
        frame: bool | None = None,
        max_size: int | None = None,
        **load_kwargs,
    ) -> PhotoSketchPipeline:
        """Build a pipeline from a registry name, a model folder or a Hub repo id.

        ``None`` picks :func:`photosketch.hub.default_model` for ``direction`` (photo→sketch by
        default). The direction comes from the registry or, for folders, from the model's channels
        (3→1 photo→sketch, 1→3 sketch→photo). ``load_kwargs`` go to :func:`photosketch.hub.load_model`
        (``revision``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``, ``weights_dir``).

        Raises:
            KeyError: unknown model name.
            photosketch.hub.ModelNotAvailableError: the model's weights are not installed.
        """
        unknown = set(load_kwargs) - set(_LOAD_KWARGS)
        if unknown:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        if name_or_path is None:
            hub_kwargs = {k: v for k, v in load_kwargs.items() if k != "force_download"}
            name_or_path = default_model(direction or "photo2sketch", **hub_kwargs)
        spec = MODELS.get(os.fspath(name_or_path))
        if spec is not None and direction is not None and spec.direction != direction:
            raise ValueError(f"model {spec.name!r} is a {spec.direction} model, not {direction}")
        model = load_model(name_or_path, **load_kwargs)
        direction = direction or resolve_direction(name_or_path, model) or "photo2sketch"
        return cls(model, direction=direction, size=size, face_crop=face_crop, num_threads=num_threads, backend=backend,
                   style=style, align=align, background=background, faces=faces, upsample=upsample, frame=frame,
                   max_size=max_size)

    # -- running ---------------------------------------------------------------------------

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        face_crop: bool | None = None,
        strength: float | None = None,
        batch_size: int = 8,
        style: str | None = None,
        align: bool | None = None,
        background: bool | None = None,
        faces: str | None = None,
        found_faces: Sequence[Face] | None = None,
        seed: int | None = None,
        frame: bool | None = None,
        max_size: int | None = None,
        enlarge_surround: bool = True,
    ) -> Image.Image | list[Image.Image]:
        """Convert one image (-> a PIL image) or a list (-> a list, same order).

        Args:
            images: a path, bytes, PIL image, numpy array, or a list of them.
            face_crop: override the pipeline's ``face_crop`` for this call.
            strength: line strength / darkness in [0, 1] for classical styles (learned models ignore it).
            batch_size: images (or aligned faces) run through the model together (same size only).
            style: override the pipeline's ``style`` for this call (style-conditioned models).
            align, background, faces: override the pipeline's settings for this call.
            found_faces: with ``align``, the faces of a single image already found (e.g. by
                :func:`photosketch.align.track_faces` for a video frame): no detection runs.
            seed: sketch→photo only: "another face" for the same drawing, a skin tone and hair colour
                picked by this seed (:mod:`photosketch.appearance`); ``None``: the model's own colours.
            frame: override the pipeline's ``frame`` for this call (sketch→photo only).
            max_size: override the pipeline's ``max_size`` for this call (``pipe.size``: a fixed cost,
                as the app's live webcam stream wants).
            enlarge_surround: with ``align``, ``False`` runs the whole image under the faces at its own
                resolution when it is smaller than the model's size (the faces keep their canvases at the
                model's size). The live stream's 320-px frames: a smaller, unresized model input, about
                4 ms less of a 44 ms frame (``benchmarks/stream.py``, the 6-block student).

        Raises:
            photosketch.image.ImageLoadError: an input cannot be read.
        """
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if strength is not None and not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1]; got {strength}")
        if strength is not None and not self.takes_strength:
            logger.debug("strength is ignored by %s", type(self.model).__name__)
        crop = self.face_crop if face_crop is None else bool(face_crop)
        style = self.check_style(style) if style is not None else self.style
        align = self.align if align is None else bool(align)
        background = self.background if background is None else bool(background)
        faces = self.faces if faces is None else self._check_faces(faces)
        max_size = self.max_size if max_size is None else self.check_max_size(max_size)
        if self.frame if frame is None else self._check_frame(bool(frame)):
            items = [frame_drawing(load_image(item)) for item in items]

        appearance = None
        if seed is not None:
            if self.direction != "sketch2photo":
                raise ValueError("seed applies to sketch→photo (it picks the face's skin tone and hair colour)")
            appearance = Appearance.from_seed(seed)
        if found_faces is not None and (not single or crop):
            raise ValueError("found_faces applies to one image, without face_crop (the faces are in its pixels)")

        with _threads(self.num_threads):
            # A drawing is not whitened before the model: sketch→photo's background is evened afterwards.
            plans = [plan_image(item, size=self.size, in_channels=self.in_channels, canvas=self.canvas,
                                aligner=self.aligner, face_crop=crop, align=align,
                                background=background and self.direction == "photo2sketch",
                                faces=faces, given=found_faces, max_size=max_size,
                                enlarge_surround=enlarge_surround) for item in items]
            jobs = [(p, j) for p, plan in enumerate(plans) for j in range(len(plan.inputs))]
            results: list[list[torch.Tensor | None]] = [[None] * len(plan.inputs) for plan in plans]
            # Inputs of the same size share a batch (aligned faces always do).
            groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
            for p, j in jobs:
                groups.setdefault(tuple(plans[p].inputs[j].shape), []).append((p, j))
            device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
            kwargs = {"strength": strength} if self.takes_strength and strength is not None else {}
            if style is not None:
                kwargs["style"] = style
            with torch.inference_mode():
                for members in groups.values():
                    for start in range(0, len(members), batch_size):
                        chunk = members[start : start + batch_size]
                        batch = torch.stack([plans[p].inputs[j] for p, j in chunk]).to(device)
                        out = self._runner(batch, **kwargs).float().cpu()
                        for k, (p, j) in enumerate(chunk):
                            results[p][j] = out[k]
            outputs = [compose(plan, res, upsample=self.upsample) for plan, res in zip(plans, results)]
        painted = outputs
        if appearance is not None:
            outputs = [recolor(o, appearance) for o in outputs]
        if background and self.direction == "sketch2photo":
            # Last, after any recolouring, so the backdrop stays one even colour; measured on the model's
            # own photo, so "another face" (a seed) keeps the backdrop of the drawing's photo.
            with _threads(self.num_threads):
                outputs = [even_backdrop(o, self.aligner, source=p) for o, p in zip(outputs, painted)]
        return outputs[0] if single else outputs  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={type(self.model).__name__}, direction={self.direction!r}, "
                f"size={self.size}, max_size={self.max_size}, face_crop={self.face_crop}, align={self.align}, background={self.background}, "
                f"backend={self.backend!r}" + (f", style={self.style!r}" if self.style else "") + ")")
