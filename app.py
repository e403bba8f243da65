"""The photosketch Gradio Space: face photo -> pencil sketch, and sketch -> face photo.

    python app.py                      # serves on 127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)

Everything model-related comes from the library: names from ``photosketch.hub`` (Hub repo id ->
Hugging Face cache -> folder shipped in ``weights/``, so the Space works offline) and inference from
``PhotoSketchPipeline``. This file only does the user interface, reading uploads safely and
turning failures into messages. Pipelines are loaded on first use and kept, per model name, on a
:class:`SketchApp` owned by the demo (``demo.photosketch``), never in module globals.

API (every non-streaming endpoint has a stable name; see the README for a ``gradio_client`` snippet):

- ``/photo_to_sketch(photo, model, face_crop, strength, style, align, background) -> sketch`` (``style``: one
  of the model's drawing styles, e.g. ``"fs2k-1"``; empty for the model's default or models without styles;
  ``align`` / ``background``: warp faces to the training layout / whiten the background, both default on)
- ``/sketch_to_photo(sketch, model, seed, background) -> photo``, where ``sketch`` is a Sketchpad value
  ``{"background": None, "layers": [], "composite": handle_file("sketch.png")}``, ``seed`` (optional)
  picks another face's skin tone and hair colour (empty: the model's own colours) and ``background``
  (default on) paints one even colour behind the face
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image, UnidentifiedImageError

import app_browser
from photosketch.align import FaceTrack, track_faces
from photosketch.face import FaceDetector
from photosketch.hub import MODELS, ModelNotAvailableError, available_models, default_model, model_styles
from photosketch.image import MAX_PIXELS as MAX_PIXELS_ACCEPTED
from photosketch.image import MIN_SIDE as MIN_SIDE_ACCEPTED
from photosketch.image import ImageLoadError, load_image
from photosketch.pipeline import PhotoSketchPipeline, default_style

logger = logging.getLogger("photosketch.app")


class UserError(gr.Error):
    """A ``gr.Error`` for bad input: shown to the user, not logged with a traceback on the server."""

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__(message, title=title, print_exception=False)

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"

#: Uploads outside the library's one size limit (photosketch.image.MIN_SIDE / MAX_PIXELS, the same for the
#: CLI and the Python API) are refused before they are decoded, so memory stays bounded.
REFUSE_PIXELS = MAX_PIXELS_ACCEPTED
MIN_SIDE = MIN_SIDE_ACCEPTED
#: Accepted uploads above either of these are downscaled (with a warning) before processing: the models
#: work at 256 px, so 20 MP only costs the Space's 2 vCPUs time.
MAX_SIDE = 4096
MAX_PIXELS = 20_000_000
#: Webcam frames are sketched at this longer side (live mode favours speed over detail).
LIVE_SIDE = 320
#: Frames per second the browser sends in live mode; benchmarks/stream.py checks the handler keeps up.
LIVE_FPS = 20
#: With "Align the face", live frames find face landmarks every this many frames and reuse them in between.
LIVE_TRACK_EVERY = 5
#: Live frames search for faces on a 160 px copy with coarser scale steps, for faces of at least a fifth of
#: the frame (a webcam sitter): ~6 ms instead of ~36 ms a frame, with the same hits on CUFS faces.
LIVE_DETECTOR = {"max_side": 160, "scale_factor": 1.2, "min_face": 0.2}
#: Largest upload the server accepts at all (gradio refuses bigger files before they are stored).
MAX_FILE_SIZE = "50mb"
#: Jobs run at once (the free CPU Space has 2 vCPUs) and jobs allowed to wait.
CONCURRENCY = 2
QUEUE_SIZE = 32
#: Sketchpad canvas, pixels.
CANVAS = (512, 512)
#: Default brush width (px on the canvas; the toolbar's "Brush Size" slider changes it): a pencil line.
BRUSH_SIZE = 4
#: "Update while drawing" sends the drawing at most this often (seconds), one request in flight.
LIVE_DRAW_EVERY = 1.0
#: ... and is on by default because one update fits in this budget on 2 vCPUs (benchmarks/stream.py
#: measures it with the shipped sketch2photo for a 512 px canvas, PNG encoding included: 25-26 ms in three
#: runs on 2026-12-02 since save_png's fast zlib level, 82 ms before it on the same machine; 56 ms on 2026-12-06 with
#: the even backdrop, 38 ms without it, back to back; the card has the latest).
LIVE_DRAW_BUDGET_MS = 150
LIVE_DRAW_DEFAULT = True

#: A drawing counts as empty when no pixel is darker than this (white canvas, eraser marks).
_INK_LEVEL = 200


# --------------------------------------------------------------------------------------------
# Reading uploads


def _human_size(w: int, h: int) -> str:
    return f"{w}×{h} px ({w * h / 1e6:.1f} MP)"


def check_dimensions(w: int, h: int, name: str = "The image") -> None:
    """Refuse images outside the library's limits (:func:`photosketch.image.check_size`), in the app's words."""
    if w < MIN_SIDE or h < MIN_SIDE:
        raise UserError(f"{name} is only {w}×{h} px; please upload a picture at least {MIN_SIDE}×{MIN_SIDE} px.")
    if w * h > REFUSE_PIXELS:
        raise UserError(
            f"{name} is {_human_size(w, h)}, above the {REFUSE_PIXELS // 1_000_000} MP limit; "
            f"please resize it (at most {MAX_SIDE} px a side is plenty) and try again."
        )


def probe(path: str | os.PathLike, name: str | None = None) -> tuple[int, int, int]:
    """(width, height, frames) from the file header, without decoding the pixels."""
    name = name or Path(path).name
    try:
        with Image.open(path) as img:
            return img.width, img.height, int(getattr(img, "n_frames", 1) or 1)
    except Image.DecompressionBombError:
        raise UserError(f"{name} is far too large to process; please resize it and try again.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UserError(f"{name} is not an image I can read; please upload a PNG, JPEG or WebP picture.") from None


def fit(img: Image.Image, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, fast: bool = False) -> Image.Image:
    """Shrink ``img`` (keeping its aspect) to at most ``max_side`` a side and ``max_pixels`` in all.

    ``fast`` (webcam frames): PIL's box-filter ``reduce`` by the whole factor, then bilinear, instead of
    Lanczos; still antialiased, and a 640x480 frame costs about 3 ms less (a twelfth of the live budget)."""
    w, h = img.size
    scale = min(1.0, max_side / max(w, h), (max_pixels / (w * h)) ** 0.5)
    if scale >= 1.0:
        return img
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    if fast:
        return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def read_upload(path: str | os.PathLike, what: str = "photo") -> Image.Image:
    """Decode an uploaded file through ``photosketch.image.load_image``, with human errors.

    Raises ``gr.Error`` for anything that is not a usable image; downscales (and says so) images
    above :data:`MAX_SIDE` / :data:`MAX_PIXELS`; uses the first frame of animations (and says so).
    """
    name = Path(path).name
    w, h, frames = probe(path, name)
    check_dimensions(w, h, name)
    try:
        img = load_image(path)
    except ImageLoadError as exc:
        reason = str(exc).replace(str(path), name)  # the server's temp path means nothing to a user
        raise UserError(f"Could not read the {what}: {reason}. Please upload another picture.") from None
    if frames > 1:
        gr.Info(f"{name} is animated ({frames} frames); using its first frame.")
    return downscale_notice(img, name)


def downscale_notice(img: Image.Image, name: str = "The image") -> Image.Image:
    small = fit(img)
    if small.size != img.size:
        gr.Warning(f"{name} is {_human_size(*img.size)}; processing it downscaled to {small.width}×{small.height} px.")
    return small


def save_png(img: Image.Image, folder: str | os.PathLike) -> str:
    """Write ``img`` as ``<folder>/<sha256>/<name>.png`` atomically and return the path.

    Why not return the PIL image: gradio 6.31 caches a returned image under a hash of its bytes
    with a plain ``write_bytes``, so two requests that produce the same picture (two users
    clicking the same example) rewrite one file while a browser may be downloading it, and that
    download comes back truncated. Here the bytes go to a temporary name and are renamed into
    place, so a reader sees the old complete file or the new complete file. ``folder`` is inside
    gradio's cache, so gradio serves the file as is (and ``delete_cache`` ages it out).
    """
    buf = io.BytesIO()
    # zlib level 1, not Pillow's 6: on a 512x512 photo 25 ms instead of 116 ms (one CPU thread) for 19 % more
    # bytes (278 KB vs 234 KB); the encoding, not the model, was most of an "Update while drawing" tick.
    img.save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    target_dir = Path(folder) / hashlib.sha256(data).hexdigest()
    target = target_dir / ("sketch.png" if img.mode == "L" else "image.png")
    if target.is_file():
        os.utime(target)  # handed out again: restart its clock for gradio's delete_cache
    else:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=target_dir, prefix=".part-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(staging, target)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
    return str(target)


def _payload_paths(payload: Any) -> list[str]:
    """File paths inside an Image / ImageEditor payload (FileData, or an EditorData of them)."""
    if payload is None:
        return []
    path = getattr(payload, "path", None)
    if isinstance(path, str):
        return [path]
    paths = []
    for key in ("background", "composite"):
        paths += _payload_paths(getattr(payload, key, None))
    for layer in getattr(payload, "layers", None) or []:
        paths += _payload_paths(layer)
    return paths


def _decode_reason(exc: Exception, paths: list[str]) -> str:
    """Why a decoder failed, in the words ``load_image`` uses for the photo endpoint (the same file gets
    the same explanation on both tabs), with the server's temporary paths reduced to file names."""
    text = str(exc)
    if "truncated" in text.lower():
        return "the file is truncated (an incomplete upload or download?)"
    for path in paths:
        text = text.replace(path, Path(path).name)
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


def guard_uploads(component: gr.components.Component, what: str) -> gr.components.Component:
    """Make ``component`` reject unreadable or oversized uploads with a human ``gr.Error``.

    gradio decodes some inputs itself (the Sketchpad always does; an Image opens the header), and
    its own failures reach the user as a generic "Error". The header check runs before gradio
    decodes anything, so a decompression bomb or a 100-megapixel PNG never reaches memory.
    """
    original = component.preprocess

    def preprocess(payload):
        for path in _payload_paths(payload):
            w, h, _ = probe(path, f"The {what}")
            check_dimensions(w, h, f"The {what}")
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - anything gradio's decoder throws is "unreadable"
            logger.info("upload rejected: %s: %s", type(exc).__name__, exc)
            raise UserError(f"The {what} could not be read: {_decode_reason(exc, _payload_paths(payload))}; "
                            "please upload a PNG, JPEG or WebP picture.") from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


# --------------------------------------------------------------------------------------------
# Models


class SketchApp:
    """The Space's state: pipelines by model name (loaded once, on first use) and a face detector.

    Args:
        loader: ``name -> PhotoSketchPipeline`` (default: ``PhotoSketchPipeline.from_pretrained``,
            which resolves Hub id -> HF cache -> ``weights/<name>``).
    """

    def __init__(self, loader: Callable[[str], PhotoSketchPipeline] | None = None,
                 output_dir: str | os.PathLike | None = None) -> None:
        self._loader = loader or PhotoSketchPipeline.from_pretrained
        #: Results are written here (inside gradio's cache, which serves and ages them out).
        self.output_dir = Path(output_dir or Path(gr.utils.get_upload_folder()) / "photosketch")
        self._pipes: dict[str, PhotoSketchPipeline] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.detector = FaceDetector()
        self.live_detector = FaceDetector(**LIVE_DETECTOR)
        self.photo_models = available_models("photo2sketch")
        self.sketch_models = available_models("sketch2photo")

    def pipeline(self, name: str | None, direction: str) -> PhotoSketchPipeline:
        """The cached pipeline for ``name`` (default model of ``direction`` when empty)."""
        name = name or default_model(direction)
        spec = MODELS.get(name)
        if spec is not None and spec.direction != direction:
            raise UserError(f"{name} is a {spec.direction} model; pick a {direction} model.")
        pipe = self._pipes.get(name)
        if pipe is not None:
            return pipe
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:  # two first requests for the same model load it once
            pipe = self._pipes.get(name)
            if pipe is None:
                try:
                    pipe = self._loader(name)
                except ModelNotAvailableError as exc:
                    raise UserError(str(exc), title="Model not installed") from None
                except KeyError as exc:
                    raise UserError(str(exc.args[0]) if exc.args else f"unknown model {name!r}") from None
                logger.info("loaded %r", pipe)
                self._pipes[name] = pipe
        return pipe

    @property
    def loaded(self) -> list[str]:
        return sorted(self._pipes)

    # -- Photo -> Sketch ---------------------------------------------------------------------

    def photo_to_sketch(self, photo: str | None, model: str | None, face_crop: bool = True, strength: float = 0.5,
                        style: str | None = None, align: bool = True, background: bool = True):
        """An uploaded photo (a file path) -> (sketch, the picture it was made from)."""
        if not photo:
            raise UserError("Upload a photo first (or take one with the webcam, or paste one).")
        img = read_upload(photo, "photo")
        sketch, before = self._sketch(img, model, face_crop, strength, notify=True, style=style, align=bool(align),
                                      background=bool(background))
        return save_png(sketch, self.output_dir), before

    def styles(self, model: str | None) -> list[str]:
        """The drawing styles of a photo→sketch model (none for classical styles and unconditioned
        models), from the loaded pipeline or else the model's config.json (no weights are loaded)."""
        name = model or default_model("photo2sketch")
        pipe = self._pipes.get(name)
        return list(pipe.styles) if pipe is not None else model_styles(name)

    def style_picker(self, model: str | None, current: str | None):
        """The style radio and its previews for ``model``: shown only when the model has styles."""
        names = self.styles(model)
        value = current if current in names else default_style(names)
        return (gr.update(choices=names, value=value, visible=bool(names)),
                gr.update(value=style_previews(names), visible=bool(names)))

    def live_sketch(self, frame: np.ndarray | None, model: str | None, face_crop: bool, strength: float,
                    align: bool = False, track: FaceTrack | None = None, style: str | None = None):
        """A webcam frame -> (a sketch at :data:`LIVE_SIDE` px for speed, the face track for the next frame).

        With ``align`` the face is warped to the training layout and back, as for uploads, but its
        landmarks are found every :data:`LIVE_TRACK_EVERY` frames and reused in between (``track``,
        kept per visitor); the background is not whitened (per-frame speed first). ``style``: the
        style picker's choice, for a style-conditioned live model (others ignore it).
        """
        if frame is None:
            return None, track
        img = fit(load_image(frame), max_side=LIVE_SIDE, fast=True)
        if not align:
            return self._sketch(img, model, face_crop, strength, notify=False, detector=self.live_detector,
                                style=style, live=True)[0], None
        faces, track = track_faces(self.pipeline(model, "photo2sketch").aligner, img, track, every=LIVE_TRACK_EVERY)
        return self._sketch(img, model, False, strength, notify=False, style=style, align=True, found_faces=faces,
                            live=True)[0], track

    def _sketch(self, img: Image.Image, model: str | None, face_crop: bool, strength: float | None, notify: bool,
                detector: FaceDetector | None = None, style: str | None = None, align: bool = False,
                background: bool = False, found_faces: list | None = None, live: bool = False):
        pipe = self.pipeline(model, "photo2sketch")
        # A style applies to style-conditioned models only; others (classical styles, an unconditioned
        # model) draw their one style whatever the picker says.
        style = style if style and pipe.styles else None
        if style is not None and style not in pipe.styles:
            raise UserError(f"Unknown style {style!r}; {model or 'this model'} draws: {', '.join(pipe.styles)}.")
        if face_crop:
            crop, box = (detector or self.detector).crop(img)
            if box is None and notify:
                gr.Info("No face found; sketching the whole picture.")
            img = crop
        strength = None if strength is None or not pipe.takes_strength else float(np.clip(strength, 0.0, 1.0))
        # The live stream never whitens the background (per-frame speed first), aligns only with the
        # faces its track already found (found_faces) and always runs at the model's size (a face close
        # to the camera would otherwise cost up to twice as much per frame: uploads get max_size's detail);
        # under aligned faces its small frame runs as it is, not enlarged to the model's size (about
        # 4 ms of a 44 ms frame; the faces keep their model-size canvases).
        sketch = pipe(img, face_crop=False, strength=strength, style=style, align=align, background=background,
                      found_faces=found_faces, max_size=pipe.size if live else None, enlarge_surround=not live)
        # The "before" half of the before/after slider: what was sketched, at preview size.
        return sketch, fit(img, max_side=1024)

    def before_after(self, before: Image.Image | None, sketch: str | None):
        """The slider's pair: the picture that was sketched (preview size) and the sketch."""
        if before is None or not sketch:
            return None
        return save_png(before, self.output_dir), sketch

    # -- Sketch -> Photo ---------------------------------------------------------------------

    def sketch_to_photo(self, sketch: dict | str | Image.Image | None, model: str | None, seed: float | None = None,
                        background: bool = True):
        """A Sketchpad value (or an image) -> a photo; ``seed``: another face's colouring (None: the model's);
        ``background``: one even colour behind the person (False: the background the model paints)."""
        pipe = self.pipeline(model, "sketch2photo")
        img = sketch_image(sketch)
        return save_png(pipe(img, face_crop=False, seed=check_seed(seed), background=bool(background)), self.output_dir)

    def another_face(self, sketch: dict | str | Image.Image | None, model: str | None, seed: float | str | None,
                     background: bool = True):
        """The "Another face" button: the next seed, and the drawing's photo with it -> (photo, seed)."""
        current = check_seed(seed)  # None or "": the model's own colours so far
        seed = 0 if current is None else current + 1
        return self.sketch_to_photo(sketch, model, seed, background), seed

    def live_photo(self, sketch: dict | None, model: str | None, live: bool, last: str | None = None,
                   seed: float | None = None, background: bool = True):
        """A tick of the live-drawing timer -> (photo, key of what was drawn).

        Regenerates only when live mode is on, there is a drawing, and the drawing or the model changed
        since the last tick (``last``, kept per visitor in a ``gr.State``): an idle canvas costs no model run.
        """
        if not live or not self.sketch_models:
            return gr.skip(), gr.skip()
        try:
            img = sketch_image(sketch)
        except gr.Error:
            return gr.skip(), gr.skip()  # an empty canvas while drawing is not an error worth a pop-up
        key = hashlib.sha256(f"{model}|{seed}|{bool(background)}|{img.size}".encode() + img.tobytes()).hexdigest()
        if key == last:
            return gr.skip(), gr.skip()
        return self.sketch_to_photo(img, model, seed, background), key


def check_seed(seed: float | str | None) -> int | None:
    """An appearance seed from the app (the box gives a string; the API may send a number) -> int or None."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return None
    try:
        value = float(seed)
    except (TypeError, ValueError):
        raise UserError(f"The seed must be a whole number; got {seed!r}.") from None
    if not value.is_integer() or not 0 <= value < 2**32:
        raise UserError(f"The seed must be a whole number from 0 to {2**32 - 1}; got {seed!r}.")
    return int(value)


def sketch_image(value: dict | str | Image.Image | None) -> Image.Image:
    """The drawing from a Sketchpad value: its composite (or background), flattened on white, in 'L'.

    Raises ``gr.Error("Draw something first")`` for an empty or blank canvas.
    """
    img = value
    if isinstance(value, dict):
        img = value.get("composite")
        if img is None:
            img = value.get("background")
    if img is None:
        raise UserError("Draw something first (or pick an example sketch below).")
    if isinstance(img, (str, os.PathLike)):
        img = read_upload(img, "sketch")
    else:
        try:
            img = load_image(img)
        except ImageLoadError as exc:
            raise UserError(f"Could not read the sketch: {exc}.") from None
        img = downscale_notice(img, "The sketch")
    gray = img.convert("L")
    if min(gray.size) < MIN_SIDE:
        raise UserError(f"The sketch is only {gray.width}×{gray.height} px; draw on a larger canvas.")
    lo, _ = gray.getextrema()
    if lo >= _INK_LEVEL:
        raise UserError("Draw something first: the canvas is empty.")
    return gray


# --------------------------------------------------------------------------------------------
# The interface


def _model_choices(names: list[str]) -> list[tuple[str, str]]:
    return [(f"{n} — {MODELS[n].description}" if n in MODELS else n, n) for n in names]


def _supports_strength(name: str | None) -> bool:
    spec = MODELS.get(name or "")
    return spec is not None and spec.style is not None


def _examples(pattern: str) -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob(pattern))


#: What each style is, for the picker (FS2K's three artists and the CUFS sketches).
STYLE_LABELS = {
    "fs2k-1": "fs2k-1: light pencil lines",
    "fs2k-2": "fs2k-2: bold strokes, hair drawn",
    "fs2k-3": "fs2k-3: lines with soft shading",
    "cufs": "cufs: full tonal shading",
}


def _previewed(styles: list[str]) -> list[str]:
    return [s for s in styles if (EXAMPLES_DIR / "styles" / f"{s}.jpg").is_file()]


def style_previews(styles: list[str]) -> list[tuple[str, str]]:
    """(image, caption) per style from ``examples/styles/<style>.jpg`` (``scripts/make_style_sheet.py``
    draws them from a public-domain portrait); styles without a preview file are left out."""
    return [(str(EXAMPLES_DIR / "styles" / f"{s}.jpg"), STYLE_LABELS.get(s, s)) for s in _previewed(styles)]


DESCRIPTION = """\
# photosketch
Face photo → pencil sketch, and sketch → face photo. Runs on CPU; models come from the Hugging Face
Hub, the local cache or the weights shipped with this Space.
"""


def build_demo(app: SketchApp | None = None) -> gr.Blocks:
    """The Space's Blocks; the :class:`SketchApp` (models, detector) is kept as ``demo.photosketch``."""
    app = app or SketchApp()
    photo_default = default_model("photo2sketch") if app.photo_models else None
    photo_styles = app.styles(photo_default) if photo_default else []
    style_default = default_style(photo_styles)
    # The live stream defaults to the distilled real-time student when it is installed.
    live_default = default_model("photo2sketch", fast=True) if app.photo_models else None
    sketch_default = app.sketch_models[0] if app.sketch_models else None

    # delete_cache: results older than a day are removed every hour (a long-running Space's disk).
    with gr.Blocks(title="photosketch: face photo ↔ sketch", analytics_enabled=False,
                   delete_cache=(3600, 86400)) as demo:
        gr.Markdown(DESCRIPTION)
        with gr.Tab("Photo → Sketch", id="photo2sketch") as photo_tab:
            with gr.Row():
                with gr.Column():
                    photo = guard_uploads(
                        gr.Image(
                            sources=["upload", "webcam", "clipboard"],
                            type="filepath",
                            image_mode=None,  # keep the file as uploaded; load_image decodes it
                            label="Face photo",
                            elem_id="photo-input",
                        ),
                        "photo",
                    )
                    p_model = gr.Dropdown(
                        _model_choices(app.photo_models), value=photo_default, label="Model / style",
                        elem_id="photo-model", elem_classes="model-dropdown",
                    )
                    with gr.Row():
                        face_crop = gr.Checkbox(value=True, label="Crop to the face")
                        align = gr.Checkbox(value=True, label="Align the face", elem_id="photo-align",
                                            info="eyes, nose and mouth where the training faces had them")
                        background = gr.Checkbox(value=True, label="White background", elem_id="photo-background",
                                                 info="only the person is drawn")
                        strength = gr.Slider(
                            0.0, 1.0, value=0.5, step=0.05, label="Line strength",
                            info="classical styles only", interactive=_supports_strength(photo_default),
                        )
                    style = gr.Radio(
                        photo_styles, value=style_default, label="Drawing style", visible=bool(photo_styles),
                        info="the artist whose sketches the model learned; click a preview below to pick it",
                        elem_id="photo-style",
                    )
                    previews = gr.Gallery(
                        style_previews(photo_styles), label="Styles", columns=4, height=180, allow_preview=False,
                        buttons=[], interactive=False, visible=bool(photo_styles), elem_id="style-previews",
                    )
                    p_button = gr.Button("Sketch it", variant="primary", elem_id="photo-button")
                with gr.Column():
                    sketch_out = gr.Image(
                        label="Sketch", type="filepath", format="png", interactive=False,
                        buttons=["download", "fullscreen"], elem_id="sketch-output",
                    )
                    compare = gr.ImageSlider(label="Before / after", type="filepath", format="png", interactive=False)
            gr.Examples(
                _examples("photo_*.jpg") + _examples("face_*.png"),
                inputs=[photo],
                label="Example photos (a public-domain NASA portrait; synthetic faces made by scripts/make_examples.py, CC0)",
                elem_id="photo-examples",
                cache_examples=False,  # CPU Space: no example runs at start-up
            )
            with gr.Accordion("Live webcam", open=False):
                app_browser.live_block()  # the in-browser mode, or a note saying why it is unavailable
                gr.Markdown(f"**On the server** (the fallback): sketches webcam frames as they come ({LIVE_FPS} per "
                            f"second), downscaled to {LIVE_SIDE} px for speed. Crop, alignment and line strength follow "
                            f"the settings above (aligned faces: landmarks every {LIVE_TRACK_EVERY}th frame, no "
                            "background whitening).")
                live_model = gr.Dropdown(
                    _model_choices(app.photo_models), value=live_default, label="Live model",
                    info="photo2sketch-fast is distilled for real time", elem_id="live-model", elem_classes="model-dropdown",
                )
                with gr.Row():
                    cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="webcam")
                    live_out = gr.Image(label="Live sketch", interactive=False, format="jpeg", elem_id="live-sketch")
            before = gr.State()

        with gr.Tab("Sketch → Photo", id="sketch2photo") as sketch_tab:
            if not app.sketch_models:
                gr.Markdown(
                    "**No sketch → photo model is installed.** Train one with `train/pix2pix.py` "
                    "(see the README) and put it in `weights/sketch2photo`, or make the Hub repo "
                    "`photosketch/sketch2photo` available in the Hugging Face cache. "
                    "Until then this tab cannot generate photos.",
                    elem_id="no-sketch-model",
                )
            with gr.Row():
                with gr.Column():
                    pad = guard_uploads(
                        gr.Sketchpad(
                            value=Image.new("L", CANVAS, 255),  # a white sheet to draw on
                            type="pil",
                            image_mode="L",  # gradio flattens transparency on white for non-alpha modes
                            sources=("upload", "clipboard"),
                            brush=gr.Brush(default_size=BRUSH_SIZE, colors=["#000000"], default_color="#000000", color_mode="fixed"),
                            eraser=gr.Eraser(default_size=16),
                            canvas_size=CANVAS,
                            layers=False,
                            label="Draw a face (or upload a sketch)",
                            elem_id="sketchpad",
                        ),
                        "sketch",
                    )
                    s_model = gr.Dropdown(
                        _model_choices(app.sketch_models), value=sketch_default, label="Model",
                        interactive=bool(app.sketch_models), elem_id="sketch-model", elem_classes="model-dropdown",
                    )
                    with gr.Row():
                        live = gr.Checkbox(value=LIVE_DRAW_DEFAULT and bool(app.sketch_models), label="Update while drawing",
                                           elem_id="sketch-live")
                        s_button = gr.Button("Generate", variant="primary", elem_id="sketch-button")
                    with gr.Row():
                        # A Textbox, not a Number: Gradio's Number box shows (and sends) 0 for "no value", and
                        # seed 0 is a recolouring; empty must mean the model's own colours.
                        seed = gr.Textbox(value="", label="Appearance seed (empty: the model's colours)",
                                          placeholder="empty: the model's colours", max_lines=1, elem_id="sketch-seed")
                        another = gr.Button("Another face", elem_id="another-face")
                    even = gr.Checkbox(value=True, label="Even background", elem_id="photo-even-background",
                                       info="one plain colour behind the face; off: the background the model paints")
                with gr.Column():
                    photo_out = gr.Image(
                        label="Photo", type="filepath", format="png", interactive=False,
                        buttons=["download", "fullscreen"], elem_id="photo-output",
                    )
            # Examples go through a hidden image, then to the pad as a fresh value after clearing it: set
            # straight on the pad, the editor kept exporting the previous strokes while it loaded the example.
            example_sketch = gr.Image(type="filepath", visible=False)
            gr.Examples(
                _examples("sparse_*.png") + _examples("outline.png") + _examples("sketch_*.png"),
                inputs=[example_sketch],
                label="Example sketches to start from",
                elem_id="sketch-examples",
                cache_examples=False,
            )

        # Events. The API endpoints return exactly one image; the slider is filled by a UI-only step.
        p_model.change(lambda n: gr.update(interactive=_supports_strength(n)), p_model, strength,
                       api_visibility="private", queue=False)
        p_model.change(app.style_picker, [p_model, style], [style, previews], api_visibility="private")

        def pick_style(model: str | None, evt: gr.SelectData):
            """A click on a style preview selects that style."""
            names = _previewed(app.styles(model))
            return names[evt.index] if 0 <= evt.index < len(names) else gr.skip()

        previews.select(pick_style, [p_model], style, api_visibility="private", queue=False)
        p_button.click(
            app.photo_to_sketch, [photo, p_model, face_crop, strength, style, align, background], [sketch_out, before],
            api_name="photo_to_sketch",
            api_description="Face photo -> pencil sketch (PNG). strength in [0, 1] applies to classical styles; "
                            "style to style-conditioned models.",
        ).success(app.before_after, [before, sketch_out], compare, api_visibility="private", queue=False)
        live_track = gr.State(None)  # this visitor's face track (photosketch.align.FaceTrack)
        cam.stream(
            app.live_sketch, [cam, live_model, face_crop, strength, align, live_track, style], [live_out, live_track],
            stream_every=1 / LIVE_FPS, concurrency_limit=1, concurrency_id="live", time_limit=120,
            api_name="photo_to_sketch_live", api_visibility="undocumented", show_progress="hidden",
        )
        example_sketch.change(lambda: None, None, pad, api_visibility="private", queue=False).then(
            lambda path: {"background": path, "layers": [], "composite": path} if path else gr.skip(),
            example_sketch, pad, api_visibility="private", queue=False,
        )
        # Live drawing polls instead of listening to pad.change: any change/input listener switches the
        # editor into "realtime" mode, which uploads the whole canvas on every stroke (71 uploads in 24 s)
        # and keeps the last upload's id, so a Generate after picking an example could send that stale
        # drawing. The timer runs only while the box is ticked; a tick waits for the previous one.
        # It also runs only while the Sketch -> Photo tab is shown: the page opens on Photo -> Sketch, where a
        # visitor (or the in-browser webcam mode) should cause no requests at all.
        live_timer = gr.Timer(LIVE_DRAW_EVERY, active=False)
        on_sketch_tab = gr.State(False)
        sketch_tab.select(lambda on: (gr.Timer(active=bool(on)), True), live, [live_timer, on_sketch_tab],
                          api_visibility="private", queue=False)
        photo_tab.select(lambda: (gr.Timer(active=False), False), None, [live_timer, on_sketch_tab],
                         api_visibility="private", queue=False)
        live.change(lambda on, shown: gr.Timer(active=bool(on and shown)), [live, on_sketch_tab], live_timer,
                    api_visibility="private", queue=False)
        drawn = gr.State(None)  # what the last live update drew from, per visitor
        live_update = live_timer.tick(
            app.live_photo, [pad, s_model, live, drawn, seed, even], [photo_out, drawn], api_visibility="private",
            trigger_mode="once", show_progress="hidden",
        )
        # Generate and Another face cancel a live update still queued or running: it was read from the
        # canvas before the click (perhaps before an example replaced the drawing) and, with two requests
        # served at once, could otherwise land after the click's photo and put the old drawing's back.
        s_button.click(
            app.sketch_to_photo, [pad, s_model, seed, even], [photo_out], api_name="sketch_to_photo", cancels=[live_update],
            api_description="Sketch (a Sketchpad value; the composite image is used) -> face photo (PNG). "
                            "seed (optional): another face's skin tone and hair colour; background (default true): "
                            "one even colour behind the face.",
        )
        # Another face: the same drawing, the next seed's skin tone and hair colour.
        another.click(app.another_face, [pad, s_model, seed, even], [photo_out, seed], api_visibility="private",
                      cancels=[live_update])

    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    demo.photosketch = app  # the models live as long as the demo, not the module
    return demo


#: Long model names ("photo2sketch-fast (real-time)") ran under the dropdown's arrow on a phone: let the
#: text shrink beside the arrow and end in an ellipsis instead.
CSS = """
.model-dropdown .secondary-wrap { display: flex; align-items: center; }
.model-dropdown .secondary-wrap input { flex: 1 1 0; min-width: 0; width: auto; overflow: hidden;
                                        text-overflow: ellipsis; white-space: nowrap; }
.model-dropdown .icon-wrap { position: static; flex: none; }
"""


def launch_kwargs() -> dict[str, Any]:
    """Settings shared by ``python app.py``, the tests and the load benchmark."""
    return {"max_file_size": MAX_FILE_SIZE, "show_error": False, "css": CSS, **app_browser.launch_kwargs()}


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (like ``MALLOC_ARENA_MAX=2``) for this server process.

    gradio runs each request on a worker thread and glibc gives busy threads their own arenas,
    so after bursts of concurrent uploads the freed memory stays spread over many arenas: in
    benchmarks/load.py the server's RSS kept creeping up (+70 MiB over six bursts of 32 requests);
    with 2 arenas it levels off ~50 MiB above the warm-up figure. A no-op off glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, int(arenas))  # -8 = M_ARENA_MAX (malloc.h)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if "MALLOC_ARENA_MAX" not in os.environ:
        limit_malloc_arenas()
    build_demo().launch(
        # This machine only, unless asked: Spaces (and Docker users) set GRADIO_SERVER_NAME=0.0.0.0.
        server_name=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(),
    )
