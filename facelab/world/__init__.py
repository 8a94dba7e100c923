"""facelab.world: a synthetic photo simulator with exact ground truth, built on the 3DMM.

There is no face data set we may download, so facelab makes one. A world is a
:class:`WorldConfig` plus a seed; sample ``i`` is a pure function of ``(config, seed, i)``::

    from facelab.world import WorldConfig, WorldDataset
    ds = WorldDataset(WorldConfig(image_size=128, realism=0.7), length=10_000, seed=0)
    sample = ds[3]            # dict: image, masks, depth, normals, landmarks, params, camera ...

``realism`` in [0, 1] is the single knob of the domain gap between the world's image model
and the fitter's Lambert-SH model (0 = identical); see :mod:`facelab.world.config` for the
sub-knobs, :mod:`facelab.world.render` for the image model, :mod:`facelab.world.dataset` for
the sample keys and :mod:`facelab.world.shards` for the disk cache.
"""

from __future__ import annotations

from .config import Knobs, WorldConfig
from .dataset import SAMPLE_KEYS, WorldDataset, render_sample, sample_multiview, write_cache
from .gallery import gallery, ground_truth_figure
from .io import load_gt, save_sample
from .render import WorldBatch, WorldRenderer
from .seeding import generator_for, index_seed
from .shards import ShardDataset, ShardWriter

__all__ = [
    "SAMPLE_KEYS",
    "Knobs",
    "ShardDataset",
    "ShardWriter",
    "WorldBatch",
    "WorldConfig",
    "WorldDataset",
    "WorldRenderer",
    "gallery",
    "generator_for",
    "ground_truth_figure",
    "index_seed",
    "load_gt",
    "render_sample",
    "sample_multiview",
    "save_sample",
    "write_cache",
]
