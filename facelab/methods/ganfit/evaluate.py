"""Evaluating texture models the way they are used: on rendered faces, in UV space, held out.

- :func:`render_textured`: the built-in head (mean shape, frontal, soft key light) rendered with
  a batch of UV textures, plus its 68 projected landmarks.
- :func:`dlib_features`: 128-D dlib face-recognition embeddings of those renders (the feature
  space of **FID-dlib / KID-dlib**; no Inception network is available offline).
- :func:`project_gan` / :func:`project_pca`: held-out reconstruction — find the latent whose
  texture is closest (L2) to a given map; :func:`reconstruction_errors` reports the RMSE overall
  and of the high-pass residual (``f >= 0.25`` cycles/texel).
- :func:`claim_table`: PCA vs GAN at the same latent size, with the floor rows (the held-out
  data itself and the mean texture).

Textures are sRGB ``(B, 3, S, S)`` in [0, 1] unless said otherwise; GAN outputs are mapped by
``(x + 1) / 2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInput
from ...gan.metrics import band_energy, frechet_distance, kernel_distance, precision_recall

__all__ = [
    "claim_table",
    "dlib_features",
    "fit_pca",
    "gan_samples",
    "high_pass",
    "project_gan",
    "project_pca",
    "reconstruction_errors",
    "render_textured",
]

_MODEL = {}


def _model():
    if "m" not in _MODEL:
        from ...models import load

        _MODEL["m"] = load("builtin")
    return _MODEL["m"]


def _geometry(size: int, distance: float, fov: float, yaw: float) -> dict:
    """The fixed part of :func:`render_textured` (rendered once): per-pixel UV, mask,
    Lambert-SH shading and landmarks of the built-in head's mean shape."""
    key = ("geom", size, distance, fov, yaw)
    if key in _MODEL:
        return _MODEL[key]
    from ...geometry import camera
    from ...render import Renderer
    from ...render.shading import sh_ambient, sh_basis

    m = _model()
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    K = camera.intrinsics(f, f, size / 2, size / 2)
    rot = torch.tensor([[0.0, math.radians(yaw), 0.0]])
    tr = torch.tensor([[0.0, 0.0, distance]])
    a, e = math.radians(25.0), math.radians(20.0)
    d = torch.tensor([[math.sin(a) * math.cos(e), -math.sin(e), -math.cos(a) * math.cos(e)]])
    sh = sh_ambient(0.55) + 0.6 * math.pi * sh_basis(d, lambertian=False)[..., None]
    r = Renderer(size, background=0.0)
    # a texture whose colour is its own (u, v): the render of it is the per-pixel UV
    t = (torch.arange(256, dtype=torch.float32) + 0.5) / 256
    ramp = torch.stack([t[None, :].expand(256, 256), t.flip(0)[:, None].expand(256, 256),
                        torch.zeros(256, 256)])[None]  # fmt: skip
    common = dict(
        K=K, rotation=rot, translation=tr, uvs=m.uvs, uv_faces=m.uv_faces, landmarks=m.landmarks
    )
    uvr = r.render(m.mean[None], m.faces, texture=ramp, **common)
    white = r.render(m.mean[None], m.faces, texture=torch.ones(1, 3, 8, 8), sh=sh, **common)

    def chw(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2) if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3) else x

    uv = chw(uvr.image)[:, :2]  # (1, 2, H, W)
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1)  # (1, H, W, 2)
    mask = uvr.mask.float().reshape(1, 1, size, size)
    _MODEL[key] = {"grid": grid, "mask": mask, "shade": chw(white.image)[:, :3],
                   "landmarks": white.landmarks[..., :2]}  # fmt: skip
    return _MODEL[key]


def render_textured(
    textures: torch.Tensor,
    size: int = 160,
    distance: float = 48.0,
    fov: float = 28.0,
    yaw: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (B, 3, size, size) in [0, 1], landmarks (B, 68, 2))`` of the built-in head
    (mean shape, frontal) wearing ``textures``: ambient 0.55 + a key light from the upper
    right, grey background.

    The geometry is the same for every texture, so it is rasterized once (``_geometry``)
    and each image is a bilinear texture lookup at the cached per-pixel UVs times the cached
    shading — the Lambert-SH image model of :class:`facelab.render.Renderer`, hundreds of times
    faster for a batch of textures."""
    if textures.dim() != 4 or textures.shape[1] != 3:
        raise InvalidInput(f"textures must be (B, 3, S, S), got {tuple(textures.shape)}")
    geo = _geometry(size, distance, fov, yaw)
    b = textures.shape[0]
    tex = F.grid_sample(textures.float().clamp(0, 1), geo["grid"].expand(b, -1, -1, -1),
                        mode="bilinear", padding_mode="border", align_corners=False)  # fmt: skip
    img = (tex * geo["shade"]).clamp(0, 1) * geo["mask"] + 0.5 * (1 - geo["mask"])
    return img, geo["landmarks"].expand(b, -1, -1)


@torch.no_grad()
def dlib_features(textures: torch.Tensor, encoder=None, batch: int = 32) -> torch.Tensor:
    """``(B, 128)`` dlib ResNet embeddings of :func:`render_textured` faces."""
    if encoder is None:
        from ...vision.identity import load_identity_encoder

        encoder = load_identity_encoder("dlib")
    out = []
    for i in range(0, textures.shape[0], batch):
        img, lm = render_textured(textures[i : i + batch])
        out.append(encoder.embed(img, lm).float())
    return torch.cat(out)


@torch.no_grad()
def gan_samples(G, n: int, seed: int = 0, psi: float = 1.0, batch: int = 64) -> torch.Tensor:
    """``n`` textures in [0, 1] from generator ``G`` (random noise maps from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.config.z_dim, generator=g)
    torch.manual_seed(seed)
    return torch.cat(
        [((G(z[i : i + batch], psi=psi) + 1) / 2).clamp(0, 1) for i in range(0, n, batch)]
    )


def high_pass(x: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """The part of ``x (B, C, S, S)`` above ``cutoff`` cycles/texel (ideal FFT filter)."""
    s = x.shape[-1]
    fy = torch.fft.fftfreq(s, dtype=torch.float64)
    r = (fy[:, None] ** 2 + fy[None, :] ** 2).sqrt()
    mask = (r >= cutoff).to(x.dtype)
    return torch.fft.ifft2(torch.fft.fft2(x) * mask).real


def fit_pca(maps: torch.Tensor, k: int, seed: int = 0, cache: bool = True):
    """The linear baseline: an :class:`~facelab.models.albedo.AlbedoPCA` with ``k`` components
    fitted to ``maps (N, 3, S, S)`` (randomised SVD, ``torch.svd_lowrank`` with 4 power
    iterations: the leading components to ~1e-4 of the exact PCA, in seconds instead of
    minutes), cached in ``<cache>/gan/pca_*.npz`` by a hash of the maps."""
    import hashlib
    from pathlib import Path

    from ...data import cache_dir
    from ...models.albedo import AlbedoPCA

    h = hashlib.sha256(maps.float().numpy().tobytes()).hexdigest()[:16]
    path = Path(cache_dir()) / "gan" / f"pca_k{k}_{h}_{seed}.npz"
    if cache and path.is_file():
        return AlbedoPCA.load(path).float()
    pca = AlbedoPCA.fit_lowrank(maps.double(), k, seed=seed).float()
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        pca.save(path)
    return pca


def project_pca(pca, targets: torch.Tensor) -> torch.Tensor:
    """Least-squares PCA reconstruction of ``targets`` (all of ``pca``'s components)."""
    return pca(pca.project(targets.to(pca.mean.dtype))).clamp(0, 1).to(targets.dtype)


def project_gan(
    G,
    targets: torch.Tensor,
    space: str = "z",
    steps: int = 200,
    lr: float = 0.05,
    seed: int = 0,
    starts: int = 4,
) -> torch.Tensor:
    """Reconstruct ``targets`` (in [0, 1]) with ``G``: Adam on the latent (``"z"``: the
    ``z_dim``-D input, the same size as a PCA's coefficients; ``"w"``: the mapped ``w``) for
    ``steps`` steps on the pixel L2 loss, noise maps fixed (``noise_mode="const"``), best of
    ``starts`` random starts. Returns the reconstructions in [0, 1]."""
    if space not in ("z", "w"):
        raise InvalidInput(f"space must be 'z' or 'w', got {space!r}")
    t = targets.float() * 2 - 1
    b = t.shape[0]
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(starts, b, G.config.z_dim, generator=g)
    best, best_err = None, torch.full((b,), float("inf"))
    G.requires_grad_(False)
    for k in range(starts):
        if space == "z":
            lat = z0[k].clone().requires_grad_(True)
        else:
            with torch.no_grad():
                lat = G.mapping(z0[k]).clone().requires_grad_(True)
        opt = torch.optim.Adam([lat], lr=lr)
        for i in range(steps):
            for gr in opt.param_groups:
                gr["lr"] = lr * min(1.0, (steps - i) / (0.25 * steps))
            w = G.mapping(lat) if space == "z" else lat
            x = G.synthesis(G.mix_ws(w), noise_mode="const")
            loss = (x - t).square().mean(dim=(1, 2, 3))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            w = G.mapping(lat) if space == "z" else lat
            x = G.synthesis(G.mix_ws(w), noise_mode="const")
            err = (x - t).square().mean(dim=(1, 2, 3))
            better = err < best_err
            best = x.clone() if best is None else torch.where(better[:, None, None, None], x, best)
            best_err = torch.minimum(err, best_err)
    return ((best + 1) / 2).clamp(0, 1)


def reconstruction_errors(recon: torch.Tensor, targets: torch.Tensor, cutoff: float = 0.25) -> dict:
    """RMSE (in [0, 1] units) overall and of the high-pass residual, and the reconstruction's
    high-band energy relative to the targets'."""
    d = recon.double() - targets.double()
    return {
        "rmse": float(d.square().mean().sqrt()),
        "rmse_high": float(high_pass(d, cutoff).square().mean().sqrt()),
        "high_energy_kept": band_energy(recon, cutoff) / max(band_energy(targets, cutoff), 1e-20),
    }


def _band_each(x: torch.Tensor, lo: float) -> np.ndarray:
    """Per-image :func:`~facelab.gan.metrics.band_energy` above ``lo`` cycles/texel."""
    return np.array([band_energy(x[i : i + 1], lo) for i in range(x.shape[0])])


def _diversity(feats: torch.Tensor) -> float:
    d = torch.cdist(feats.double(), feats.double())
    n = d.shape[0]
    return float(d.sum() / (n * (n - 1)))


def claim_table(
    G,
    pca,
    train_maps: torch.Tensor,
    test_maps: torch.Tensor,
    n_samples: int = 256,
    n_recon: int = 16,
    proj_steps: int = 150,
    proj_starts: int = 4,
    psi: float = 1.0,
    seed: int = 0,
    encoder=None,
) -> list[dict]:
    """Rows ``{"model", "recon_rmse", "recon_rmse_high", "high_band_ratio", "kid_dlib",
    "kid_dlib_std", "fid_dlib", "precision", "recall", "diversity", "kid_values",
    "high_band_each"}`` (the last two: per KID subset, paired across rows; per sample) for: the held-out data
    (the floor: its distance to the training maps), the mean texture, the PCA and the GAN.

    Distribution metrics compare ``n_samples`` samples of each model with ``n_samples``
    training maps in dlib feature space, standardised per dimension with the training maps'
    mean and std (KID on subsets of half the samples, so its spread is informative); ``high_band_ratio`` is the samples' energy above
    0.25 cycles/texel over the held-out data's; ``diversity`` is the mean pairwise dlib
    distance over the data's; ``high_band_ratio`` is measured on the deviations from the
    training mean (the detail that differs between faces, not the mean's own brows and lips:
    the mean texture scores 0); reconstruction uses ``n_recon`` held-out maps (GAN: projection
    in ``z``, the same size as the PCA's K).
    """
    if encoder is None:
        from ...vision.identity import load_identity_encoder

        encoder = load_identity_encoder("dlib")
    g = torch.Generator().manual_seed(seed)
    ref = train_maps[torch.randperm(train_maps.shape[0], generator=g)[:n_samples]]
    test = test_maps[:n_samples]
    f_ref_raw = dlib_features(ref, encoder)
    # standardise with the reference set's statistics: the faces share one mesh, so most of the
    # embedding is constant and KID's cubic kernel on raw 128-D unit-scale features is ~1e-4;
    # per-dimension z-scores put every rows' distances on the scale of the data's own spread
    mu, sd = f_ref_raw.mean(0), f_ref_raw.std(0).clamp_min(1e-6)
    f_ref = (f_ref_raw - mu) / sd
    div_ref = _diversity(f_ref)
    targets = test_maps[:n_recon]
    mean = train_maps.mean(0, keepdim=True)
    sets = {
        "held-out data (floor)": (test, targets),
        "mean texture": (mean.expand(min(n_samples, 8), -1, -1, -1), mean.expand(n_recon, -1, -1, -1)),
        f"PCA (K={pca.k})": (pca.sample(n_samples, torch.Generator().manual_seed(seed + 1)).float(),
                             project_pca(pca, targets)),
        f"GAN (z={G.config.z_dim}, psi={psi:g})": (
            gan_samples(G, n_samples, seed + 2, psi), project_gan(G, targets, "z", proj_steps, seed=seed, starts=proj_starts)),
    }  # fmt: skip
    rows = []
    for name, (samples, recon) in sets.items():
        f = (dlib_features(samples, encoder) - mu) / sd
        if name == "mean texture":  # one point, repeated (``n_samples`` may exceed the
            f = f[:1].expand(n_samples, -1)  # held-out maps: that row then uses all of them)
        kid, kid_std, kid_vals = kernel_distance(
            f, f_ref, subsets=100, subset_size=max(8, min(100, n_samples // 2)), seed=seed,
            return_values=True,
        )  # fmt: skip
        prec, rec = precision_recall(f_ref, f + 1e-9 * torch.randn(f.shape, generator=g))
        re = reconstruction_errors(recon, targets)
        rows.append({
            "model": name,
            "recon_rmse": re["rmse"],
            "recon_rmse_high": re["rmse_high"],
            "recon_high_kept": re["high_energy_kept"],
            "high_band_ratio": band_energy(samples - mean, 0.25) / max(band_energy(test - mean, 0.25), 1e-20),
            "kid_dlib": kid,
            "kid_dlib_std": kid_std,
            "fid_dlib": frechet_distance(f, f_ref),
            "precision": prec,
            "recall": rec,
            "diversity": _diversity(f) / div_ref,
            "kid_values": kid_vals,
            "high_band_each": _band_each(samples - mean, 0.25) / max(band_energy(test - mean, 0.25), 1e-20),
        })  # fmt: skip
    return rows


def detail_selection(
    G,
    pca,
    test_maps: torch.Tensor,
    details: list[float],
    n_samples: int = 256,
    seed: int = 7,
    encoder=None,
) -> list[dict]:
    """KID-dlib of ``G``'s samples at each residual scale in ``details`` (and of the PCA's), on
    a **selection split** kept apart from :func:`claim_table`'s: the reference is the first
    ``n_samples`` *held-out* maps ``test_maps`` (the claim table compares with training
    maps), and the latents (``seed``) and PCA draws (``seed + 1``) are not the claim table's
    (``0 + 2``, ``0 + 1``). Rows ``{"model", "detail", "kid_dlib", "kid_dlib_std",
    "kid_vs_pca", "kid_vs_pca_std", "precision", "recall", "high_band_ratio"}``
    (``kid_vs_pca``: the mean paired difference over the same KID subsets, and the std of
    that mean). This is how ``TrainConfig.sample_detail`` of the shipped generator was chosen;
    ``G.detail`` is restored afterwards."""
    if not details:
        raise InvalidInput("details must name at least one residual scale")
    if encoder is None:
        from ...vision.identity import load_identity_encoder

        encoder = load_identity_encoder("dlib")
    ref = test_maps[:n_samples]
    f_ref = dlib_features(ref, encoder)
    mu, sd = f_ref.mean(0), f_ref.std(0).clamp_min(1e-6)
    f_ref = (f_ref - mu) / sd
    band_ref = max(band_energy(ref - ref.mean(0, keepdim=True), 0.25), 1e-20)
    mean = ref.mean(0, keepdim=True)

    def row(x: torch.Tensor, model: str, detail: float | None, base=None) -> dict:
        f = (dlib_features(x, encoder) - mu) / sd
        kid, kid_std, vals = kernel_distance(
            f, f_ref, subsets=100, subset_size=max(8, min(100, n_samples // 2)), seed=seed,
            return_values=True,
        )  # fmt: skip
        prec, rec = precision_recall(f_ref, f)
        r = {"model": model, "detail": detail, "kid_dlib": kid, "kid_dlib_std": kid_std,
             "precision": prec, "recall": rec,
             "high_band_ratio": band_energy(x - mean, 0.25) / band_ref, "_vals": np.asarray(vals)}  # fmt: skip
        if base is not None:
            d = r["_vals"] - base
            r["kid_vs_pca"], r["kid_vs_pca_std"] = (
                float(d.mean()),
                float(d.std() / math.sqrt(len(d))),
            )
        return r

    rows = [row(pca.sample(n_samples, torch.Generator().manual_seed(seed + 1)).float().clamp(0, 1),
                f"PCA (K={pca.k})", None)]  # fmt: skip
    old = G.detail
    try:
        for lam in details:
            G.detail = float(lam)
            with torch.no_grad():
                x = gan_samples(G, n_samples, seed)
            rows.append(row(x, f"GAN (detail={lam:g})", float(lam), rows[0]["_vals"]))
    finally:
        G.detail = old
    for r in rows:
        r.pop("_vals")
    return rows


def claim_verdicts(rows: list[dict]) -> dict:
    """Chapter 6's two paired verdicts on :func:`claim_table`'s rows (PCA third, GAN fourth):
    ``{"high_band": v, "kid": v}`` (:class:`facelab.metrics.Verdict`). High band: each GAN
    sample's ``|log high-band ratio|`` (0 = the data's energy; too much counts like too little)
    against the PCA's; KID-dlib: per subset, the subsets being the same for both models."""
    from ...metrics import claim_verdict

    pca_r, gan_r = rows[2], rows[3]
    dist = [np.abs(np.log(np.maximum(r["high_band_each"], 1e-9))) for r in (gan_r, pca_r)]
    return {
        "high_band": claim_verdict(dist[0], dist[1], claim="less"),
        "kid": claim_verdict(gan_r["kid_values"], pca_r["kid_values"], claim="less"),
    }
