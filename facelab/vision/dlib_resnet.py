"""dlib's face-recognition ResNet, ported to PyTorch: a pretrained, differentiable, offline
face-identity network (128-D descriptors).

dlib ships ``dlib_face_recognition_resnet_model_v1.dat`` (trained by Davis King on ~3M
faces, 99.38% on LFW; in the ``face_recognition_models`` package). Its network, in dlib's
notation (read from the bottom up)::

    loss_metric<fc_no_bias<128, avg_pool_everything<
      level0<level1<level2<level3<level4<
      max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with residual units ``relu(x + block(x))`` (``ares``) and down-sampling units
``relu(avg_pool_2x2(x) + block_stride2(x))`` (``ares_down``); ``block = affine(conv3x3(
relu(affine(conv3x3_stride(x)))))``; level4 = 3 units of 32 channels, level3 = 1 down + 3
units of 64, level2 = 1 down + 2 units of 128, level1 = 1 down + 2 units of 256, level0 =
1 down unit of 256. ``affine`` is inference-time batch norm (per-channel :math:`\\gamma x +
\\beta`).

Details that matter for matching dlib bit-for-bit (up to float32 rounding):

* dlib pads a convolution or pooling only when its stride is 1 (by ``size // 2``);
  strided layers use no padding, so sizes go 150 -> 72 -> 35 -> 17 -> 8 -> 3|4 -> 1|2.
* Adding tensors of different shapes (``add_prev``) zero-pads the smaller one at the end of
  each dimension: channels 32 + 64 -> 64 (the shortcut has no 1x1 projection), and at
  8x8 -> the block gives 3x3 while the pooled shortcut is 4x4, so the sum is 4x4 with the
  block's values in the top-left 3x3.
* Input: 150x150 RGB chip, :math:`x = (p - \\mu_c)/256` with 8-bit pixel values :math:`p`
  and dlib's stored channel means :math:`\\mu = (122.782, 117.001, 104.298)`.
* The descriptor is the raw 128-D ``fc`` output (not normalised); two faces are the same
  person when their Euclidean distance is below 0.6.

:func:`load_dlib_face_resnet` reads the weights with facelab's own parser
(:mod:`facelab.vision.dlib_format`), checks the layer sequence against this architecture,
and returns a :class:`DlibFaceResNet`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelFormatError
from .dlib_format import DlibLayer, DlibNet, read_dlib_net

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of ``(B, C, H, W)`` tensors of different sizes.

    The result has the elementwise maximum shape; each input is zero-padded at the end
    (last channels, bottom rows, right columns) before adding.
    """
    if a.shape == b.shape:
        return a + b
    C = max(a.shape[1], b.shape[1])
    H = max(a.shape[2], b.shape[2])
    W = max(a.shape[3], b.shape[3])

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, W - t.shape[3], 0, H - t.shape[2], 0, C - t.shape[1]))

    return pad(a) + pad(b)


class _Affine(nn.Module):
    """Per-channel :math:`y = \\gamma x + \\beta` (dlib's ``affine_`` in conv mode)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


class _Unit(nn.Module):
    """A residual unit: ``relu(shortcut(x) + affine2(conv2(relu(affine1(conv1(x))))))``."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        s = 2 if down else 1
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=s, padding=0 if down else 1)
        self.aff1 = _Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1)
        self.aff2 = _Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        sc = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(y, sc))


#: Residual units per level, from the input side: (channels, down-sampling first?, count).
DLIB_RESNET_LEVELS = (
    ("level4", 32, False, 3),
    ("level3", 64, True, 4),
    ("level2", 128, True, 3),
    ("level1", 256, True, 3),
    ("level0", 256, True, 1),
)


class DlibFaceResNet(nn.Module):
    """PyTorch port of dlib's metric-learning face ResNet (29 conv layers, 128-D output).

    ``forward(x)`` takes **normalised** input ``(B, 3, H, W)`` (see :meth:`preprocess`;
    150x150 for the trained model) and returns ``(B, 128)`` descriptors. :meth:`embed_chips`
    takes ``(B, 3, 150, 150)`` RGB chips in ``[0, 1]``. :meth:`features` also returns the
    intermediate maps (``stem``, ``level4`` ... ``level0``, ``pooled``) for perceptual /
    content losses.

    Parameters are frozen (``requires_grad=False``) after loading; gradients flow to the
    input, which is what identity losses need.
    """

    #: dlib's ``loss_metric`` threshold: same person iff distance < 0.6
    distance_threshold = 0.6
    input_size = 150

    def __init__(self, levels=DLIB_RESNET_LEVELS, embedding_dim: int = 128):
        super().__init__()
        self.stem_conv = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.stem_aff = _Affine(32)
        cin = 32
        self.level_names = []
        for name, ch, down, n in levels:
            units = []
            for i in range(n):
                units.append(_Unit(cin, ch, down and i == 0))
                cin = ch
            setattr(self, name, nn.Sequential(*units))
            self.level_names.append(name)
        self.fc = nn.Linear(cin, embedding_dim, bias=False)
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]))

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` RGB chips -> network input :math:`(255 x - \\mu_c) / 256`."""
        return (chips * 255.0 - self.mean.to(chips)[:, None, None]) / 256.0

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Intermediate maps of normalised input ``x`` ``(B, 3, H, W)``.

        Returns a dict: ``stem (B, 32, 35, 35)``, ``level4 (B, 32, 35, 35)``,
        ``level3 (B, 64, 17, 17)``, ``level2 (B, 128, 8, 8)``, ``level1 (B, 256, 4, 4)``,
        ``level0 (B, 256, 2, 2)``, ``pooled (B, 256)``, ``embedding (B, 128)``
        (sizes for 150x150 input).
        """
        out: dict[str, torch.Tensor] = {}
        h = F.max_pool2d(F.relu(self.stem_aff(self.stem_conv(x))), 3, 2)
        out["stem"] = h
        for name in self.level_names:
            h = getattr(self, name)(h)
            out[name] = h
        pooled = h.mean(dim=(2, 3))
        out["pooled"] = pooled
        out["embedding"] = self.fc(pooled)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input ``(B, 3, H, W)`` -> descriptors ``(B, 128)``."""
        return self.features(x)["embedding"]

    def embed_chips(self, chips: torch.Tensor) -> torch.Tensor:
        """Aligned 150x150 RGB chips ``(B, 3, 150, 150)`` in [0, 1] -> ``(B, 128)``."""
        return self(self.preprocess(chips))


# --------------------------------------------------------------------------------------
# Loading weights from the dlib file


def _expected_sequence(levels=DLIB_RESNET_LEVELS) -> tuple[list[str], list[int]]:
    """Layer kinds (bottom-up) and the version chain (top-down) the architecture implies."""
    kinds = ["con", "affine", "relu", "max_pool"]
    chain_up = [3, 2, 2, 2]
    for _, _, down, n in levels:
        for i in range(n):
            d = down and i == 0
            kinds += ["con", "affine", "relu", "con", "affine"]
            chain_up += [1, 2, 2, 2, 2, 2]  # tag1, then the block
            if d:
                kinds += ["avg_pool"]
                chain_up += [1, 1, 2]  # tag2, skip1, avg_pool
            kinds += ["add_prev", "relu"]
            chain_up += [2, 2]
    kinds += ["avg_pool", "fc"]
    chain_up += [2, 2]
    return kinds, chain_up[::-1]


def _t(a) -> torch.Tensor:
    return torch.from_numpy(a.copy())


def _load_con(conv: nn.Conv2d, layer: DlibLayer, stride: int, pad: int, where: str) -> None:
    p = layer.params
    if (p["stride_y"], p["stride_x"], p["padding_y"], p["padding_x"]) != (stride, stride, pad, pad):
        raise ModelFormatError(f"{where}: conv stride/padding {p} differ from the architecture")
    if tuple(p["weight"].shape) != tuple(conv.weight.shape):
        raise ModelFormatError(
            f"{where}: conv weight {p['weight'].shape} != {tuple(conv.weight.shape)}"
        )
    conv.weight.data.copy_(_t(p["weight"]))
    conv.bias.data.copy_(_t(p["bias"]))


def _load_aff(aff: _Affine, layer: DlibLayer, where: str) -> None:
    g, b = layer.params["gamma"].reshape(-1), layer.params["beta"].reshape(-1)
    if g.shape[0] != aff.gamma.shape[0] or layer.params["mode"] != "conv":
        raise ModelFormatError(f"{where}: affine layer of {g.shape[0]} channels does not fit")
    aff.gamma.data.copy_(_t(g))
    aff.beta.data.copy_(_t(b))


def dlib_face_resnet_from_net(net: DlibNet, name: str = "dlib net") -> DlibFaceResNet:
    """Build a :class:`DlibFaceResNet` from a parsed dlib network, checking its structure."""
    kinds, chain = _expected_sequence()
    got = [ly.kind for ly in net.layers]
    if got != kinds or net.chain != chain:
        raise ModelFormatError(
            f"{name}: not dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1): "
            f"layer sequence differs (got {len(got)} layers, expected {len(kinds)})"
        )
    inp = net.input[1]
    if net.input[0] != "input_rgb_image_sized" or (inp.get("nr"), inp.get("nc")) != (150, 150):
        raise ModelFormatError(f"{name}: expected a 150x150 RGB input layer, got {net.input}")
    model = DlibFaceResNet()
    model.mean.copy_(torch.tensor([inp["avg_red"], inp["avg_green"], inp["avg_blue"]]))
    L = iter(net.layers)
    _load_con(model.stem_conv, next(L), 2, 0, "stem")
    _load_aff(model.stem_aff, next(L), "stem")
    next(L)  # relu
    mp = next(L).params
    if (mp["nr"], mp["stride_y"], mp["padding_y"]) != (3, 2, 0):
        raise ModelFormatError(f"{name}: unexpected stem max-pool {mp}")
    for lname in model.level_names:
        for j, unit in enumerate(getattr(model, lname)):
            where = f"{lname}[{j}]"
            _load_con(unit.conv1, next(L), 2 if unit.down else 1, 0 if unit.down else 1, where)
            _load_aff(unit.aff1, next(L), where)
            next(L)
            _load_con(unit.conv2, next(L), 1, 1, where)
            _load_aff(unit.aff2, next(L), where)
            if unit.down:
                ap = next(L).params
                if (ap["nr"], ap["stride_y"], ap["padding_y"]) != (2, 2, 0):
                    raise ModelFormatError(f"{where}: unexpected shortcut pooling {ap}")
            next(L)  # add_prev
            next(L)  # relu
    gp = next(L).params
    if (gp["nr"], gp["nc"]) != (0, 0):
        raise ModelFormatError(f"{name}: expected avg_pool_everything, got {gp}")
    fc = next(L).params
    if fc["bias_mode"] != "no_bias" or fc["weight"].shape != (256, 128):
        raise ModelFormatError(
            f"{name}: expected fc_no_bias<128> on 256 inputs, got {fc['weight'].shape}"
        )
    model.fc.weight.data.copy_(_t(fc["weight"].T))
    thr = net.loss[1].get("distance_threshold")
    if thr is not None:
        model.distance_threshold = float(thr)
    model.requires_grad_(False)
    return model.eval()


def load_dlib_face_resnet(path: str | os.PathLike | None = None) -> DlibFaceResNet:
    """Load dlib's face recognition ResNet from ``dlib_face_recognition_resnet_model_v1.dat``.

    Args:
        path: the ``.dat`` file (default: the ``"dlib-models"`` asset, e.g. from the
            installed ``face_recognition_models`` package).

    Raises:
        AssetMissing: the file is not installed (the message says how to get it).
        ModelFormatError: the file is not this network.
    """
    if path is None:
        from .detect import dlib_model_path

        path = dlib_model_path(MODEL_FILE)
    p = Path(path)
    return dlib_face_resnet_from_net(read_dlib_net(p), str(p))


__all__ = [
    "DLIB_RESNET_LEVELS",
    "DlibFaceResNet",
    "MODEL_FILE",
    "add_zero_padded",
    "dlib_face_resnet_from_net",
    "load_dlib_face_resnet",
]
