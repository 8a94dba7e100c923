"""Checks for the exercises of chapter 1, "Faces as data".

Each checker builds small random inputs with a known answer (a known similarity transform,
embeddings of known people) and compares the student's function with facelab's own
implementation or the analytic answer. They run in well under a second and need no photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import exercise


def _random_similarity(g: torch.Generator) -> tuple[float, torch.Tensor, torch.Tensor]:
    a = float(torch.rand((), generator=g, dtype=torch.float64)) * 2 * math.pi - math.pi
    s = 0.2 + 3.0 * float(torch.rand((), generator=g, dtype=torch.float64))
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    t = 100 * torch.randn(2, generator=g, dtype=torch.float64)
    return s, R, t


@exercise(
    "ch1.landmark_nme",
    "landmark NME",
    hint="mean over the 68 points of |pred - gt|, divided by |gt[..., 36, :] - gt[..., 45, :]|",
)
def check_landmark_nme(fn: Callable[..., Any]) -> int:
    from ..vision.ibug68 import landmark_nme

    g = torch.Generator().manual_seed(11)
    gt = 200 * torch.rand(4, 68, 2, generator=g, dtype=torch.float64)
    n = 0
    assert torch.allclose(
        torch.as_tensor(fn(gt, gt.clone()), dtype=torch.float64),
        torch.zeros(4, dtype=torch.float64),
    ), "a perfect prediction must have NME 0 for every image"
    n += 1
    shift = gt + torch.tensor([3.0, 4.0], dtype=torch.float64)  # every point off by 5 px
    iod = (gt[:, 36] - gt[:, 45]).norm(dim=-1)
    got = torch.as_tensor(fn(shift, gt), dtype=torch.float64)
    assert got.shape == (4,), f"one NME per image: expected shape (4,), got {tuple(got.shape)}"
    assert torch.allclose(got, 5.0 / iod), (
        "every point 5 px off must give NME = 5 / (outer-eye-corner distance of the ground truth)"
    )
    n += 1
    pred = gt + 5 * torch.randn(gt.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(
        torch.as_tensor(fn(pred, gt), dtype=torch.float64), landmark_nme(pred, gt)
    ), (
        "does not match facelab.vision.landmark_nme on random landmarks (normalise by the "
        "ground truth's points 36 and 45, not the prediction's)"
    )
    n += 1
    got2 = torch.as_tensor(fn(3 * pred, 3 * gt), dtype=torch.float64)
    assert torch.allclose(got2, landmark_nme(pred, gt)), (
        "NME must not change when the image is scaled"
    )
    return n + 1


@exercise(
    "ch1.similarity_2d",
    "least-squares 2-D similarity (Umeyama)",
    hint="centre both sets, SVD of the cross-covariance dst^T src / N = U D V^T, "
    "R = U diag(1, det(U V^T)) V^T, s = tr(D S) / mean |src_c|^2, t = mean_dst - s R mean_src",
)
def check_similarity_2d(fn: Callable[..., Any]) -> int:
    from ..vision.align import similarity_transform

    g = torch.Generator().manual_seed(12)
    n = 0
    for N in (5, 20):
        s, R, t = _random_similarity(g)
        src = 50 * torch.randn(N, 2, generator=g, dtype=torch.float64)
        dst = s * src @ R.T + t
        M = torch.as_tensor(fn(src, dst), dtype=torch.float64)
        assert M.shape == (2, 3), f"return a (2, 3) matrix, got {tuple(M.shape)}"
        expect = torch.cat([s * R, t[:, None]], 1)
        assert torch.allclose(M, expect, atol=1e-8), (
            f"exact correspondences must give back the true transform:\n{expect}\ngot\n{M}"
        )
        n += 1
        noisy = dst + 2 * torch.randn(dst.shape, generator=g, dtype=torch.float64)
        M2 = torch.as_tensor(fn(src, noisy), dtype=torch.float64)
        assert torch.allclose(M2, similarity_transform(src, noisy), atol=1e-8), (
            "with noisy points the result differs from facelab.vision.similarity_transform"
        )
        n += 1
    # a reflected target: the best *proper* similarity has det(A) > 0
    src = 50 * torch.randn(8, 2, generator=g, dtype=torch.float64)
    dst = src * torch.tensor([-1.0, 1.0], dtype=torch.float64)
    M = torch.as_tensor(fn(src, dst), dtype=torch.float64)
    assert float(torch.linalg.det(M[:, :2])) > 0, (
        "the transform must not reflect (det of the 2x2 part > 0): use the sign fix"
    )
    assert torch.allclose(M, similarity_transform(src, dst), atol=1e-8), (
        "for a mirrored target the result differs from facelab.vision.similarity_transform"
    )
    return n + 1


@exercise(
    "ch1.crop_to_photo",
    "crop points back to the photo",
    hint="for A = s R, the inverse is A^T / s^2 with s^2 = det(A); p = A^{-1} (q - t)",
)
def check_crop_to_photo(fn: Callable[..., Any]) -> int:
    from ..vision.align import apply_transform, invert_transform

    g = torch.Generator().manual_seed(13)
    n = 0
    for _ in range(3):
        s, R, t = _random_similarity(g)
        M = torch.cat([s * R, t[:, None]], 1)
        photo = 300 * torch.rand(68, 2, generator=g, dtype=torch.float64)
        crop = apply_transform(M, photo)
        out = torch.as_tensor(fn(M, crop), dtype=torch.float64)
        assert out.shape == photo.shape, (
            f"expected shape {tuple(photo.shape)}, got {tuple(out.shape)}"
        )
        assert torch.allclose(out, photo, atol=1e-7), (
            "mapping crop points back must give the original photo points"
        )
        n += 1
        q = 112 * torch.rand(5, 2, generator=g, dtype=torch.float64)
        ref = apply_transform(invert_transform(M), q)
        assert torch.allclose(torch.as_tensor(fn(M, q), dtype=torch.float64), ref, atol=1e-7), (
            "differs from facelab.vision.invert_transform on random crop points"
        )
        n += 1
    return n


@exercise(
    "ch1.verification_accuracy",
    "verification accuracy of a distance threshold",
    hint="all pairs i < j (torch.triu_indices(N, N, 1)); predicted same = distance < threshold; "
    "true same = labels equal; return the fraction of agreements",
)
def check_verification_accuracy(fn: Callable[..., Any]) -> int:
    g = torch.Generator().manual_seed(14)
    n = 0
    # two people far apart, two photos each: every pair right at threshold 1
    emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.0, 0.2]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    acc = float(fn(emb, labels, 1.0))
    assert abs(acc - 1.0) < 1e-12, f"well separated people: accuracy should be 1.0, got {acc}"
    n += 1
    # threshold 0.15: the pair at 0.2 becomes "different" (wrong); 5 of 6 pairs right
    acc = float(fn(emb, labels, 0.15))
    assert abs(acc - 5 / 6) < 1e-12, f"threshold 0.15: expected 5/6 of the 6 pairs right, got {acc}"
    n += 1
    acc = float(fn(emb, labels, 100.0))
    assert abs(acc - 2 / 6) < 1e-12, (
        f"a huge threshold calls every pair 'same': only the 2 same pairs are right, got {acc}"
    )
    n += 1
    # random: compare with a brute-force double loop
    e = torch.randn(12, 8, generator=g, dtype=torch.float64)
    lab = torch.randint(0, 4, (12,), generator=g)
    right = total = 0
    for i in range(12):
        for j in range(i + 1, 12):
            right += int((float((e[i] - e[j]).norm()) < 3.5) == bool(lab[i] == lab[j]))
            total += 1
    acc = float(fn(e, lab, 3.5))
    assert abs(acc - right / total) < 1e-12, (
        f"random embeddings: expected {right / total}, got {acc}"
    )
    return n + 1


__all__ = [
    "check_crop_to_photo",
    "check_landmark_nme",
    "check_similarity_2d",
    "check_verification_accuracy",
]
