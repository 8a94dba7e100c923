r"""The auxiliary estimator: normals, landmarks and identity from a face crop.

GAR's consistency losses need to *read* geometry and identity back out of a generated image.
The paper uses pretrained networks; here one small network is trained, before the GAN, on the
**real** crops with the world's ground truth (:mod:`facelab.methods.gar.data`):

- a dense head: unit normals per pixel (loss :math:`1 - \cos` on the face mask);
- a landmark head: 68 points in crop pixels / crop size (loss: mean squared error);
- an identity head: the first ``n_identity`` identity coefficients (loss: mean squared error);
  its output is the "identity feature" the identity-consistency loss compares.

Trained on realistic photos, it is frozen while the generator trains; a generator that paints
a nose where the normal map has none is then penalised by a network that knows what noses look
like in photos. (At 32 px the dlib face-recognition net of Part I would see a blur; a
regressor of the world's identity coefficients is the cheap stand-in, stated as such.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AuxConfig", "AuxNet", "aux_loss"]


@dataclass
class AuxConfig:
    """Widths of :class:`AuxNet` and its training budget (steps of ``batch`` real crops)."""

    resolution: int = 32
    width: int = 32
    n_identity: int = 20
    steps: int = 400
    batch: int = 16
    lr: float = 2e-3

    def to_dict(self) -> dict:
        return asdict(self)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(cout, cout, 3, padding=1),
        nn.LeakyReLU(0.2),
    )  # fmt: skip


class AuxNet(nn.Module):
    """``image (B, 3, R, R) in [-1, 1] -> {"normals" (B, 3, R, R), "landmarks" (B, 68, 2)
    crop pixels, "identity" (B, n_identity)}``: a three-level U-Net with a global head."""

    def __init__(self, config: AuxConfig | None = None) -> None:
        super().__init__()
        cfg = config or AuxConfig()
        self.config = cfg
        c = cfg.width
        self.e1, self.e2, self.e3 = _block(3, c), _block(c, 2 * c), _block(2 * c, 2 * c)
        self.d2, self.d1 = _block(4 * c, c), _block(2 * c, c)
        self.out_n = nn.Conv2d(c, 3, 1)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(2 * c * 16, 256), nn.LeakyReLU(0.2)
        )
        self.out_lm = nn.Linear(256, 136)
        self.out_id = nn.Linear(256, cfg.n_identity)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        R = img.shape[-1]
        h1 = self.e1(img)
        h2 = self.e2(F.avg_pool2d(h1, 2))
        h3 = self.e3(F.avg_pool2d(h2, 2))
        u2 = self.d2(torch.cat([F.interpolate(h3, scale_factor=2.0), h2], 1))
        u1 = self.d1(torch.cat([F.interpolate(u2, scale_factor=2.0), h1], 1))
        g = self.fc(h3)
        lm = (self.out_lm(g).view(-1, 68, 2) + 0.5) * R
        return {
            "normals": F.normalize(self.out_n(u1), dim=1),
            "landmarks": lm,
            "identity": self.out_id(g),
        }


def aux_loss(
    out: dict[str, torch.Tensor],
    normals: torch.Tensor,
    mask: torch.Tensor,
    landmarks: torch.Tensor,
    identity: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Supervised losses of :class:`AuxNet` against ground truth (``mask (B, 1, R, R)``)."""
    R = normals.shape[-1]
    m = mask.to(normals.dtype)
    cos = (out["normals"] * normals).sum(1, keepdim=True)
    ln = ((1 - cos) * m).sum() / m.sum().clamp(min=1)
    ll = ((out["landmarks"] - landmarks) / R).square().sum(-1).mean()
    k = out["identity"].shape[1]
    li = (out["identity"] - identity[:, :k]).square().mean()
    return {"normals": ln, "landmarks": ll, "identity": li, "total": ln + 10 * ll + 0.1 * li}
