"""facelab.gan.triplane_eval: the summary of the multi-view consistency checks."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.gan.triplane_eval import _consistency_summary, depth_stats


def test_consistency_summary_skips_pairs_without_overlap():
    errs = [torch.tensor([0.1, float("nan")]), torch.tensor([0.3, 0.2])]
    covs = [torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.5])]
    stats = [{"mean": 2.0, "relief": 0.2}, {"mean": 4.0, "relief": 0.4}]
    out = _consistency_summary(errs, covs, stats)
    assert out["error"] == pytest.approx(0.2)  # (0.1 + 0.3 + 0.2) / 3: the NaN pair is left out
    assert out["coverage"] == pytest.approx(0.5)  # every pair counts
    assert out["pairs"] == 3
    assert out["depth_mean"] == pytest.approx(3.0) and out["depth_relief"] == pytest.approx(0.3)


def test_consistency_summary_without_any_overlap_is_nan():
    out = _consistency_summary([torch.full((2,), float("nan"))], [torch.zeros(2)], [{"mean": 1.0}])
    assert math.isnan(out["error"]) and out["pairs"] == 0 and out["coverage"] == 0.0


def test_depth_stats_of_a_masked_ramp():
    depth = torch.linspace(1.0, 2.0, 101).reshape(1, 1, 101).expand(1, 2, 101)
    mask = torch.zeros(1, 2, 101, dtype=torch.bool)
    mask[:, 0] = True
    s = depth_stats(depth, mask)
    assert s["mean"] == pytest.approx(1.5) and s["foreground"] == pytest.approx(0.5)
    assert s["relief"] == pytest.approx(0.9)  # 95th - 5th percentile of a uniform ramp
