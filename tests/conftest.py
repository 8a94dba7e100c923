"""Shared pytest fixtures.

Tests run single-threaded torch (2 shared cores: oversubscription costs 35x, see
shared/notes/performance.md). Real-data tests read ``FACELAB_DATA`` (CI points it at
``../shared/data``) and skip with a reason when a model is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write to the user's real cache from a test, and never download a missing asset
    on first use (a test of that path unsets ``FACELAB_OFFLINE`` and serves it locally)."""
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("FACELAB_OFFLINE", "1")
    monkeypatch.delenv("FACELAB_MIRROR", raising=False)


def _shared_data() -> Path | None:
    for p in os.environ.get("FACELAB_DATA", "").split(os.pathsep):
        if p and Path(p).is_dir():
            return Path(p)
    cand = REPO.parent / "shared" / "data"
    return cand if cand.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (``$FACELAB_DATA`` or ``../shared/data``); skips if absent."""
    p = _shared_data()
    if p is None:
        pytest.skip("real face-model data not available (set FACELAB_DATA)")
    return p


@pytest.fixture
def with_shared_data(shared_data, monkeypatch) -> Path:
    """Point ``FACELAB_DATA`` at the shared data for one test."""
    monkeypatch.setenv("FACELAB_DATA", str(shared_data))
    return shared_data
