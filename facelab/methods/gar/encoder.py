r"""The encoder: a face crop -> GAR's inputs (3DMM identity and expression, latent ``w``).

GAR's paper inverts its renderer by optimisation from a starting point; the starting point
matters because the loss through a GAN is far from convex. :class:`Encoder` gives it: a small
CNN trained on **the generator's own samples** (:func:`encoder_step`), where the answer is
known exactly -- draw geometry ``(identity, expression, pose)`` and ``z``, render the normal
map, generate ``x = G(n, z)``, and regress ``(identity, expression, w = mapping(z))`` from
``x``. It predicts ``w`` rather than ``z``: the image determines the style ``w`` (the mapping
is many-to-one in effect), and the refinement optimises ``w``. Pose is not predicted: the
inversion takes it from Part I's landmark fit, which is exact up to the detector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Encoder", "EncoderConfig", "encoder_loss"]


@dataclass
class EncoderConfig:
    """Sizes of :class:`Encoder` and its training budget."""

    resolution: int = 32
    width: int = 32
    n_identity: int = 40
    n_expression: int = 53
    w_dim: int = 128
    steps: int = 400
    batch: int = 16
    lr: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


class Encoder(nn.Module):
    """``image (B, 3, R, R) in [-1, 1] -> {"identity", "expression", "w"}``."""

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        cfg = config or EncoderConfig()
        self.config = cfg
        c = cfg.width
        layers: list[nn.Module] = []
        cin, r = 3, cfg.resolution
        while r > 4:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
            cin, c, r = c, min(2 * c, 128), r // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(cin * 16, 256), nn.LeakyReLU(0.2))
        self.out = nn.Linear(256, cfg.n_identity + cfg.n_expression + cfg.w_dim)

    def forward(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        y = self.out(self.fc(self.features(img)))
        i, e = cfg.n_identity, cfg.n_expression
        return {"identity": y[:, :i], "expression": y[:, i : i + e], "w": y[:, i + e :]}


def encoder_loss(
    out: dict[str, torch.Tensor],
    identity: torch.Tensor,
    expression: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor | float = 1.0,
) -> dict[str, torch.Tensor]:
    """Mean squared errors of the predictions (``w`` divided by ``w_scale``, its spread)."""
    li = F.mse_loss(out["identity"], identity[:, : out["identity"].shape[1]])
    le = F.mse_loss(out["expression"], expression[:, : out["expression"].shape[1]])
    lw = F.mse_loss(out["w"] / w_scale, w / w_scale)
    return {"identity": li, "expression": le, "w": lw, "total": li + 10 * le + lw}
