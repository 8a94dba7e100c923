"""The built-in **synthetic** face model: ``facelab.models.load("builtin")``.

It is not a scan-based model. facelab builds it from formulas in a few hundred milliseconds,
so the book, the tests and users without downloads always have a 3DMM to play with. It has
every part a real model has, with the same conventions (cm, y up, +z out of the face):

* **Topology**: a latitude/longitude grid wrapped around a head (``N`` columns of azimuth,
  ``M`` rows of elevation, closed at the crown by a pole, open at the neck). The azimuth is
  spaced non-uniformly, ``a(s) = pi (0.4 s + 0.6 s^3)`` for ``s`` uniform in ``[-1, 1)``, so
  columns are ~3x denser across the face than at the back; rows are densest over the face.
* **Mean shape**: a superellipsoid head (narrower jaw, cylindrical neck) plus smooth Gaussian
  bumps along +z for the nose (bridge, tip, alae), brow ridges, eye sockets and eyeballs,
  cheekbones, lips and mouth line, chin, and ears on the sides. Every bump comes in mirrored
  pairs, so the mean is exactly left/right symmetric and the symmetry map is exact by
  construction: vertex ``(row i, column j)`` mirrors ``(i, (N - j) mod N)``.
* **Identity**: PCA of 96 random smooth deformation fields (Gaussian radial-basis
  displacements over the head plus random anisotropic scalings), seeded, so the components
  are orthogonal with decreasing std (``identity_std``, cm); the basis holds each component at
  one std, so identity weights are standard-normal.
* **Expressions**: 15 named blendshapes (ARKit-style names as in ICT-FaceKit: ``jawOpen``,
  ``mouthSmile_L`` ...; ``_L`` is the subject's left, +x) written as local smooth deformations.
* **UVs**: a cylindrical unwrap ``u = (s + 1) / 2``, ``v`` by row, with a seam at the back of
  the head (the seam column has two UV vertices, so ``uvs`` has more rows than ``mean``).
* **Landmarks**: the 68 iBUG points are designed 2D feature positions on the face; each picks
  the nearest front-facing vertex.
"""

from __future__ import annotations

import numpy as np
import torch

from .morphable import MorphableModel

N_COLS = 72
_NECK_ROWS = 4
_FACE_ROWS = 52
_TOP_ROWS = 8

# (x0, y0, sx, sy, amplitude) in cm of the +z displacement bumps; "±" entries are mirrored.
_BUMPS_CENTRE = [
    (0.0, 1.2, 0.55, 1.5, 0.9),  # nose bridge
    (0.0, -1.5, 0.8, 0.75, 1.7),  # nose tip
    (0.0, -3.95, 1.7, 0.45, 0.55),  # upper lip
    (0.0, -5.0, 1.4, 0.45, 0.45),  # lower lip
    (0.0, -4.45, 2.2, 0.14, -0.35),  # mouth line
    (0.0, -7.2, 1.6, 1.0, 0.7),  # chin
    (0.0, -6.0, 1.3, 0.4, -0.25),  # labiomental fold
]
_BUMPS_PAIRED = [
    (1.0, -1.8, 0.5, 0.45, 0.55),  # nose alae
    (3.2, 1.5, 1.4, 0.95, -0.95),  # eye sockets
    (3.2, 1.5, 0.85, 0.5, 0.45),  # eyeballs under the lids
    (3.1, 3.0, 1.7, 0.55, 0.4),  # brow ridges
    (4.4, -0.6, 1.2, 1.0, 0.45),  # cheekbones
]

# Designed iBUG-68 positions (x, y) in cm; x < 0 is the subject's right (image left).
_RIGHT_BROW = [(-4.9, 2.7), (-4.1, 3.15), (-3.1, 3.35), (-2.1, 3.3), (-1.2, 3.05)]
_RIGHT_EYE = [(-4.4, 1.4), (-3.7, 1.8), (-2.8, 1.8), (-2.0, 1.4), (-2.8, 1.05), (-3.7, 1.05)]


def _landmark_targets() -> np.ndarray:
    t = np.linspace(0.0, np.pi, 17)
    jaw = np.stack([-6.9 * np.cos(t), 1.2 - 9.2 * np.sin(t)], 1)
    jaw[8, 0] = 0.0
    rb = np.array(_RIGHT_BROW)
    lb = rb[::-1] * [-1, 1]
    nose = np.array([(0, 1.6), (0, 0.5), (0, -0.5), (0, -1.5)])
    nostrils = np.array([(-1.0, -2.2), (-0.5, -2.4), (0, -2.5), (0.5, -2.4), (1.0, -2.2)])
    re = np.array(_RIGHT_EYE)
    le = re[[3, 2, 1, 0, 5, 4]] * [-1, 1]
    mouth = np.array(
        [
            (-2.4, -4.45), (-1.55, -3.95), (-0.6, -3.7), (0, -3.8), (0.6, -3.7), (1.55, -3.95),
            (2.4, -4.45), (1.55, -5.0), (0.7, -5.3), (0, -5.4), (-0.7, -5.3), (-1.55, -5.0),
            (-2.05, -4.45), (-0.8, -4.25), (0, -4.25), (0.8, -4.25), (2.05, -4.45),
            (0.8, -4.65), (0, -4.65), (-0.8, -4.65),
        ]
    )  # fmt: skip
    out = np.concatenate([jaw, rb, lb, nose, nostrils, re, le, mouth], 0)
    assert out.shape == (68, 2)
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _gauss(x, y, x0, y0, sx, sy):
    return np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))


def _grid():
    s = -1.0 + 2.0 * np.arange(N_COLS) / N_COLS
    az = np.pi * (0.4 * s + 0.6 * s**3)  # (N,) azimuth, 0 = front (+z), +x = face's left
    el_face = np.linspace(-58.0, 38.0, _FACE_ROWS, endpoint=False)
    el_top = np.linspace(38.0, 84.0, _TOP_ROWS)
    el = np.deg2rad(np.concatenate([el_face, el_top]))
    return s, az, el


def _base_shape():
    """Head surface: (V, 3) base positions, front weight, and grid bookkeeping."""
    s, az, el = _grid()
    ry, rx0, rz0, p = 11.0, 7.6, 9.4, 2.6
    y_rows = ry * np.sin(el)
    c = np.cos(el)
    # narrower jaw below the cheekbones
    jaw = 1.0 - 0.2 * _smoothstep((-1.0 - y_rows) / 7.0)
    rx_rows = rx0 * c * jaw
    rz_rows = rz0 * c
    zc_rows = np.zeros_like(y_rows)
    # neck rows below
    y_neck = np.linspace(-14.0, -9.9, _NECK_ROWS)
    y_rows = np.concatenate([y_neck, y_rows])
    rx_rows = np.concatenate([np.linspace(4.4, 4.0, _NECK_ROWS), rx_rows])
    rz_rows = np.concatenate([np.linspace(4.8, 4.4, _NECK_ROWS), rz_rows])
    zc_rows = np.concatenate([np.full(_NECK_ROWS, -1.8), zc_rows])
    sa, ca = np.sin(az), np.cos(az)
    # superellipse cross-section (flatter face than an ellipse)
    ex = np.sign(sa) * np.abs(sa) ** (2.0 / p)
    ez = np.sign(ca) * np.abs(ca) ** (2.0 / p)
    X = rx_rows[:, None] * ex[None, :]
    Y = np.broadcast_to(y_rows[:, None], X.shape)
    Z = rz_rows[:, None] * ez[None, :] + zc_rows[:, None]
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    top = np.array([[0.0, ry * 0.995 + 0.05, 0.0]])
    verts = np.concatenate([verts, top], 0)
    front = np.concatenate(
        [np.broadcast_to(_smoothstep((ca - 0.15) / 0.45)[None, :], X.shape).reshape(-1), [0.0]]
    )
    return verts, front, s, az, len(y_rows)


def _features(base: np.ndarray, front: np.ndarray, az_v: np.ndarray) -> np.ndarray:
    x, y = base[:, 0], base[:, 1]
    dz = np.zeros(len(base))
    for x0, y0, sx, sy, a in _BUMPS_CENTRE:
        dz += a * _gauss(x, y, x0, y0, sx, sy)
    for x0, y0, sx, sy, a in _BUMPS_PAIRED:
        dz += a * (_gauss(x, y, x0, y0, sx, sy) + _gauss(x, y, -x0, y0, sx, sy))
    disp = np.zeros_like(base)
    disp[:, 2] = dz * front
    # ears: outward bumps on the sides (azimuth +-90 deg), y ~ 0.5
    ear = np.exp(-0.5 * (((np.abs(az_v) - 1.7) / 0.12) ** 2 + ((y - 0.3) / 1.4) ** 2))
    disp[:, 0] += 0.7 * ear * np.sign(x)
    return base + disp


def _topology(M: int, N: int):
    idx = np.arange(M * N).reshape(M, N)
    pole = M * N
    j1 = (np.arange(N) + 1) % N
    a = idx[:-1, :]
    b = idx[:-1, j1]
    c = idx[1:, j1]
    d = idx[1:, :]
    tris = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)], 0
    )
    fan = np.stack([idx[-1, :], idx[-1, j1], np.full(N, pole)], -1)
    faces = np.concatenate([tris, fan], 0)
    # UVs: (M, N + 1) grid (column N duplicates column 0 at u = 1: the seam) + N pole copies
    uidx = np.arange(M * (N + 1)).reshape(M, N + 1)
    ua, ub = uidx[:-1, :-1], uidx[:-1, 1:]
    uc, ud = uidx[1:, 1:], uidx[1:, :-1]
    uv_tris = np.concatenate(
        [np.stack([ua, ub, uc], -1).reshape(-1, 3), np.stack([ua, uc, ud], -1).reshape(-1, 3)], 0
    )
    upole = M * (N + 1) + np.arange(N)
    uv_fan = np.stack([uidx[-1, :-1], uidx[-1, 1:], upole], -1)
    uv_faces = np.concatenate([uv_tris, uv_fan], 0)
    u = np.arange(N + 1) / N
    v = np.arange(M) / M
    uv_grid = np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)
    uv_pole = np.stack([(np.arange(N) + 0.5) / N, np.ones(N)], -1)
    uvs = np.concatenate([uv_grid, uv_pole], 0)
    sym = np.concatenate([idx[:, (N - np.arange(N)) % N].reshape(-1), [pole]])
    return faces, uvs, uv_faces, sym


def _identity_modes(base: np.ndarray, n_samples: int = 96, k: int = 40, seed: int = 0):
    """PCA of ``n_samples`` random smooth deformation fields, computed in coefficient space.

    Field ``s`` is ``X_s[v, d] = sum_c kern[v, c] coef[s, c, d] + scale[s, d] base[v, d]``:
    a Gaussian RBF displacement (``C`` centres on the head, width 3.5 cm) plus an anisotropic
    scaling. Per coordinate ``d`` this is ``X_s[:, d] = F_d a_{s,d}`` with the ``(V, C + 1)``
    dictionary ``F_d = [kern, base[:, d]]``, so the sample Gram matrix is
    ``X X^T = sum_d A_d (F_d^T F_d) A_d^T`` -- no ``(S, 3V)`` matrix is ever formed. Its
    eigenvectors ``U`` give the components ``U^T X / sv`` and the stds ``sv / sqrt(S - 1)``.
    """
    rng = np.random.default_rng(seed)
    V = base.shape[0]
    C = 48
    centres = base[rng.choice(V, size=C, replace=False)]
    coef = rng.standard_normal((n_samples, C, 3)) * 0.35
    scale = rng.standard_normal((n_samples, 3)) * np.array([0.045, 0.04, 0.05])
    d2 = ((base[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    kern = np.exp(-d2 / (2 * 3.5**2))  # (V, C)
    dicts = [np.concatenate([kern, base[:, d : d + 1]], 1) for d in range(3)]  # (V, C+1)
    coefs = [np.concatenate([coef[:, :, d], scale[:, d : d + 1]], 1) for d in range(3)]
    coefs = [a - a.mean(0, keepdims=True) for a in coefs]  # centre the samples
    gram = sum(a @ (f.T @ f) @ a.T for a, f in zip(coefs, dicts))  # (S, S), small products
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1][:k]
    sv = np.sqrt(np.maximum(evals[order], 0.0))
    U = evecs[:, order]  # (S, k)
    comps = np.stack([f @ (a.T @ U) for a, f in zip(coefs, dicts)], -1)  # (V, k, 3)
    comps = comps.transpose(1, 0, 2).reshape(k, -1) / sv[:, None]
    std = sv / np.sqrt(n_samples - 1)
    # deterministic sign: largest-magnitude entry positive
    sign = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    comps = comps * sign[:, None]
    basis = (std[:, None] * comps).reshape(k, V, 3)
    return basis, std


def _expressions(mean: np.ndarray, front: np.ndarray):
    x, y, z = mean[:, 0], mean[:, 1], mean[:, 2]
    names, deltas = [], []

    def add(name, d):
        names.append(name)
        deltas.append(d * front[:, None])

    def g(x0, y0, sx, sy):
        return _gauss(x, y, x0, y0, sx, sy)

    def vec(w, dx, dy, dz):
        return np.stack([w * dx, w * dy, w * dz], -1)

    # jawOpen: rotate the lower face about a hinge in front of the ears
    w = _smoothstep((-4.45 - y) / 0.6) * _smoothstep((6.5 - np.abs(x)) / 2.5)
    w *= _smoothstep((y + 12.0) / 2.0)
    ang = 0.22
    hy, hz = 0.5, -1.0
    py, pz = y - hy, z - hz
    ry = np.cos(ang) * py + np.sin(ang) * pz + hy
    rz = -np.sin(ang) * py + np.cos(ang) * pz + hz
    add("jawOpen", np.stack([0 * x, w * (ry - y), w * (rz - z)], -1))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        add(f"mouthSmile_{side}", vec(g(2.4 * sx_, -4.45, 1.0, 0.9), 0.35 * sx_, 0.45, -0.15))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        add(f"mouthFrown_{side}", vec(g(2.4 * sx_, -4.6, 0.9, 0.8), 0.05 * sx_, -0.35, 0.0))
    wl = g(0.0, -4.45, 1.8, 1.0)
    add("mouthPucker", np.stack([-0.25 * x * wl, 0 * x, 0.5 * wl], -1))
    add("browInnerUp", vec(g(1.5, 3.1, 0.9, 0.7) + g(-1.5, 3.1, 0.9, 0.7), 0.0, 0.45, 0.0))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        add(f"browDown_{side}", vec(g(3.1 * sx_, 3.0, 1.6, 0.8), -0.1 * sx_, -0.35, 0.0))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        add(f"browOuterUp_{side}", vec(g(4.2 * sx_, 3.0, 1.0, 0.8), 0.0, 0.4, 0.0))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        wb = g(3.2 * sx_, 1.5, 1.0, 0.6) * np.clip(y - 1.3, 0.0, 1.0)
        add(f"eyeBlink_{side}", vec(wb, 0.0, -0.9, 0.05))
    wc = g(4.0, -3.0, 1.4, 1.4) + g(-4.0, -3.0, 1.4, 1.4)
    add("cheekPuff", np.stack([0.3 * np.sign(x) * wc, 0 * x, 0.35 * wc], -1))
    for side, sx_ in (("L", 1.0), ("R", -1.0)):
        add(f"noseSneer_{side}", vec(g(0.9 * sx_, -1.2, 0.6, 0.6), 0.0, 0.25, 0.0))
    return np.stack(deltas, 0), names


def build_builtin(dtype: torch.dtype = torch.float32) -> MorphableModel:
    """Construct the synthetic model (deterministic; ~0.1-0.3 s)."""
    base, front, s, az, n_rows = _base_shape()
    N = N_COLS
    az_v = np.concatenate([np.tile(az, n_rows), [0.0]])
    mean = _features(base, front, az_v)
    faces, uvs, uv_faces, sym = _topology(n_rows, N)
    # landmarks: nearest front-facing vertex (in x, y) to each designed position
    targets = _landmark_targets()
    cand = np.nonzero(np.concatenate([np.cos(np.tile(az, n_rows)), [0.0]]) > 0.05)[0]
    cand = cand[mean[cand, 1] > -11.0]
    d2 = ((mean[cand, None, :2] - targets[None, :, :]) ** 2).sum(-1)
    landmarks = cand[d2.argmin(0)]
    id_basis, id_std = _identity_modes(base)
    expr, names = _expressions(mean, front)
    x, y = mean[:, 0], mean[:, 1]
    face = (front > 0.5) & (y > -9.0) & (y < 6.5)
    eyes = ((np.abs(x) - 3.2) / 1.3) ** 2 + ((y - 1.5) / 0.7) ** 2 < 1.0
    mouth = (x / 2.7) ** 2 + ((y + 4.5) / 1.2) ** 2 < 1.0
    nose = ((x / 1.5) ** 2 + ((y + 0.3) / 2.4) ** 2 < 1.0) & (front > 0.5)
    regions = {
        "face": face,
        "skin": np.ones(len(mean), dtype=bool),
        "eyes": eyes & (front > 0.5),
        "mouth": mouth & (front > 0.5),
        "nose": nose,
    }
    from .contours import jaw_contour_candidates

    contours = jaw_contour_candidates(mean, landmarks, np.nonzero(face)[0])
    return MorphableModel(
        mean=torch.from_numpy(mean),
        faces=torch.from_numpy(faces),
        identity_basis=torch.from_numpy(id_basis),
        identity_std=torch.from_numpy(id_std),
        expression_basis=torch.from_numpy(expr),
        expression_kind="blendshapes",
        expression_names=names,
        uvs=torch.from_numpy(uvs),
        uv_faces=torch.from_numpy(uv_faces),
        landmarks=torch.from_numpy(landmarks),
        contour_candidates=contours,
        regions=regions,
        symmetry=torch.from_numpy(sym),
        name="builtin",
        units="cm",
        license="MIT (synthetic, generated by facelab's own code)",
        source="facelab.models.builtin (synthetic parametric head; not a scan-based model)",
        meta={"synthetic": True},
        dtype_=dtype,
    )


__all__ = ["build_builtin"]
