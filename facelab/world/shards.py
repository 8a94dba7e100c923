"""The disk cache: shards of rendered samples as ``.npz`` (no pickle) plus an ``index.json``.

Layout of a cache directory::

    index.json            {"format": "facelab.world.shards/1", "length": N, "shard_size": S,
                           "shards": ["shard_00000.npz", ...], "keys": {...}, "meta": {...}}
    shard_00000.npz       one array per key, stacked over the shard's samples
    images/000000.png     (optional, ``write_png=True``) the images, for eyeballing

Images are stored as ``uint8`` (what a PNG would keep) and returned as float in [0, 1];
boolean masks as ``bool``; everything else as ``float32`` / ``int64``. :class:`ShardDataset`
keeps at most one shard in memory per process (per DataLoader worker), so memory stays
bounded however large the cache is. Arrays are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InvalidInput

FORMAT = "facelab.world.shards/1"
_UINT8_KEYS = ("image",)


def _to_numpy(key: str, t: torch.Tensor) -> np.ndarray:
    if key in _UINT8_KEYS and t.is_floating_point():
        return (t.detach().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    if t.dtype == torch.bool:
        return t.cpu().numpy()
    if t.is_floating_point():
        return t.detach().to(torch.float32).cpu().numpy()
    return t.to(torch.int64).cpu().numpy()


class ShardWriter:
    """Write samples (dicts of tensors with identical keys and shapes) into ``.npz`` shards.

    Use as a context manager (or call :meth:`close`)::

        with ShardWriter(out_dir, shard_size=256, meta={"config": cfg.to_dict()}) as w:
            for sample in samples:
                w.write(sample)
    """

    def __init__(
        self,
        directory: str | Path,
        shard_size: int = 256,
        meta: dict[str, Any] | None = None,
        write_png: bool = False,
    ) -> None:
        if shard_size < 1:
            raise InvalidInput(f"shard_size must be >= 1, got {shard_size}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = int(shard_size)
        self.meta = dict(meta or {})
        self.write_png = write_png
        self._buffer: list[dict[str, np.ndarray]] = []
        self._shards: list[str] = []
        self._keys: dict[str, dict[str, Any]] | None = None
        self._count = 0

    def write(self, sample: dict[str, torch.Tensor]) -> None:
        """Append one sample (tensor values; non-tensors are ignored)."""
        arrs = {k: _to_numpy(k, v) for k, v in sample.items() if isinstance(v, torch.Tensor)}
        spec = {k: {"dtype": str(a.dtype), "shape": list(a.shape)} for k, a in arrs.items()}
        if self._keys is None:
            self._keys = spec
        elif spec != self._keys:
            raise InvalidInput(
                "ShardWriter: every sample must have the same keys, dtypes and shapes; "
                f"first was {self._keys}, got {spec}"
            )
        if self.write_png and "image" in arrs and arrs["image"].ndim == 3:
            from PIL import Image

            (self.directory / "images").mkdir(exist_ok=True)
            Image.fromarray(np.ascontiguousarray(arrs["image"].transpose(1, 2, 0))).save(
                self.directory / "images" / f"{self._count:06d}.png"
            )
        self._buffer.append(arrs)
        self._count += 1
        if len(self._buffer) >= self.shard_size:
            self._flush()

    def write_many(self, samples: Iterable[dict[str, torch.Tensor]]) -> None:
        for s in samples:
            self.write(s)

    def _flush(self) -> None:
        if not self._buffer:
            return
        name = f"shard_{len(self._shards):05d}.npz"
        stacked = {k: np.stack([b[k] for b in self._buffer]) for k in self._buffer[0]}
        tmp = self.directory / (name + ".tmp.npz")
        np.savez(tmp, **stacked)
        tmp.replace(self.directory / name)
        self._shards.append(name)
        self._buffer = []

    def close(self) -> Path:
        """Flush the last shard and write ``index.json``; returns its path."""
        self._flush()
        index = {
            "format": FORMAT,
            "length": self._count,
            "shard_size": self.shard_size,
            "shards": self._shards,
            "keys": self._keys or {},
            "meta": self.meta,
        }
        path = self.directory / "index.json"
        path.write_text(json.dumps(index, indent=2, sort_keys=True, default=str))
        return path

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


class ShardDataset(Dataset):
    """Read a cache written by :class:`ShardWriter`: ``ds[i]`` -> dict of tensors.

    At most one shard is held in memory (per process); sequential access reads each shard
    once. Images come back as float32 ``(3, H, W)`` in [0, 1].
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / "index.json"
        if not path.is_file():
            raise InvalidInput(
                f"{self.directory} is not a world cache (no index.json); write one with "
                "facelab.world.write_cache(...)"
            )
        index = json.loads(path.read_text())
        if index.get("format") != FORMAT:
            raise InvalidInput(
                f"{path}: unknown cache format {index.get('format')!r}, want {FORMAT}"
            )
        self.index = index
        self.length = int(index["length"])
        self.shard_size = int(index["shard_size"])
        self.shards = list(index["shards"])
        self.meta = index.get("meta", {})
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.length

    def _shard(self, s: int) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != s:
            with np.load(self.directory / self.shards[s], allow_pickle=False) as z:
                self._cached = (s, {k: z[k] for k in z.files})
        return self._cached[1]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -self.length <= i < self.length:
            raise IndexError(f"index {i} out of range for a cache of {self.length} samples")
        i = i % self.length
        data = self._shard(i // self.shard_size)
        j = i % self.shard_size
        out = {}
        for k, a in data.items():
            t = torch.from_numpy(np.array(a[j]))
            if k in _UINT8_KEYS and t.dtype == torch.uint8:
                t = t.to(torch.float32) / 255.0
            out[k] = t
        return out
