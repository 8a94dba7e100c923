"""Per-index seeding: sample ``i`` of a world with seed ``s`` depends on ``(s, i)`` only.

``index_seed(s, i, stream)`` mixes the three integers with SplitMix64 (Steele et al. 2014),
a bijective 64-bit finaliser, so neighbouring indices give unrelated streams, the result is the
same on every machine and Python version (no ``hash()`` salting), and the order in which a
DataLoader's workers visit indices does not matter. Different *streams* of the same sample
(scene, albedo, background, sensor) get independent generators, so turning an effect on or off
never changes what the others draw.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1

STREAMS = {"scene": 1, "albedo": 2, "background": 3, "sensor": 4, "views": 5, "shade": 6}


def splitmix64(x: int) -> int:
    """SplitMix64 finaliser of a 64-bit integer: ``z = (x + φ); z ^= z >> 30; z *= c1; ...``."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def index_seed(seed: int, index: int, stream: str | int = "scene") -> int:
    """A 63-bit seed for ``(seed, index, stream)``; deterministic across runs and machines."""
    s = STREAMS[stream] if isinstance(stream, str) else int(stream)
    h = splitmix64(int(seed) & _MASK64)
    h = splitmix64(h ^ (int(index) & _MASK64))
    h = splitmix64(h ^ s)
    return h & ((1 << 63) - 1)


def generator_for(seed: int, index: int, stream: str | int = "scene") -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`index_seed`."""
    return torch.Generator().manual_seed(index_seed(seed, index, stream))
