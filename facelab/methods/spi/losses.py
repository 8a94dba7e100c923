r"""The terms of symmetry-prior inversion, one named function each, and two perceptual distances.

Images are ``(B, 3, H, W)`` in ``[-1, 1]`` (the GAN's range); masks ``(B, H, W)``.

- :func:`reconstruction_loss`: the render from the photo's camera against the photo —
  mean squared error plus ``perceptual`` x a perceptual distance;
- :func:`mirror_loss`: the render from the mirrored camera against the flipped photo, with
  an optional conflict mask (:func:`facelab.methods.spi.masks.symmetry_conflict_mask`),
  multiplied by the yaw weight (:func:`facelab.methods.spi.camera.mirror_weight`);
- :func:`warp_loss`: a novel view against its depth-warped pseudo label, where valid;
- :func:`depth_regularizer`: the tuned generator's depth at far views against the frozen
  (pre-tuning) generator's, where the frozen one is opaque.

**Perceptual distances.** LPIPS (Zhang et al., CVPR 2018) is what the paper uses, but its
weights (an ImageNet backbone plus learned linear layers) cannot be downloaded here.
:class:`LPIPSDistance` wraps the ``lpips`` package for users who have it and its weights and
raises :class:`~facelab.errors.AssetMissing` otherwise. :class:`DlibFeatureDistance` is the
offline stand-in: the same recipe (unit-normalise each layer's features over channels, mean
squared difference over space, summed over layers) on the early layers of the dlib
face-recognition ResNet port (:mod:`facelab.vision.dlib_resnet`) — a *dlib-feature
distance*, not LPIPS, with no learned layer weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import AssetMissing

__all__ = [
    "DlibFeatureDistance",
    "LPIPSDistance",
    "depth_regularizer",
    "masked_mse",
    "mirror_loss",
    "reconstruction_loss",
    "warp_loss",
]


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference ``(B,)`` over channels and the pixels where ``mask`` is True
    (all pixels when None; 0 for an empty mask)."""
    d = (a - b).square().mean(1)
    if mask is None:
        return d.flatten(1).mean(1)
    m = mask.to(d.dtype)
    return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp(min=1.0)


def reconstruction_loss(
    render: torch.Tensor,
    photo: torch.Tensor,
    perceptual: float = 1.0,
    distance: nn.Module | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mse(render, photo) + perceptual * distance(render, photo)``, a scalar (mean over the
    batch); ``distance=None`` or ``perceptual=0``: MSE only."""
    loss = masked_mse(render, photo, mask).mean()
    if distance is not None and perceptual > 0:
        loss = loss + perceptual * distance(render, photo).mean()
    return loss


def mirror_loss(
    render_mirror: torch.Tensor,
    photo: torch.Tensor,
    weight: torch.Tensor | float,
    conflict: torch.Tensor | None = None,
    perceptual: float = 1.0,
    distance: nn.Module | None = None,
) -> torch.Tensor:
    """The symmetry prior: ``weight * [mse + perceptual]`` of the render from the mirrored
    camera against ``photo.flip(-1)``; pixels in ``conflict (B, H, W)`` are left out of the
    MSE (the perceptual term sees the flipped photo with them replaced by the render)."""
    target = photo.flip(-1)
    keep = None if conflict is None else ~conflict.bool()
    if keep is not None:
        target = torch.where(keep[:, None], target, render_mirror.detach())
    loss = masked_mse(render_mirror, target, keep).mean()
    if distance is not None and perceptual > 0:
        loss = loss + perceptual * distance(render_mirror, target).mean()
    return torch.as_tensor(weight, dtype=loss.dtype, device=loss.device) * loss


def warp_loss(render: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A novel view against its pseudo label, mean squared error over ``valid`` pixels
    (scalar)."""
    return masked_mse(render, label, valid).mean()


def depth_regularizer(
    depth: torch.Tensor, depth_frozen: torch.Tensor, opacity_frozen: torch.Tensor,
    threshold: float = 0.5,
) -> torch.Tensor:  # fmt: skip
    """Mean absolute depth change ``(scalar)`` against the frozen generator, over pixels where
    the frozen render is opaque (``opacity > threshold``); depth maps ``(B, 1, H, W)`` or
    ``(B, H, W)``."""
    m = (opacity_frozen > threshold).to(depth.dtype)
    d = (depth - depth_frozen).abs() * m
    return d.sum() / m.sum().clamp(min=1.0)


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / f.norm(dim=1, keepdim=True).clamp(min=1e-10)


class DlibFeatureDistance(nn.Module):
    """Perceptual distance on the dlib face ResNet port's early features (not LPIPS).

    ``d(a, b) = sum_l mean_{x,y} || u_l(a) - u_l(b) ||^2`` with ``u_l`` the layer-``l`` map
    unit-normalised over channels, for ``layers`` of :meth:`DlibFaceResNet.features`
    (``stem``, ``level4``, ``level3`` by default), images ``[-1, 1]`` resized to ``size``.
    Returns ``(B,)``. ``net`` defaults to :func:`facelab.vision.dlib_resnet.load_dlib_face_resnet`
    (the ``dlib-models`` asset); pass any ``DlibFaceResNet`` (e.g. untrained, for tests).
    """

    ORDER = ("stem", "level4", "level3", "level2", "level1", "level0")

    def __init__(
        self, net: nn.Module | None = None, layers: Sequence[str] = ("stem", "level4", "level3"),
        size: int = 96,
    ) -> None:  # fmt: skip
        super().__init__()
        if net is None:
            from ...vision.dlib_resnet import load_dlib_face_resnet

            net = load_dlib_face_resnet()
        self.net = net.eval().requires_grad_(False)
        bad = [name for name in layers if name not in self.ORDER]
        if bad:
            raise ValueError(f"unknown dlib ResNet layers {bad}; choose from {self.ORDER}")
        self.layers = tuple(layers)
        self.size = int(size)

    def _features(self, x01: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        x = F.interpolate(x01, size=self.size, mode="bilinear", align_corners=False)
        h = F.max_pool2d(F.relu(net.stem_aff(net.stem_conv(net.preprocess(x)))), 3, 2)
        out, last = [], max(self.ORDER.index(n) for n in self.layers)
        if "stem" in self.layers:
            out.append(h)
        for name in self.ORDER[1 : last + 1]:
            h = getattr(net, name)(h)
            if name in self.layers:
                out.append(h)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self._features((a.float().clamp(-1, 1) + 1) / 2)
        fb = self._features((b.float().clamp(-1, 1) + 1) / 2)
        d = sum((_unit(x) - _unit(y)).square().sum(1).flatten(1).mean(1) for x, y in zip(fa, fb))
        return d.to(a.dtype)


class LPIPSDistance(nn.Module):
    """LPIPS (Zhang et al., CVPR 2018) through the ``lpips`` package, for users who have it and
    its weights (images ``[-1, 1]``, returns ``(B,)``).

    Raises :class:`~facelab.errors.AssetMissing` when the package or its backbone weights are
    not installed (they are downloaded by ``lpips`` / torchvision on first use, which needs
    network access); :class:`DlibFeatureDistance` is the offline alternative.
    """

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        try:
            import lpips  # type: ignore[import-not-found]
        except ImportError:
            raise AssetMissing(
                "LPIPS needs the 'lpips' package and its weights (pip install lpips; its "
                "first use downloads the backbone): not installed here. Use the offline "
                "DlibFeatureDistance instead (perceptual='dlib')."
            ) from None
        try:
            self.model = lpips.LPIPS(net=net, verbose=False).eval().requires_grad_(False)
        except Exception as e:  # the weights download failed (offline)
            raise AssetMissing(
                f"LPIPS could not load its {net!r} weights ({type(e).__name__}: {e}); put them "
                "in torch's hub cache or use DlibFeatureDistance (perceptual='dlib')"
            ) from None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a, b).flatten(1).mean(1)
