"""GAR (Piao et al., CVPR 2021): a generative adversarial renderer and its inversion.

- :mod:`~facelab.methods.gar.renderer`: ``G(normal map, z) -> image`` with the normal
  injection module (SPADE-like per-pixel scale and bias after every modulated convolution).
- :mod:`~facelab.methods.gar.geometry`: 3DMM parameters -> crop camera -> normal map.
- :mod:`~facelab.methods.gar.data`: the unpaired training data (world photos; ICT geometry).
- :mod:`~facelab.methods.gar.aux`, :mod:`~facelab.methods.gar.losses`: the estimator and the
  normal / identity / landmark consistency losses.
- :mod:`~facelab.methods.gar.encoder`: image -> (identity, expression, w), trained on G's samples.
- :mod:`~facelab.methods.gar.train`: the three-phase training (``python -m facelab.methods.gar.train``).
- :mod:`~facelab.methods.gar.invert`: :func:`fit_gar` (``facelab fit --method gar``).
"""

from .renderer import GARConfig, GARGenerator, NormalInjection

__all__ = ["GARConfig", "GARGenerator", "GARModel", "NormalInjection", "fit_gar", "load_gar"]


def __getattr__(name: str):
    # lazy: ``python -m facelab.methods.gar.train`` must not find .train imported already
    if name == "fit_gar":
        from .invert import fit_gar

        return fit_gar
    if name in ("GARModel", "load_gar"):
        from . import train

        return getattr(train, name)
    raise AttributeError(name)
