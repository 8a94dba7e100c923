"""face-alignment's FAN (Bulat & Tzimiropoulos 2017) as a facelab :class:`LandmarkDetector`.

For users online: ``pip install face-alignment`` (needs numba; facelab uses only its network
definitions and weight URLs). The pretrained weights (2DFAN-4, 3DFAN-4 and, for 3-D, the
depth ResNet) are downloaded by face-alignment on first use into
``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints``). Offline, construction
fails with :class:`~facelab.errors.DownloadError` naming the files and where to put them.

Pipeline, per face (as face-alignment does it, with continuous coordinates):

1. a box from a box detector (default: facelab's dlib HOG, offline);
2. centre :math:`c` = box centre moved up by :math:`0.12 h_{box}`, crop side
   :math:`h = 200 s` with :math:`s = (w_{box} + h_{box}) / 195`; the square is resampled to
   256x256 (:func:`~facelab.vision.align.warp_to_crop`);
3. FAN predicts 68 heatmaps of 64x64 (averaged with the left-right flipped input's, if
   ``flip_input``); each point is the heatmap arg-max moved a quarter pixel towards the
   higher neighbour; the score is the heatmap maximum;
4. heatmap coordinates map back to the photo with the crop's inverse similarity;
5. 3-D: a depth ResNet takes the crop plus Gaussian heatmaps of the points and predicts
   :math:`z` per point, scaled by :math:`h / 256` to photo pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import BackendUnavailable, DownloadError, InvalidInput, ModelFormatError
from .align import apply_transform, invert_transform, warp_to_crop
from .detect import Face, LandmarkDetector
from .image import ImageLike, load_image

CROP = 256
HEATMAP = 64
REFERENCE_SCALE = 195.0
CENTER_Y_OFFSET = 0.12
#: iBUG-68 left-right mirror permutation (for flipped-input test-time augmentation)
MIRROR_68 = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19, 18,
    17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54,
    53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip


def _import_face_alignment():
    try:
        import face_alignment  # noqa: F401
        from face_alignment.models import FAN, ResNetDepth
    except ImportError as e:
        raise BackendUnavailable(
            "the FAN landmark detector needs face-alignment: pip install face-alignment "
            "(its pretrained weights then download on first use; offline, use detector='dlib')"
        ) from e
    return FAN, ResNetDepth


def fan_weight_urls() -> dict[str, str]:
    """face-alignment's weight URLs by name (``2DFAN-4``, ``3DFAN-4``, ``depth``)."""
    from face_alignment.api import models_urls

    return dict(models_urls)


def download_fan_weights(name: str) -> dict:
    """State dict of FAN weights ``name``, downloaded (once) by face-alignment.

    Raises :class:`DownloadError` offline, saying which file to fetch and where to put it.
    """
    from face_alignment.utils import load_file_from_url
    from torch.hub import get_dir

    url = fan_weight_urls()[name]
    try:
        path = load_file_from_url(url)
    except Exception as e:  # URLError, socket timeouts, HTTP errors ...
        dest = f"{get_dir()}/checkpoints/{url.rsplit('/', 1)[-1]}"
        raise DownloadError(
            f"could not download the FAN weights {name!r} from {url} ({type(e).__name__}: {e}).\n"
            f"  face-alignment downloads them on first use; offline, download that file by hand and "
            f"save it as {dest} (or set TORCH_HOME). Without them use the offline dlib detector "
            "(facelab landmarks --detector dlib, or get_detector('dlib'))."
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFormatError(
            f"{path}: cannot read the FAN weights safely ({e}); delete it and retry"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = {k.replace("module.", ""): v for k, v in state["state_dict"].items()}
    return state


def decode_heatmaps(hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps ``(B, N, H, W)`` -> points ``(B, N, 2)`` in heatmap coordinates, scores ``(B, N)``.

    The arg-max pixel :math:`(i, j)` gives :math:`(j + 0.5, i + 0.5)` (pixel centres at
    +0.5), moved by :math:`\\pm 0.25` towards the larger neighbour in x and in y (interior
    pixels only), as face-alignment does.
    """
    B, N, H, W = hm.shape
    flat = hm.reshape(B, N, H * W)
    score, idx = flat.max(-1)
    iy = torch.div(idx, W, rounding_mode="floor")
    ix = idx - iy * W
    pts = torch.stack([ix, iy], -1).to(hm.dtype) + 0.5
    inner = (ix > 0) & (ix < W - 1) & (iy > 0) & (iy < H - 1)
    ixc, iyc = ix.clamp(1, W - 2), iy.clamp(1, H - 2)

    def at(y, x):
        return torch.gather(flat, 2, (y * W + x)[..., None])[..., 0]

    dx = at(iyc, ixc + 1) - at(iyc, ixc - 1)
    dy = at(iyc + 1, ixc) - at(iyc - 1, ixc)
    off = torch.stack([torch.sign(dx), torch.sign(dy)], -1) * 0.25
    pts = pts + torch.where(inner[..., None], off, torch.zeros_like(off))
    return pts, score


def fan_crop_transform(box: torch.Tensor) -> torch.Tensor:
    """Photo -> 256x256 FAN crop similarity ``(2, 3)`` from a box ``[x0, y0, x1, y1]``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    cy = (y0 + y1) / 2 - h * CENTER_Y_OFFSET
    side = 200.0 * (w + h) / REFERENCE_SCALE
    s = CROP / side
    return torch.tensor(
        [[s, 0.0, CROP / 2 - s * cx], [0.0, s, CROP / 2 - s * cy]], dtype=torch.float64
    )


class FANDetector(LandmarkDetector):
    """68 landmarks from face-alignment's FAN (2-D, or 3-D with its depth network).

    Args:
        landmarks_type: ``"2D"`` or ``"3D"``.
        network_size: number of stacked hourglasses (4 for the released weights).
        flip_input: average with the mirrored crop's heatmaps.
        box_detector: anything with ``detect_boxes(image) -> [(box, score, id)]``
            (default: :class:`~facelab.vision.DlibDetector`, offline).
        weights_loader: ``name -> state_dict`` (default: :func:`download_fan_weights`);
            tests pass a stub.
        network / depth_network: prebuilt modules (skip building and loading weights).
        device: where the networks run (default CPU).
    """

    def __init__(
        self,
        landmarks_type: str = "2D",
        network_size: int = 4,
        flip_input: bool = True,
        box_detector=None,
        weights_loader: Callable[[str], dict] | None = None,
        network: torch.nn.Module | None = None,
        depth_network: torch.nn.Module | None = None,
        device: str | torch.device = "cpu",
    ):
        if landmarks_type not in ("2D", "3D"):
            raise InvalidInput(f"landmarks_type must be '2D' or '3D', got {landmarks_type!r}")
        self.landmarks_type = landmarks_type
        self.name = "fan3d" if landmarks_type == "3D" else "fan"
        self.flip_input = flip_input
        self.device = torch.device(device)
        loader = weights_loader or download_fan_weights
        if network is None or (landmarks_type == "3D" and depth_network is None):
            FAN, ResNetDepth = _import_face_alignment()
        if network is None:
            network = FAN(network_size)
            network.load_state_dict(loader(f"{landmarks_type}FAN-{network_size}"))
        self.network = network.to(self.device).eval()
        self.depth_network = None
        if landmarks_type == "3D":
            if depth_network is None:
                depth_network = ResNetDepth()
                depth_network.load_state_dict(loader("depth"))
            self.depth_network = depth_network.to(self.device).eval()
        if box_detector is None:
            from .detect import DlibDetector

            box_detector = DlibDetector()
        self.box_detector = box_detector

    def _heatmaps(self, crops: torch.Tensor) -> torch.Tensor:
        out = self.network(crops)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        if self.flip_input:
            fo = self.network(crops.flip(-1))
            if isinstance(fo, (list, tuple)):
                fo = fo[-1]
            out = out + fo[:, list(MIRROR_68)].flip(-1)
        return out

    @torch.no_grad()
    def landmarks_in_boxes(self, image: ImageLike, boxes: list[torch.Tensor]):
        """``(B, 68, 2)`` landmarks, ``(B, 68)`` scores and ``(B, 68, 3)`` or None, one per box."""
        img = load_image(image)
        if not boxes:
            return torch.zeros(0, 68, 2), torch.zeros(0, 68), None
        M = torch.stack([fan_crop_transform(b) for b in boxes])  # (B, 2, 3) float64
        x = img.tensor.to(self.device)
        crops = warp_to_crop(x.double(), M.to(self.device), CROP, antialias=True).float()
        hm = self._heatmaps(crops).float()
        if hm.shape[1:] != (68, HEATMAP, HEATMAP):
            raise ModelFormatError(
                f"FAN network returned heatmaps {tuple(hm.shape)}, expected (B, 68, 64, 64)"
            )
        pts_hm, scores = decode_heatmaps(hm.cpu())
        q = pts_hm.double() * (CROP / HEATMAP)  # crop pixels
        pts = apply_transform(invert_transform(M), q)
        pts3 = None
        if self.depth_network is not None:
            from face_alignment.utils import draw_gaussian

            g = np.zeros((len(boxes), 68, CROP, CROP), np.float32)
            for b in range(len(boxes)):
                for j in range(68):
                    if q[b, j, 0] > 0 and q[b, j, 1] > 0:
                        draw_gaussian(g[b, j], q[b, j].numpy(), 2)
            depth_in = torch.cat([crops, torch.from_numpy(g).to(self.device)], 1)
            z = self.depth_network(depth_in).float().cpu().reshape(len(boxes), 68, 1)
            side = CROP / M[:, 0, 0].float()  # crop side in photo pixels
            pts3 = torch.cat([pts.float(), z * (side / CROP)[:, None, None]], -1)
        return pts.float(), scores, pts3

    def detect(self, image: ImageLike) -> list[Face]:
        img = load_image(image)
        found = self.box_detector.detect_boxes(img)
        boxes = [b for b, _, _ in found]
        lms, scores, lm3 = self.landmarks_in_boxes(img, boxes)
        faces = []
        for i, (b, sc, _sub) in enumerate(found):
            faces.append(
                Face(
                    box=b,
                    landmarks=lms[i],
                    score=float(sc),
                    detector=self.name,
                    landmarks_3d=None if lm3 is None else lm3[i],
                    extra={
                        "landmark_scores": scores[i],
                        "box_detector": getattr(self.box_detector, "name", ""),
                    },
                )
            )
        return faces


__all__ = [
    "FANDetector",
    "MIRROR_68",
    "decode_heatmaps",
    "download_fan_weights",
    "fan_crop_transform",
    "fan_weight_urls",
]
