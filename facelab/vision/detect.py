"""Face detection and 68-point landmarks behind one interface.

A :class:`LandmarkDetector` takes an image (anything :func:`~facelab.vision.load_image`
accepts) and returns a list of :class:`Face`: a box, 68 iBUG landmarks in **full-resolution
pixel coordinates** (pixel centres at +0.5) and a score. Implementations:

* :class:`DlibDetector` (offline default): dlib's HOG + linear SVM detector (or its MMOD
  CNN, ``DlibConfig(method="cnn")``) and its
  ensemble-of-regression-trees 68-point shape predictor
  (``shape_predictor_68_face_landmarks.dat``, found with
  ``facelab.data.find_file("dlib-models", ...)``). Detection runs on a copy downscaled to
  ``max_side`` pixels; landmarks are predicted on the full-resolution image.
* :class:`~facelab.vision.fan.FANDetector` (face-alignment's FAN, 2-D or 3-D), for users
  online: its weights download on first use.

:func:`detect_faces` applies a policy for several faces: ``"largest"`` (default),
``"all"``, ``"single"`` (raise :class:`~facelab.errors.MultipleFacesFound` if more than
one) or an integer index into the faces sorted left to right. Nothing detected raises
:class:`~facelab.errors.NoFaceFound`.
"""

from __future__ import annotations

import abc
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import AssetMissing, BackendUnavailable, InvalidInput, MultipleFacesFound, NoFaceFound
from .image import Image, ImageLike, load_image


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float32 ``[x0, y0, x1, y1]`` in pixels (edges, not centres).
        landmarks: ``(68, 2)`` float32 iBUG landmarks, pixel centres at +0.5.
        score: detector confidence (dlib: SVM margin; FAN: mean heatmap peak).
        detector: name of the backend that produced it.
        landmarks_3d: ``(68, 3)`` for 3-D landmark models (x, y in pixels, z relative).
        extra: backend-specific details (e.g. dlib's sub-detector index).
    """

    box: torch.Tensor
    landmarks: torch.Tensor
    score: float
    detector: str = ""
    landmarks_3d: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def area(self) -> float:
        w = float(self.box[2] - self.box[0])
        h = float(self.box[3] - self.box[1])
        return max(w, 0.0) * max(h, 0.0)

    def to_json(self) -> dict:
        """Plain-Python dict: ``box``, ``score``, ``landmarks`` (68 [x, y]), ``detector``."""
        d = {
            "box": [round(float(v), 3) for v in self.box],
            "score": round(float(self.score), 6),
            "landmarks": [
                [round(float(x), 3), round(float(y), 3)] for x, y in self.landmarks.tolist()
            ],
            "detector": self.detector,
        }
        if self.landmarks_3d is not None:
            d["landmarks_3d"] = [
                [round(float(v), 3) for v in p] for p in self.landmarks_3d.tolist()
            ]
        return d


class LandmarkDetector(abc.ABC):
    """Interface: ``detect(image) -> list[Face]`` (all faces, any order)."""

    name: str = "base"

    @abc.abstractmethod
    def detect(self, image: ImageLike) -> list[Face]:
        """All faces in ``image`` with boxes, 68 landmarks and scores."""

    def __call__(self, image: ImageLike) -> list[Face]:
        return self.detect(image)


def dlib_model_path(filename: str) -> Path:
    """Path of a dlib model file (``*.dat``) via the ``"dlib-models"`` asset.

    Looks in the facelab data directories and in an installed ``face_recognition_models``
    package (found by path; importing it fails on current setuptools).
    """
    try:
        from ..data import require

        return require("dlib-models", filename)  # downloads on first use
    except AssetMissing as e:
        err: Exception = e
    except (FileNotFoundError, KeyError, ValueError) as e:  # registry not available
        err = e
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "models" / filename
            if p.is_file():
                return p
    if isinstance(err, AssetMissing):
        raise err
    raise AssetMissing(
        f"dlib model {filename!r} not found. Install it with: pip install face-recognition-models "
        f"(or put {filename} in $FACELAB_DATA/dlib-models/; source: https://dlib.net/files/)"
    )


def _import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise BackendUnavailable(
            "the dlib face detector needs dlib: pip install dlib-bin face-recognition-models "
            "(or pip install 'facelab[vision]')"
        ) from e
    return dlib


@dataclass
class DlibConfig:
    """Settings of :class:`DlibDetector`.

    Attributes:
        method: ``"hog"`` (HOG + linear SVM, fast, frontal faces) or ``"cnn"`` (dlib's MMOD
            CNN, ``mmod_human_face_detector.dat``: finds more poses, ~50x slower on CPU).
        max_side: detection runs on a copy whose longer side is at most this.
        upsample: HOG pyramid upsampling (finds smaller faces, slower), or ``"auto"``:
            0 if the detection copy's shorter side is >= 400 px, 1 if >= 150, else 2.
        threshold: SVM margin threshold (dlib's ``adjust_threshold``; lower finds more).
    """

    method: str = "hog"
    max_side: int | None = 1024
    upsample: int | str = "auto"
    threshold: float = 0.0


#: MMOD CNN box -> HOG-like box: scale about the centre, then shift down (x box height),
#: measured on 10 world faces both detectors found (256 px; scale 0.94-1.36, shift -0.02-0.18)
CNN_TO_HOG_SCALE = 1.08
CNN_TO_HOG_SHIFT = 0.09
#: ... and shift right (x box width): dlib's MMOD boxes are not mirror-symmetric, they sit
#: this far left of the mirror image's box mapped back (median of 52 world faces |yaw| < 45,
#: 256 px, sd 0.024). Without it the 68-point predictor's points on faces turned to the
#: image's right were ~3x worse than on the same faces mirrored (issue 11).
CNN_TO_HOG_SHIFT_X = 0.056
#: HOG-like box of a 68-point shape (``hog_box_from_landmarks``): its side over the
#: square root of the landmarks' box area (median of 58 HOG boxes on world faces |yaw| < 45,
#: the detections and their mirror images), centred on the mean of the 51 inner points
LANDMARKS_TO_HOG_SCALE = 1.084
#: predictor passes after the first on a CNN box, each in the HOG-like box of the last
CNN_REFINE_PASSES = 2


def cnn_box_to_hog(box: torch.Tensor) -> torch.Tensor:
    """Map an MMOD CNN box ``[x0, y0, x1, y1]`` to the box dlib's HOG detector would give,
    which is what the 68-point shape predictor was trained on.

    ``c' = c + (0.056 w, 0.09 h)``, half-size ``1.08 (w, h) / 2`` (``CNN_TO_HOG_*``).
    """
    c = (box[:2] + box[2:]) / 2
    size = box[2:] - box[:2]
    half = size / 2 * CNN_TO_HOG_SCALE
    c = c + torch.stack([CNN_TO_HOG_SHIFT_X * size[0], CNN_TO_HOG_SHIFT * size[1]])
    return torch.cat([c - half, c + half])


def hog_box_from_landmarks(landmarks: torch.Tensor) -> torch.Tensor:
    """The box dlib's HOG detector gives for a face with these 68 points: a square of side
    ``1.084 sqrt(w h)`` (``w, h`` the points' box) centred on the mean of the inner points
    17..67. Re-running the predictor in it moves a CNN box to where the predictor expects it
    on a turned face (the CNN box is centred on the head, HOG's on the visible features)."""
    lm = landmarks.float()
    c = lm[17:].mean(0)
    span = lm.amax(0) - lm.amin(0)
    half = LANDMARKS_TO_HOG_SCALE * (span[0] * span[1]).clamp_min(0).sqrt() / 2
    return torch.cat([c - half, c + half])


class DlibDetector(LandmarkDetector):
    """dlib HOG face detector + 68-point shape predictor (runs offline)."""

    name = "dlib"

    def __init__(self, config: DlibConfig | None = None, predictor_path: str | Path | None = None):
        dlib = _import_dlib()
        self.config = config or DlibConfig()
        path = (
            Path(predictor_path)
            if predictor_path
            else dlib_model_path("shape_predictor_68_face_landmarks.dat")
        )
        if self.config.method == "hog":
            self._detector = dlib.get_frontal_face_detector()
        elif self.config.method == "cnn":
            cnn = dlib_model_path("mmod_human_face_detector.dat")
            self._detector = dlib.cnn_face_detection_model_v1(str(cnn))
        else:
            raise InvalidInput(
                f"DlibConfig.method must be 'hog' or 'cnn', got {self.config.method!r}"
            )
        self._predictor = dlib.shape_predictor(str(path))
        self._dlib = dlib
        self.name = "dlib-cnn" if self.config.method == "cnn" else "dlib"

    def with_config(self, config: DlibConfig) -> DlibDetector:
        """A detector with other settings sharing this one's loaded shape predictor."""
        new = object.__new__(DlibDetector)
        new.__dict__.update(self.__dict__)
        new.config = config
        new.name = "dlib-cnn" if config.method == "cnn" else "dlib"
        if config.method != self.config.method:
            new._detector = (
                self._dlib.get_frontal_face_detector()
                if config.method == "hog"
                else self._dlib.cnn_face_detection_model_v1(
                    str(dlib_model_path("mmod_human_face_detector.dat"))
                )
            )
        return new

    def _upsample(self, h: int, w: int) -> int:
        up = self.config.upsample
        if up == "auto":
            m = min(h, w)
            return 0 if m >= 400 else (1 if m >= 150 else 2)
        if not isinstance(up, int) or up < 0:
            raise InvalidInput(f"upsample must be a non-negative int or 'auto', got {up!r}")
        return up

    def detect_boxes(self, image: ImageLike) -> list[tuple[torch.Tensor, float, int]]:
        """Boxes ``[x0, y0, x1, y1]`` (full-resolution pixels), scores and sub-detector ids."""
        img = load_image(image)
        small, s = img.for_detection(self.config.max_side)
        up = self._upsample(*small.shape[:2])
        if self.config.method == "cnn":
            dets = [d for d in self._detector(small, up) if d.confidence >= self.config.threshold]
            rects, scores, idx = (
                [d.rect for d in dets],
                [d.confidence for d in dets],
                [0] * len(dets),
            )
        else:
            rects, scores, idx = self._detector.run(small, up, self.config.threshold)
        out = []
        for r, sc, i in zip(rects, scores, idx):
            # dlib rectangles are inclusive pixel indices -> edges [left, right + 1)
            b = (
                torch.tensor(
                    [r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=torch.float32
                )
                / s
            )
            out.append((b, float(sc), int(i)))
        return out

    def landmarks_in_box(self, image: ImageLike, box: torch.Tensor) -> torch.Tensor:
        """68 landmarks ``(68, 2)`` predicted inside ``box`` on the full-resolution image."""
        img = load_image(image)
        full = img.to_uint8()
        x0, y0, x1, y1 = (float(v) for v in box)
        rect = self._dlib.rectangle(
            round(x0), round(y0), max(round(x1) - 1, round(x0)), max(round(y1) - 1, round(y0))
        )
        shape = self._predictor(full, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32) + 0.5
        return torch.from_numpy(pts)

    def detect(self, image: ImageLike) -> list[Face]:
        img = load_image(image)
        faces = []
        for b, sc, i in self.detect_boxes(img):
            # the 68-point predictor was trained on HOG boxes; MMOD's sit higher, tighter and
            # to the left, and do not follow the visible features of a turned face
            if self.config.method == "cnn":
                lm = self.landmarks_in_box(img, cnn_box_to_hog(b))
                for _ in range(CNN_REFINE_PASSES):
                    lm = self.landmarks_in_box(img, hog_box_from_landmarks(lm))
            else:
                lm = self.landmarks_in_box(img, b)
            faces.append(
                Face(box=b, landmarks=lm, score=sc, detector=self.name, extra={"subdetector": i})
            )
        return faces


def select_faces(faces: list[Face], policy: str | int = "largest") -> list[Face]:
    """Apply a several-faces policy: ``"largest"``, ``"all"``, ``"single"`` or an index.

    ``"all"`` and integer indices order faces left to right (by box centre x) so that an
    index means the same face from run to run. Raises :class:`NoFaceFound` for an empty
    list, :class:`MultipleFacesFound` for ``"single"`` with several faces, and
    :class:`InvalidInput` for an index out of range.
    """
    if not faces:
        raise NoFaceFound(
            "no face detected; check that the face is upright and at least ~80 px wide, "
            "or lower the detector threshold / increase upsampling (DlibConfig)"
        )
    ordered = sorted(faces, key=lambda f: float(f.box[0] + f.box[2]))
    if policy == "all":
        return ordered
    if policy == "largest":
        return [max(faces, key=lambda f: f.area)]
    if policy == "single":
        if len(faces) > 1:
            raise MultipleFacesFound(
                f"{len(faces)} faces detected but exactly one was required; use policy "
                "'largest', 'all' or a face index"
            )
        return list(faces)
    if isinstance(policy, int) and not isinstance(policy, bool):
        if not -len(ordered) <= policy < len(ordered):
            raise InvalidInput(f"face index {policy} out of range: {len(ordered)} faces detected")
        return [ordered[policy]]
    raise InvalidInput(f"unknown face policy {policy!r}; use 'largest', 'all', 'single' or an int")


class CascadeDetector(LandmarkDetector):
    """Try detectors in order; the first that finds a face answers.

    ``get_detector("auto")`` is dlib's HOG (fast, frontal) then dlib's MMOD CNN (slower, finds
    turned faces HOG misses): the cost of the CNN is paid only on photos HOG finds nothing in.
    """

    name = "cascade"

    def __init__(self, detectors: list[LandmarkDetector]):
        if not detectors:
            raise InvalidInput("CascadeDetector needs at least one detector")
        self.detectors = list(detectors)

    def detect(self, image: ImageLike) -> list[Face]:
        img = load_image(image)
        for det in self.detectors:
            faces = det.detect(img)
            if faces:
                return faces
        return []


#: names accepted by :func:`get_detector` (and ``facelab fit --detector``)
DETECTOR_NAMES = ("dlib", "dlib-hog", "dlib-cnn", "auto", "fan", "fan3d")

_DEFAULT: dict[str, LandmarkDetector] = {}


def get_detector(name: str = "dlib", **kwargs) -> LandmarkDetector:
    """A detector by name.

    * ``"dlib"`` / ``"dlib-hog"``: dlib's HOG detector + 68-point predictor (offline, fast,
      frontal faces: misses many faces turned beyond ~30 degrees);
    * ``"dlib-cnn"``: dlib's MMOD CNN detector (``mmod_human_face_detector.dat``, shipped by
      ``face-recognition-models``) + the same predictor (offline, finds turned faces);
    * ``"auto"``: HOG, then the CNN when HOG finds no face (:class:`CascadeDetector`);
    * ``"fan"`` / ``"fan3d"``: face-alignment's FAN (downloads its weights on first use).

    Without keyword arguments the instance is cached (loading dlib's predictor takes ~1 s).
    """
    if not kwargs and name in _DEFAULT:
        return _DEFAULT[name]
    if name in ("dlib", "dlib-hog"):
        det: LandmarkDetector = DlibDetector(**kwargs)
    elif name == "dlib-cnn":
        cfg = kwargs.pop("config", None) or DlibConfig(method="cnn")
        det = DlibDetector(config=replace(cfg, method="cnn"), **kwargs)
    elif name == "auto":
        hog = get_detector("dlib-hog", **kwargs)
        cnn = hog.with_config(replace(hog.config, method="cnn"))
        det = CascadeDetector([hog, cnn])
    elif name in ("fan", "fan2d", "fan3d"):
        from .fan import FANDetector

        det = FANDetector(landmarks_type="3D" if name == "fan3d" else "2D", **kwargs)
    else:
        raise InvalidInput(f"unknown detector {name!r}; use one of {', '.join(DETECTOR_NAMES)}")
    if not kwargs:
        _DEFAULT[name] = det
    return det


def detect_faces(
    image: ImageLike | Image,
    detector: LandmarkDetector | str = "dlib",
    policy: str | int = "largest",
) -> list[Face]:
    """Detect faces and their 68 landmarks, then apply ``policy`` (see :func:`select_faces`)."""
    det = get_detector(detector) if isinstance(detector, str) else detector
    return select_faces(det.detect(load_image(image)), policy)


def detect_face(
    image: ImageLike | Image,
    detector: LandmarkDetector | str = "dlib",
    policy: str | int = "largest",
) -> Face:
    """The one face chosen by ``policy`` (default: the largest)."""
    if policy == "all":
        raise InvalidInput("detect_face returns one face; use detect_faces(policy='all')")
    return detect_faces(image, detector, policy)[0]


__all__ = [
    "DETECTOR_NAMES",
    "CascadeDetector",
    "DlibConfig",
    "DlibDetector",
    "Face",
    "LandmarkDetector",
    "detect_face",
    "detect_faces",
    "dlib_model_path",
    "get_detector",
    "select_faces",
]
