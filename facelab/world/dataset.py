"""``WorldDataset``: a deterministic, seeded, streaming torch ``Dataset`` of synthetic photos.

``WorldDataset(config, length, seed)[i]`` renders sample ``i`` from generators seeded by
``(seed, i)`` only (:mod:`facelab.world.seeding`), so the same index gives the same sample in
every run, on every machine (up to float tolerance), in any order and with any number of
DataLoader workers. Nothing is held between calls except the model and a few per-model
constants (the renderer, built lazily in each worker), so memory does not grow with
``length``.

With a ``DataLoader(ds, batch_size=b)`` the loader calls ``WorldDataset.__getitems__``,
which renders the ``b`` samples *as one batch* (much faster than ``b`` single renders) and
returns them as a list, identical to ``[ds[i] for i in indices]`` up to float rounding.

Each sample is a dict of tensors (no batch dimension):

==================== ============== ==========================================================
key                  shape          meaning
==================== ============== ==========================================================
image                (3, H, W)      float RGB in [0, 1]
mask                 (H, W) bool    any rendered surface (face, head, painted eyes/mouth)
mask_face            (H, W) bool    the model's ``face`` region (+ eyes and mouth interior)
mask_skin            (H, W) bool    skin only (no eyes, mouth interior, eyeballs, teeth)
depth                (H, W)         camera z of the visible surface, 0 on background
normals              (H, W, 3)      unit camera-space normals (OpenCV axes), 0 on background
vertices             (V, 3)         posed vertices, camera space (model units)
landmarks2d          (68, 2)        iBUG-68 landmark pixels ``(u, v)`` (pixel centres +0.5)
landmarks3d          (68, 3)        the landmark vertices, camera space
landmarks_visible    (68,) bool     inside the image and not hidden by the face itself
K                    (3, 3)         intrinsics (principal point at the image centre)
cam2world            (4, 4)         the camera's pose in model space (inverse of the pose)
identity, expression (K_id,), (K_e) :class:`~facelab.models.FaceParams` fields
rotation             (3,)           pose (axis-angle): ``x_cam = R(rotation) diag(1,-1,-1) x + t``
translation          (3,)           pose translation ``t`` (camera space, model units)
light                (9, 3)         ground-truth SH (environment + SH fit of the key light)
focal                ()             focal length in pixels
env_light            (9, 3)         the environment alone
key_dir, key_color   (3,), (3,)     directional key light (towards the light; colour)
ypr                  (3,)           yaw, pitch, roll in degrees
index                ()             the sample's index
albedo_texture       (3, S, S)      only with ``include_albedo=True``: the UV albedo
==================== ============== ==========================================================

Multi-view (``views=K > 1``): every tensor gets a leading view dimension ``K`` (see
:meth:`facelab.world.render.WorldRenderer.sample_views`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from ..errors import InvalidInput
from .config import WorldConfig

if TYPE_CHECKING:
    from .render import WorldBatch

SAMPLE_KEYS = (
    "image", "mask", "mask_face", "mask_skin", "depth", "normals", "vertices", "landmarks2d",
    "landmarks3d", "landmarks_visible", "K", "cam2world", "identity", "expression", "rotation", "translation",
    "light", "focal", "env_light", "key_dir", "key_color", "ypr", "index",
)  # fmt: skip


def unbatch(out: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Batched render output -> a list of per-sample dicts (tensors are cloned views)."""
    B = int(out["image"].shape[0])
    return [{k: v[b].clone() for k, v in out.items()} for b in range(B)]


class WorldDataset(Dataset):
    """Sample ``i`` of the synthetic world ``(config, seed)``; ``length`` samples.

    Args:
        config: the world (default :class:`WorldConfig`).
        length: number of samples.
        seed: the world's seed.
        views: ``1``, or ``K > 1`` for multi-view samples (leading view dimension).
        include_albedo: also return ``albedo_texture (3, S, S)`` (the UV albedo).
        model: a model instance (default ``load(config.model)`` in each worker).
        max_batch: largest batch rendered at once by ``__getitems__``.
    """

    def __init__(
        self,
        config: WorldConfig | None = None,
        length: int = 1000,
        seed: int = 0,
        views: int = 1,
        include_albedo: bool = False,
        model=None,
        max_batch: int = 32,
    ) -> None:
        if length < 0:
            raise InvalidInput(f"length must be >= 0, got {length}")
        if views < 1:
            raise InvalidInput(f"views must be >= 1, got {views}")
        self.config = config or WorldConfig()
        self.length = int(length)
        self.seed = int(seed)
        self.views = int(views)
        self.include_albedo = include_albedo
        self.max_batch = int(max_batch)
        self._model = model
        self._renderer = None

    @property
    def renderer(self):
        """The (lazily built, per-process) :class:`~facelab.world.render.WorldRenderer`."""
        if self._renderer is None:
            from .render import WorldRenderer

            self._renderer = WorldRenderer(self.config, self._model)
        return self._renderer

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_renderer"] = None  # rebuilt in the worker
        return state

    def __len__(self) -> int:
        return self.length

    def _check(self, i: int) -> int:
        if not isinstance(i, int):
            i = int(i)
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for a world of {self.length} samples")
        return i % self.length

    def _render(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self._render_batch(self.renderer.sample(indices, self.seed))

    def _render_batch(self, batch: WorldBatch) -> dict[str, torch.Tensor]:
        """Render a sampled :class:`~facelab.world.render.WorldBatch`, with its
        ``albedo_texture`` when the dataset includes albedo."""
        out = self.renderer.render(batch)
        if self.include_albedo and batch.albedo is not None:
            out["albedo_texture"] = batch.albedo
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = self._check(i)
        if self.views > 1:
            return self.multiview(i)
        return unbatch(self._render([i]))[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Render several samples as batches (used by ``DataLoader`` with a batch size)."""
        idx = [self._check(i) for i in indices]
        if self.views > 1:
            return [self.multiview(i) for i in idx]
        out: list[dict[str, torch.Tensor]] = []
        for s in range(0, len(idx), self.max_batch):
            out.extend(unbatch(self._render(idx[s : s + self.max_batch])))
        return out

    def multiview(self, i: int, views: int | None = None) -> dict[str, torch.Tensor]:
        """Sample ``i`` seen by ``views`` cameras: every tensor has a leading view dim."""
        i = self._check(i)
        return self._render_batch(
            self.renderer.sample_views(i, self.seed, views or max(self.views, 2))
        )

    def cache(self, directory: str | Path, shard_size: int = 256, progress: bool = True):
        """Render this world once into ``directory`` (skipped if already complete) and return
        the :class:`~facelab.world.shards.ShardDataset` reading it — the fast path for training."""
        from .shards import ShardDataset

        write_cache(self, directory, shard_size=shard_size, progress=progress)
        return ShardDataset(directory)

    def batches(
        self, batch_size: int = 16, start: int = 0, stop: int | None = None
    ) -> Iterator[dict]:
        """Stream batched render outputs (dicts with a leading batch dim) without a DataLoader."""
        stop = self.length if stop is None else min(stop, self.length)
        for s in range(start, stop, batch_size):
            yield self._render(list(range(s, min(stop, s + batch_size))))


def render_sample(
    params, config: WorldConfig | None = None, seed: int = 0, model=None, **kw
) -> dict:
    """Render explicit :class:`~facelab.models.FaceParams` (with ``light`` and ``focal``) in the
    world's image model; returns the batched dict of :class:`WorldDataset` samples.

    Keyword arguments go to :meth:`~facelab.world.render.WorldRenderer.batch_from_params`
    (``albedo``, ``key_dir``, ``key_color``). At ``realism=0`` this is the plain Lambert-SH
    render of ``params`` (over black).
    """
    from .render import WorldRenderer

    r = WorldRenderer(config or WorldConfig(), model)
    return r.render(r.batch_from_params(params, seed=seed, **kw))


def sample_multiview(
    config: WorldConfig | None = None, index: int = 0, seed: int = 0, views: int = 3, model=None
) -> dict[str, torch.Tensor]:
    """Sample ``index`` of world ``(config, seed)`` from ``views`` cameras (leading view dim)."""
    return WorldDataset(config, length=index + 1, seed=seed, model=model).multiview(index, views)


def write_cache(
    dataset: WorldDataset,
    directory: str | Path,
    shard_size: int = 256,
    batch_size: int = 16,
    write_png: bool = False,
    progress: bool = True,
) -> Path:
    """Render ``dataset`` once into a shard cache (:class:`~facelab.world.shards.ShardWriter`);
    returns the ``index.json`` path. Read it back with :class:`~facelab.world.shards.ShardDataset`.

    If ``directory`` already holds a complete cache of the same world (config, seed, length,
    views), nothing is rendered.
    """
    import json

    from tqdm.auto import tqdm

    from .shards import ShardWriter

    directory = Path(directory)
    meta = {
        "config": dataset.config.to_dict(),
        "seed": dataset.seed,
        "length": dataset.length,
        "views": dataset.views,
    }
    index = directory / "index.json"
    if index.is_file():
        old = json.loads(index.read_text())
        if old.get("meta") == json.loads(json.dumps(meta, default=str)) and old.get(
            "length"
        ) == len(dataset):
            return index
    with ShardWriter(directory, shard_size=shard_size, meta=meta, write_png=write_png) as w:
        bar = tqdm(total=len(dataset), disable=not progress, desc="world cache")
        if dataset.views > 1:
            for i in range(len(dataset)):
                w.write(dataset[i])
                bar.update(1)
        else:
            for out in dataset.batches(batch_size):
                for s in unbatch(out):
                    w.write(s)
                bar.update(int(out["image"].shape[0]))
        bar.close()
    return index
