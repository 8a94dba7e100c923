"""Tests for facelab.geometry.alignment (Umeyama / Procrustes)."""

from __future__ import annotations

import math

import pytest
import torch

from facelab.errors import InvalidInput
from facelab.geometry.alignment import (
    SimilarityTransform,
    align_points,
    apply_similarity,
    procrustes,
    umeyama,
)
from facelab.geometry.rotation import axis_angle_to_matrix, random_rotations

D = torch.float64


def _rot2(theta: float) -> torch.Tensor:
    c, s = math.cos(theta), math.sin(theta)
    return torch.tensor([[c, -s], [s, c]], dtype=D)


def test_recovers_known_similarity_3d_batched():
    g = torch.Generator().manual_seed(0)
    b, n = 4, 30
    x = torch.randn(b, n, 3, generator=g, dtype=D)
    r = random_rotations(b, generator=g, dtype=D)
    s = torch.tensor([0.5, 1.0, 2.0, 7.5], dtype=D)
    t = torch.randn(b, 3, generator=g, dtype=D)
    y = apply_similarity(x, s, r, t)
    tf = umeyama(x, y)
    torch.testing.assert_close(tf.scale, s)
    torch.testing.assert_close(tf.rotation, r)
    torch.testing.assert_close(tf.translation, t)
    torch.testing.assert_close(torch.linalg.det(tf.rotation), torch.ones(b, dtype=D))
    # unpacks as (s, R, t) and inverse undoes it
    s2, r2, t2 = tf
    torch.testing.assert_close(tf.inverse().apply(y), x)


def test_recovers_known_similarity_2d():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 2, generator=g, dtype=D)
    r = _rot2(2.5)
    y = apply_similarity(x, torch.tensor(3.0, dtype=D), r, torch.tensor([1.0, -2.0], dtype=D))
    s, rr, t = umeyama(x, y)
    assert float(s) == pytest.approx(3.0)
    torch.testing.assert_close(rr, r)
    torch.testing.assert_close(t, torch.tensor([1.0, -2.0], dtype=D))


def test_noise_and_weights_downweight_outliers():
    g = torch.Generator().manual_seed(2)
    n = 200
    x = torch.randn(n, 3, generator=g, dtype=D)
    r = random_rotations(1, generator=g, dtype=D)[0]
    y = apply_similarity(x, torch.tensor(1.7, dtype=D), r, torch.tensor([0.1, 0.2, 0.3], dtype=D))
    y = y + 0.01 * torch.randn(y.shape, generator=g, dtype=D)
    y[:20] += 5.0 * torch.randn(20, 3, generator=g, dtype=D)  # outliers
    w = torch.ones(n, dtype=D)
    w[:20] = 0.0
    tf_w = umeyama(x, y, w)
    tf_u = umeyama(x, y)
    err_w = (tf_w.rotation - r).abs().max()
    err_u = (tf_u.rotation - r).abs().max()
    assert err_w < 5e-3 and abs(float(tf_w.scale) - 1.7) < 5e-3
    assert err_u > 3 * err_w
    # weights equal to repetition: weight 2 == point given twice
    xs, ys = x[20:40], y[20:40]
    w2 = torch.ones(20, dtype=D)
    w2[:5] = 2.0
    tf_a = umeyama(xs, ys, w2)
    tf_b = umeyama(torch.cat([xs, xs[:5]]), torch.cat([ys, ys[:5]]))
    torch.testing.assert_close(tf_a.rotation, tf_b.rotation)
    torch.testing.assert_close(tf_a.scale, tf_b.scale)
    torch.testing.assert_close(tf_a.translation, tf_b.translation)


def test_reflection_gives_proper_rotation():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 3, generator=g, dtype=D)
    y = x * torch.tensor(
        [-1.0, 1.0, 1.0], dtype=D
    )  # a mirror image: best orthogonal map is a reflection
    tf = umeyama(x, y)
    assert float(torch.linalg.det(tf.rotation)) == pytest.approx(1.0)
    torch.testing.assert_close(
        tf.rotation @ tf.rotation.T, torch.eye(3, dtype=D), atol=1e-12, rtol=0
    )
    # the constrained optimum is worse than the unconstrained reflection, but it is a local best:
    aligned = tf.apply(x)
    base = ((aligned - y) ** 2).sum()
    for eps in (1e-3, -1e-3):
        for axis in range(3):
            d = torch.zeros(3, dtype=D)
            d[axis] = eps
            rp = axis_angle_to_matrix(d) @ tf.rotation
            assert (
                (apply_similarity(x, tf.scale, rp, tf.translation) - y) ** 2
            ).sum() >= base - 1e-9
    # 2D reflection
    x2 = torch.randn(10, 2, generator=g, dtype=D)
    tf2 = umeyama(x2, x2 * torch.tensor([1.0, -1.0], dtype=D))
    assert float(torch.linalg.det(tf2.rotation)) == pytest.approx(1.0)


def test_rigid_procrustes_keeps_unit_scale():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(15, 3, generator=g, dtype=D)
    r = random_rotations(1, generator=g, dtype=D)[0]
    y = apply_similarity(x, 2.0, r, torch.zeros(3, dtype=D))
    tf = procrustes(x, y)
    assert float(tf.scale) == 1.0
    torch.testing.assert_close(tf.rotation, r)
    aligned, tf2 = align_points(x, y)
    torch.testing.assert_close(aligned, y)
    assert isinstance(tf2, SimilarityTransform)


def test_gradient_flows():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(10, 3, generator=g, dtype=D, requires_grad=True)
    y = torch.randn(10, 3, generator=g, dtype=D)
    aligned, _ = align_points(x, y)
    ((aligned - y) ** 2).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_bad_inputs():
    x = torch.zeros(5, 3)
    with pytest.raises(InvalidInput, match="same number of points"):
        umeyama(x, torch.zeros(6, 3))
    with pytest.raises(InvalidInput, match="at least 3"):
        umeyama(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(InvalidInput, match="NaN"):
        umeyama(torch.full((5, 3), float("nan")), torch.zeros(5, 3))
    with pytest.raises(InvalidInput, match=">= 0"):
        umeyama(torch.randn(5, 3), torch.randn(5, 3), -torch.ones(5))
    with pytest.raises(InvalidInput, match="sum to zero"):
        umeyama(torch.randn(5, 3), torch.randn(5, 3), torch.zeros(5))
    with pytest.raises(InvalidInput, match="zero spread"):
        umeyama(torch.ones(5, 3), torch.randn(5, 3))
    with pytest.raises(InvalidInput, match=r"\(\.\.\., N, 2\)"):
        umeyama(torch.zeros(5, 4), torch.zeros(5, 4))
