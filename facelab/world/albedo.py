"""The world's albedo source: :class:`facelab.models.albedo.ProceduralAlbedo` in the model's UVs.

Albedo images are display-encoded (``AlbedoConfig(encoding="srgb")``), like photo pixels and
the Basel Face Model texture the fitter's Lambert-SH model assumes, so a Lambert render with
ambient light 1 reproduces the texture's colours. ``WorldConfig.albedo_detail`` in [0, 1]
scales the pore strength and switches freckles/moles/stubble off at 0.

Parameters are drawn per sample (each from its own generator, so index -> albedo is
deterministic); the textures of a batch are rendered in one batched call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import WorldConfig


class WorldAlbedo:
    """``draw(g) -> AlbedoParams`` per sample; ``render([params...]) -> (B, 3, S, S)``."""

    def __init__(self, model, config: WorldConfig) -> None:
        from ..models.albedo import AlbedoConfig, ProceduralAlbedo, uv_layout_from_model

        size = config.albedo_size
        detail = float(config.albedo_detail) > 0
        acfg = AlbedoConfig(
            encoding="srgb",
            detail=detail,
            pores=detail,
            freckles=detail,
            moles=detail,
            stubble=detail,
        )
        layout = uv_layout_from_model(model, size=size)
        self.generator = ProceduralAlbedo(layout, acfg)
        self.detail = float(config.albedo_detail)

    def draw(self, g: torch.Generator):
        p = self.generator.sample_params(1, g)
        p.pore_strength = p.pore_strength * min(1.0, self.detail)
        return p

    def render(self, params: Sequence) -> torch.Tensor:
        from ..models.albedo import AlbedoParams

        return self.generator.render(AlbedoParams.cat(list(params)))


def make_albedo_generator(model, config: WorldConfig) -> WorldAlbedo | None:
    """A :class:`WorldAlbedo` for ``model``, or None when the model has no UVs/landmarks
    (then the renderer uses the model's per-vertex albedo or a uniform grey)."""
    if model.uvs is None or model.landmarks is None:
        return None
    return WorldAlbedo(model, config)
