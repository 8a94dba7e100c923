"""Landmark refinement: a cascade of linear regressors that moves a detector's 68 points onto
the *model's* landmarks (the Supervised Descent Method, Xiong & De la Torre 2013).

A detector's landmark is not the model's landmark vertex: dlib's jaw points lie on the
visible contour, its eye corners and nose are defined by its annotators, and it is noisy on
images unlike its training photos. The fitter wants the projections of the model's landmark
vertices (``model.landmarks``, the jaw fixed on the surface). The refiner is trained to
produce exactly those, on rendered faces with known geometry
(``scripts/train_landmark_refiner.py``), starting from what the detector gives.

Each stage :math:`k` works in a normalised frame: :math:`T_k` is the similarity that maps the
current points :math:`x_k` (68, 2) onto a reference shape :math:`\\bar x` (mean of the
training targets, centred, RMS radius 1) in the least-squares sense
(:func:`~facelab.vision.align.similarity_transform`). Around each point it samples the
grey image on a ``grid x grid`` lattice of half-width :math:`r_k` (normalised units, so the
patch turns and scales with the face) and takes the lattice's horizontal and vertical
differences, divided by their RMS over the face (contrast normalisation):
:math:`\\phi_k(I, x_k) \\in \\mathbb{R}^{68 \\cdot 2 g (g-1)}`. Then

.. math::

    x_{k+1} = T_k^{-1}\\big(T_k(x_k) + \\phi_k R_k + b_k\\big),

with :math:`(R_k, b_k)` the ridge regression of the normalised displacement
:math:`T_k(x^*) - T_k(x_k)` on :math:`\\phi_k` over the training faces (stage :math:`k`'s
inputs are stage :math:`k-1`'s outputs, on the detector's points plus jittered copies).

Points are in full-resolution pixel coordinates with pixel centres at +0.5 (as
:class:`~facelab.vision.detect.Face`). Device and dtype follow the image.

Measured (issue 11; ``benchmarks/results/landmark_refiner_tuning.json``, 1,209 detected world
faces, 200 held out, ridge chosen on them; tuning faces only): on the held-out world faces
the mean inner-point error drops from 4.0 % to 3.1 % of the face size (``|yaw| < 20``) and from
7.6 % to 6.3 % (20-45), the jaw's from 6.3 % to 5.3 % and 13.1 % to 9.2 %; on the Blender
tuning faces, a renderer it never saw, the median inner error from 4.5 % to 3.2 % (``|yaw| < 20``).
Fed to the fit (fixed jaw, the detected-landmark priors) it does **not** beat the mean face:
landmark-only fits at 0.92-1.06x the mean face's scan-to-mesh error, with the photometric
stage 0.95-1.22x, against 0.94-1.14x for ``facelab fit`` as shipped. A detector-quality
landmark set at 3 % of the face size does not pin the shape; the refiner is therefore not
shipped or used by :func:`facelab.fit.fit` (``scripts/train_landmark_refiner.py`` trains
it in about 35 minutes on one core, most of it rendering and detecting).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import AssetMissing, InvalidInput, ModelFormatError
from .align import apply_transform, invert_transform, similarity_transform

__all__ = [
    "FORMAT",
    "LandmarkRefiner",
    "RefinerConfig",
    "evaluate_refiner",
    "patch_features",
    "train_refiner",
]

FORMAT = "facelab-landmark-refiner"
VERSION = 1


@dataclass
class RefinerConfig:
    """Settings of :func:`train_refiner` (saved with every refiner).

    Attributes:
        radii: per-stage patch half-width in normalised units (the reference shape has RMS
            radius 1: an eye is about 0.2 wide); the number of stages is ``len(radii)``.
        grid: lattice side per point (``2 grid (grid - 1)`` features per point).
        ridge: ridge weight, relative to the mean diagonal of ``X^T X``.
        jitter: extra training copies per face, the detector's points moved by a random
            similarity (``jitter_scale``: relative scale, rotation in radians and translation
            in normalised units).
        seed: the jitter's seed.
        max_init_error: training faces whose detector points are further than this from the
            targets (mean point error, x face size) are left out: a detector failure (the
            points on the wrong structure) is not a refinement to learn.
    """

    radii: tuple[float, ...] = (0.22, 0.15, 0.10)
    grid: int = 6
    ridge: float = 0.05
    jitter: int = 2
    jitter_scale: float = 0.04
    seed: int = 0
    max_init_error: float = 0.15

    def __post_init__(self) -> None:
        self.radii = tuple(float(r) for r in self.radii)
        if not self.radii or min(self.radii) <= 0:
            raise InvalidInput(f"radii must be positive, got {self.radii}")
        if self.grid < 2:
            raise InvalidInput(f"grid must be >= 2, got {self.grid}")
        if self.ridge < 0:
            raise InvalidInput(f"ridge must be >= 0, got {self.ridge}")


def _gray(images: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] (or uint8) -> ``(B, 1, H, W)`` luma in [0, 1]."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise InvalidInput(
            f"images must be (B, 3, H, W) or (B, 1, H, W), got {tuple(images.shape)}"
        )
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
        x = (x * w[None, :, None, None]).sum(1, keepdim=True)
    return x


def patch_features(
    gray: torch.Tensor, points: torch.Tensor, to_norm: torch.Tensor, radius: float, grid: int
) -> torch.Tensor:
    """``(B, 68 * 2 g (g-1))`` contrast-normalised lattice differences around each point.

    Args:
        gray: ``(B, 1, H, W)`` grey images.
        points: ``(B, P, 2)`` pixel coordinates (centres at +0.5).
        to_norm: ``(B, 2, 3)`` similarity from pixels to the normalised frame.
        radius: the lattice's half-width in normalised units.
        grid: lattice side ``g``.
    """
    b, _, h, w = gray.shape
    t = torch.linspace(-radius, radius, grid, dtype=gray.dtype, device=gray.device)
    off = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)  # (g*g, 2) x, y
    back = invert_transform(to_norm.to(gray.dtype))
    pn = apply_transform(to_norm.to(gray.dtype), points.to(gray.dtype))  # (B, P, 2)
    samp = pn[:, :, None, :] + off[None, None]  # (B, P, g*g, 2) normalised
    pix = apply_transform(back, samp.reshape(b, -1, 2)).reshape(samp.shape)
    uv = torch.stack([pix[..., 0] / w * 2 - 1, pix[..., 1] / h * 2 - 1], -1)
    v = F.grid_sample(gray, uv, mode="bilinear", padding_mode="border", align_corners=False)
    v = v[:, 0].reshape(b, points.shape[1], grid, grid)  # rows: y, cols: x
    dx = (v[..., :, 1:] - v[..., :, :-1]).reshape(b, -1)
    dy = (v[..., 1:, :] - v[..., :-1, :]).reshape(b, -1)
    f = torch.cat([dx, dy], 1)
    return f / f.square().mean(1, keepdim=True).sqrt().clamp_min(1e-6)


def _reference_shape(targets: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Generalised Procrustes mean of ``(N, P, 2)`` shapes: centred, RMS radius 1."""

    def norm(s: torch.Tensor) -> torch.Tensor:
        s = s - s.mean(0)
        return s / s.square().sum(-1).mean().sqrt()

    ref = norm(targets[0].double())
    x = targets.double()
    for _ in range(iters):
        M = similarity_transform(x, ref[None].expand_as(x))
        ref = norm(apply_transform(M, x).mean(0))
    return ref


class LandmarkRefiner:
    """A trained cascade (:func:`train_refiner`); ``refine(images, points) -> points``."""

    def __init__(
        self,
        config: RefinerConfig,
        reference: torch.Tensor,
        R: list[torch.Tensor],
        b: list[torch.Tensor],
        meta: dict | None = None,
    ) -> None:
        if len(R) != len(config.radii) or len(b) != len(R):
            raise InvalidInput(f"{len(config.radii)} stages in the config, {len(R)} regressors")
        self.config, self.reference, self.R, self.b = config, reference, R, b
        self.meta = meta or {}

    @property
    def n_points(self) -> int:
        return self.reference.shape[0]

    def _frames(self, points: torch.Tensor) -> torch.Tensor:
        ref = self.reference.to(points)
        return similarity_transform(points, ref[None].expand_as(points))

    def stage(self, k: int, gray: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Stage ``k`` on ``(B, P, 2)`` points."""
        M = self._frames(points)
        f = patch_features(gray, points, M, self.config.radii[k], self.config.grid)
        d = f @ self.R[k].to(f) + self.b[k].to(f)
        pn = apply_transform(M, points) + d.reshape(points.shape)
        return apply_transform(invert_transform(M), pn)

    @torch.no_grad()
    def refine(self, images: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """``(B, P, 2)`` (or ``(P, 2)``) refined points of ``images (B, 3, H, W)`` (or
        ``(3, H, W)``), in [0, 1] or uint8, from a detector's ``points``."""
        single = points.dim() == 2
        if single:
            points = points[None]
            if images.dim() == 3:
                images = images[None]
        if points.shape[1:] != (self.n_points, 2) or points.shape[0] != images.shape[0]:
            raise InvalidInput(
                f"points must be (B, {self.n_points}, 2) for B images, got {tuple(points.shape)} "
                f"for {images.shape[0]}"
            )
        if not torch.isfinite(points).all():
            raise InvalidInput("points contain NaN/inf (a missed face cannot be refined)")
        gray = _gray(images)
        x = points.to(gray.dtype)
        for k in range(len(self.R)):
            x = self.stage(k, gray, x)
        return x[0] if single else x

    def save(self, stem: str | os.PathLike, meta: dict | None = None) -> tuple[Path, Path]:
        """``stem.safetensors`` + ``stem.json`` (config, provenance ``meta``)."""
        from safetensors.torch import save_file

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"reference": self.reference.float().contiguous()}
        for k, (r, bb) in enumerate(zip(self.R, self.b)):
            tensors[f"R.{k}"] = r.float().contiguous()
            tensors[f"b.{k}"] = bb.float().contiguous()
        save_file(tensors, str(stem.with_suffix(".safetensors")), metadata={"format": FORMAT})
        doc = {"format": FORMAT, "version": VERSION, "config": asdict(self.config),
               **(meta if meta is not None else self.meta)}  # fmt: skip
        stem.with_suffix(".json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    @classmethod
    def load(cls, stem: str | os.PathLike, device: str | torch.device = "cpu") -> LandmarkRefiner:
        """Read a :meth:`save`'d refiner; clear errors for anything else (never a pickle)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        stem = Path(stem)
        if stem.suffix in (".json", ".safetensors"):
            stem = stem.with_suffix("")
        wp, jp = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
        for p in (wp, jp):
            if not p.is_file():
                raise AssetMissing(
                    f"{p}: no such landmark refiner file (NAME.safetensors + NAME.json)"
                )
        try:
            meta = json.loads(jp.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFormatError(f"{jp}: not a landmark refiner's JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFormatError(
                f'{jp}: not a facelab landmark refiner (no "format": "{FORMAT}")'
            )
        try:
            t = load_file(str(wp), device=str(device))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise ModelFormatError(f"{wp}: not a safetensors file ({type(e).__name__}: {e})") from e
        cfg = RefinerConfig(**meta["config"])
        n = len(cfg.radii)
        try:
            R = [t[f"R.{k}"] for k in range(n)]
            b = [t[f"b.{k}"] for k in range(n)]
            ref = t["reference"]
        except KeyError as e:
            raise ModelFormatError(f"{wp}: missing tensor {e} for {n} stages") from e
        feat = ref.shape[0] * 2 * cfg.grid * (cfg.grid - 1)
        if any(r.shape != (feat, 2 * ref.shape[0]) for r in R):
            raise ModelFormatError(f"{wp}: regressor shapes do not match the config's grid")
        meta = {k: v for k, v in meta.items() if k not in ("format", "version", "config")}
        return cls(cfg, ref, R, b, meta)


def _jittered(points: torch.Tensor, ref: torch.Tensor, n: int, scale: float, g: torch.Generator):
    """``n`` copies of ``points (N, P, 2)`` moved by random similarities (normalised units)."""
    M = similarity_transform(points, ref[None].expand_as(points).to(points))
    pn = apply_transform(M, points)
    outs = []
    for _ in range(n):
        m = points.shape[0]
        s = 1 + scale * torch.randn(m, 1, 1, generator=g, dtype=points.dtype)
        a = scale * torch.randn(m, generator=g, dtype=points.dtype)
        rot = torch.stack([torch.cos(a), -torch.sin(a), torch.sin(a), torch.cos(a)], -1).reshape(
            m, 2, 2
        )
        t = scale * torch.randn(m, 1, 2, generator=g, dtype=points.dtype)
        q = s * (pn @ rot.transpose(1, 2)) + t
        outs.append(apply_transform(invert_transform(M), q))
    return outs


def _point_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(N, P)`` point errors divided by each face's size (sqrt of the target box area)."""
    span = target.amax(1) - target.amin(1)
    size = (span[:, 0] * span[:, 1]).sqrt()
    return (pred - target).norm(dim=-1) / size[:, None]


def train_refiner(
    images: torch.Tensor,
    detected: torch.Tensor,
    targets: torch.Tensor,
    config: RefinerConfig | None = None,
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    batch: int = 64,
) -> tuple[LandmarkRefiner, dict]:
    """Fit the cascade; returns ``(refiner, log)``.

    Args:
        images: ``(N, 3, H, W)`` uint8 or [0, 1].
        detected: ``(N, P, 2)`` the detector's points (faces with NaN are skipped).
        targets: ``(N, P, 2)`` the model's landmark projections.
        val: optional held-out ``(images, detected, targets, yaw)``: its errors per stage go
            to the log (faces the detector missed are counted, not refined).

    The log holds, per stage, the mean point error (x face size) of the training inputs
    and outputs, and of the held-out faces, inner points (17-67) and jaw (0-16) apart.
    """
    cfg = config or RefinerConfig()
    found = torch.isfinite(detected).all(-1).all(-1)
    err = torch.full((len(detected),), torch.inf, dtype=torch.float64)
    if bool(found.any()):
        err[found] = _point_error(detected[found].double(), targets[found].double()).mean(1)
    ok = found & (err <= cfg.max_init_error)
    if int(ok.sum()) < 10:
        raise InvalidInput(
            f"need at least 10 detected training faces within max_init_error, got {int(ok.sum())}"
        )
    imgs, det, tgt = images[ok], detected[ok].double(), targets[ok].double()
    ref = _reference_shape(tgt)
    g = torch.Generator().manual_seed(cfg.seed)
    starts = [det, *_jittered(det, ref, cfg.jitter, cfg.jitter_scale, g)]
    x = torch.cat(starts)  # (N * (1 + jitter), P, 2)
    t = tgt.repeat(len(starts), 1, 1)
    idx = torch.arange(len(det)).repeat(len(starts))
    grays = _gray(imgs).double() if imgs.dtype != torch.uint8 else None

    def gray_of(ii: torch.Tensor) -> torch.Tensor:
        return grays[ii] if grays is not None else _gray(imgs[ii]).double()

    Rs: list[torch.Tensor] = []
    bs: list[torch.Tensor] = []
    log: dict = {"faces": int(ok.sum()), "skipped_missed": int((~found).sum()),
                 "skipped_detector_failures": int((found & ~ok).sum()),
                 "samples": int(x.shape[0]), "stages": []}  # fmt: skip
    P = ref.shape[0]
    for k, radius in enumerate(cfg.radii):
        feats, disp, frames = [], [], []
        for i in range(0, x.shape[0], batch):
            xb, tb = x[i : i + batch], t[i : i + batch]
            M = similarity_transform(xb, ref[None].expand_as(xb))
            feats.append(patch_features(gray_of(idx[i : i + batch]), xb, M, radius, cfg.grid))
            disp.append((apply_transform(M, tb) - apply_transform(M, xb)).reshape(len(xb), -1))
            frames.append(M)
        X, Y, M = torch.cat(feats), torch.cat(disp), torch.cat(frames)
        xm, ym = X.mean(0), Y.mean(0)
        Xc = X - xm
        A = Xc.T @ Xc
        lam = cfg.ridge * float(A.diagonal().mean())
        A.diagonal().add_(lam)
        R = torch.linalg.solve(A, Xc.T @ (Y - ym))
        bb = ym - xm @ R
        before = _point_error(x, t)
        pn = apply_transform(M, x) + (X @ R + bb).reshape(-1, P, 2)
        x = apply_transform(invert_transform(M), pn)
        after = _point_error(x, t)
        Rs.append(R.float())
        bs.append(bb.float())
        row = {"stage": k, "radius": radius, "features": int(X.shape[1]),
               "train_before_inner": float(before[:, 17:].mean()),
               "train_after_inner": float(after[:, 17:].mean()),
               "train_before_jaw": float(before[:, :17].mean()),
               "train_after_jaw": float(after[:, :17].mean())}  # fmt: skip
        log["stages"].append(row)
    refiner = LandmarkRefiner(cfg, ref.float(), Rs, bs, {})
    if val is not None:
        log["held_out"] = evaluate_refiner(refiner, *val)
    return refiner, log


YAW_BINS = ((0.0, 20.0), (20.0, 45.0), (45.0, 70.0))


@torch.no_grad()
def evaluate_refiner(
    refiner: LandmarkRefiner,
    images: torch.Tensor,
    detected: torch.Tensor,
    targets: torch.Tensor,
    yaw: torch.Tensor | None = None,
    batch: int = 64,
) -> list[dict]:
    """Mean point error (x face size) against ``targets`` of the detector's points and the
    refined ones, inner points and jaw apart, by yaw bin (all faces when ``yaw`` is None);
    ``detected`` counts the faces the detector found (only those have errors)."""
    ok = torch.isfinite(detected).all(-1).all(-1)
    yaw = torch.zeros(len(detected)) if yaw is None else yaw
    bins = ((0.0, 1e9),) if yaw is None else YAW_BINS
    ref_pts = torch.full_like(detected, torch.nan)
    ii = torch.nonzero(ok).flatten()
    for i in range(0, len(ii), batch):
        j = ii[i : i + batch]
        ref_pts[j] = refiner.refine(images[j], detected[j].float()).to(ref_pts)
    rows = []
    for lo, hi in bins:
        m = (yaw.abs() >= lo) & (yaw.abs() < hi)
        row = {"bin": f"{lo:.0f}-{hi:.0f}" if hi < 1e9 else "all", "n": int(m.sum()),
               "detected": int((m & ok).sum())}  # fmt: skip
        sel = m & ok
        if int(sel.sum()):
            for name, p in (("detector", detected), ("refined", ref_pts)):
                e = _point_error(p[sel].double(), targets[sel].double())
                row[f"{name}_inner"] = float(e[:, 17:].mean())
                row[f"{name}_jaw"] = float(e[:, :17].mean())
        rows.append(row)
    return rows
