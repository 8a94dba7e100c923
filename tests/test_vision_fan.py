"""The face-alignment (FAN) adapter, tested offline: stubbed weights and injected networks."""

from __future__ import annotations

import sys

import pytest
import torch

from facelab.errors import BackendUnavailable, DownloadError
from facelab.vision import samples
from facelab.vision.align import apply_transform
from facelab.vision.fan import MIRROR_68, FANDetector, decode_heatmaps, fan_crop_transform


def _gauss_maps(pts_hm: torch.Tensor, size: int = 64, sigma: float = 1.5) -> torch.Tensor:
    """Heatmaps ``(1, N, size, size)`` with Gaussians at ``pts_hm (N, 2)`` (centres at +0.5)."""
    c = torch.arange(size, dtype=torch.float64) + 0.5
    gx = torch.exp(-((c[None, :] - pts_hm[:, :1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((c[None, :] - pts_hm[:, 1:]) ** 2) / (2 * sigma**2))
    return (gy[:, :, None] * gx[:, None, :])[None].float()


class _FixedHeatmaps(torch.nn.Module):
    """A stand-in network that returns given heatmaps whatever the input."""

    def __init__(self, hm):
        super().__init__()
        self.register_buffer("hm", hm)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return [self.hm.expand(x.shape[0], -1, -1, -1)]


class _Boxes:
    name = "fixed"

    def __init__(self, box):
        self.box = box

    def detect_boxes(self, image):
        return [(self.box, 1.0, 0)]


def test_decode_heatmaps_known_answer():
    pts = torch.tensor([[20.5, 40.5], [10.2, 5.9], [0.5, 63.5]], dtype=torch.float64)
    p, s = decode_heatmaps(_gauss_maps(pts))
    # arg-max pixel centre, moved 0.25 towards the larger neighbour; border points not moved
    torch.testing.assert_close(
        p[0].double(), torch.tensor([[20.5, 40.5], [10.25, 5.75], [0.5, 63.5]], dtype=torch.float64)
    )
    assert s.shape == (1, 3) and float(s.min()) > 0.9


def test_fan_plumbing_maps_heatmaps_back_to_the_photo():
    pytest.importorskip("face_alignment")
    s = samples.takeo()
    gt = s.landmarks.double()
    box = torch.tensor([36.0, 76.0, 127.0, 167.0])
    M = fan_crop_transform(box)
    pts_hm = apply_transform(M, gt) / 4.0  # photo -> crop -> heatmap coordinates
    net = _FixedHeatmaps(_gauss_maps(pts_hm))
    det = FANDetector(network=net, flip_input=False, box_detector=_Boxes(box))
    faces = det.detect(s.image)
    assert len(faces) == 1 and faces[0].detector == "fan"
    lm = faces[0].landmarks.double()
    side = 256 / float(M[0, 0])
    err = (lm - gt).norm(dim=-1)
    # heatmap quantisation: at most a quarter heatmap pixel per axis = side / 256 px
    assert float(err.max()) < side / 256 * 1.5, float(err.max())
    assert faces[0].extra["landmark_scores"].shape == (68,)


def test_fan_flip_averaging_uses_the_mirror_permutation():
    fa_utils = pytest.importorskip("face_alignment.utils")
    assert (
        list(MIRROR_68) == fa_utils.shuffle_lr(torch.arange(68)[:, None, None]).reshape(-1).tolist()
    )
    # a network that predicts the mirrored heatmaps for the flipped input is flip-consistent:
    # averaging must then reproduce exactly twice the unflipped heatmaps.
    pts = (
        torch.rand(68, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 50 + 7
    )
    hm = _gauss_maps(pts)
    mirrored = hm[:, list(MIRROR_68)].flip(-1)

    class Equivariant(torch.nn.Module):
        def forward(self, x):
            flipped = bool(x[0, 0, 0, 0] < x[0, 0, 0, -1])
            return mirrored if flipped else hm

    x = torch.zeros(1, 3, 256, 256)
    x[..., 0] = 1.0  # left column bright: its flip is recognisable
    det = FANDetector(network=Equivariant(), flip_input=True, box_detector=_Boxes(torch.zeros(4)))
    torch.testing.assert_close(det._heatmaps(x), 2 * hm)


def test_fan_real_network_random_weights_stub_loader():
    fa = pytest.importorskip("face_alignment.models")
    torch.manual_seed(0)
    ref = fa.FAN(4)  # the released architecture (4 stacked hourglasses), random weights
    requested = []

    def loader(name):
        requested.append(name)
        return ref.state_dict()

    s = samples.astronaut()
    det = FANDetector(
        network_size=4,
        weights_loader=loader,
        box_detector=_Boxes(torch.tensor([179.0, 83.0, 267.0, 171.0])),
    )
    assert requested == ["2DFAN-4"]
    lm, scores, lm3 = det.landmarks_in_boxes(s.image, [torch.tensor([179.0, 83.0, 267.0, 171.0])])
    assert lm.shape == (1, 68, 2) and scores.shape == (1, 68) and lm3 is None
    assert torch.isfinite(lm).all()
    # every point lies inside the FAN crop square around the box
    M = fan_crop_transform(torch.tensor([179.0, 83.0, 267.0, 171.0]))
    q = apply_transform(M, lm[0].double())
    assert float(q.min()) >= 0 and float(q.max()) <= 256


def test_fan3d_depth_scaling_with_injected_networks():
    pytest.importorskip("face_alignment")
    s = samples.takeo()
    box = torch.tensor([36.0, 76.0, 127.0, 167.0])
    M = fan_crop_transform(box)
    pts_hm = apply_transform(M, s.landmarks.double()) / 4.0

    class Depth(torch.nn.Module):
        def forward(self, x):
            assert x.shape[1] == 3 + 68  # crop + point heatmaps
            return torch.arange(68, dtype=x.dtype)[None].expand(x.shape[0], -1)

    det = FANDetector(
        "3D",
        network=_FixedHeatmaps(_gauss_maps(pts_hm)),
        depth_network=Depth(),
        flip_input=False,
        box_detector=_Boxes(box),
    )
    f = det.detect(s.image)[0]
    assert f.detector == "fan3d" and f.landmarks_3d.shape == (68, 3)
    side = 256 / float(M[0, 0])
    torch.testing.assert_close(
        f.landmarks_3d[:, 2], torch.arange(68, dtype=torch.float32) * side / 256
    )
    torch.testing.assert_close(f.landmarks_3d[:, :2], f.landmarks)


def test_missing_weights_say_what_to_download(monkeypatch):
    fa_utils = pytest.importorskip("face_alignment.utils")

    def offline(url, *a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fa_utils, "load_file_from_url", offline)
    with pytest.raises(DownloadError, match=r"2DFAN4.*checkpoints|checkpoints.*2DFAN4") as e:
        FANDetector(box_detector=_Boxes(torch.zeros(4)))
    assert "https://" in str(e.value) and "dlib" in str(e.value)


def test_backend_unavailable_without_face_alignment(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment", None)
    with pytest.raises(BackendUnavailable, match="pip install face-alignment"):
        FANDetector(box_detector=_Boxes(torch.zeros(4)))


def test_fan3d_real_networks_random_weights_stub_loader():
    """The 3-D path with face-alignment's own FAN and depth ResNet (random weights): the
    loader is asked for the released weight names, and the depth network accepts the crop +
    68 point heatmaps and yields one finite z per landmark."""
    fa = pytest.importorskip("face_alignment.models")
    from facelab.vision.fan import fan_weight_urls

    torch.manual_seed(0)
    refs = {"3DFAN-4": fa.FAN(4).state_dict(), "depth": fa.ResNetDepth().state_dict()}
    requested = []

    def loader(name):
        requested.append(name)
        return refs[name]

    box = torch.tensor([179.0, 83.0, 267.0, 171.0])
    det = FANDetector("3D", weights_loader=loader, box_detector=_Boxes(box))
    assert requested == ["3DFAN-4", "depth"]
    assert set(requested) <= set(fan_weight_urls())  # names face-alignment can download
    faces = det.detect(samples.astronaut().image)
    assert len(faces) == 1 and faces[0].detector == "fan3d"
    lm3 = faces[0].landmarks_3d
    assert lm3.shape == (68, 3) and torch.isfinite(lm3).all()
    torch.testing.assert_close(lm3[:, :2], faces[0].landmarks)
    # the 2-D points stay in the FAN crop square around the box
    q = apply_transform(fan_crop_transform(box), faces[0].landmarks.double())
    assert float(q.min()) >= 0 and float(q.max()) <= 256
