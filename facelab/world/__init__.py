"""facelab.world: a synthetic photo simulator with exact ground truth (built on the 3DMM)."""

from __future__ import annotations

from .config import Knobs, WorldConfig
from .seeding import generator_for, index_seed

__all__ = ["Knobs", "WorldConfig", "generator_for", "index_seed"]
