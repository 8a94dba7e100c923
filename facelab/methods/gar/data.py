"""GAR's unpaired training data, rendered once and cached (``~/.cache/facelab/gar-*``).

Two independent sets, as in the paper (nothing pairs a real photo with a normal map):

- **real**: :mod:`facelab.world` photos of ``ict-face`` people at ``realism`` (default 1:
  specular, subsurface, shadows, occlusion, backgrounds, sensor noise, blur, JPEG -- the image
  formation Part I's Lambert-SH renderer does not model), cropped around their exact
  landmarks (:func:`facelab.methods.gar.geometry.crop_camera`) and resampled to
  ``image_size``. The world's ground truth of each crop is kept for the *auxiliary estimator*
  (:mod:`facelab.methods.gar.aux`) only: normals, face mask, 68 landmarks, identity.
- **geometry**: random ICT identities, expressions and poses (the world's scene sampler at
  another seed, no rendering of photos), each as a **pair** sharing the identity: ``a`` with its
  own expression and pose, ``b`` with the expression and pose of another sample. Both are
  rendered as normal maps in their own crop camera (:func:`render_normals`). Pairs feed the
  identity-consistency loss; ``a`` with two latents the landmark-consistency loss.

:func:`build_gar_data` writes ``real_XXXX.safetensors`` / ``geom_XXXX.safetensors`` chunks
(resumable chunk by chunk) and ``data.json``; :class:`GARData` loads them into memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...errors import InvalidInput
from .geometry import CROP_SCALE, pose_crop_camera, render_normals

__all__ = ["GARData", "GARDataConfig", "build_gar_data", "default_data_dir"]


@dataclass
class GARDataConfig:
    """What the cached data depends on (defaults: the shipped CPU run).

    Attributes:
        model: the face model (its shapes make the normal maps; the world renders it).
        image_size: crop size (the generator's resolution).
        photo_size: size of the world photos the crops are cut from.
        realism: the world's realism knob for the real photos.
        n_real, n_geom: real crops; geometry pairs.
        seed: world seed of the real photos (geometry uses ``seed + 1000``).
        crop_scale: crop side / landmark box side.
        chunk: samples per cache file.
    """

    model: str = "ict-face"
    image_size: int = 32
    photo_size: int = 96
    realism: float = 1.0
    n_real: int = 2048
    n_geom: int = 2048
    seed: int = 0
    crop_scale: float = CROP_SCALE
    chunk: int = 256

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def default_data_dir(cfg: GARDataConfig) -> Path:
    """``~/.cache/facelab/gar-data-v1-<hash of the config>``."""
    return Path(os.path.expanduser("~/.cache/facelab")) / f"gar-data-v1-{cfg.key()}"


def _world(cfg: GARDataConfig, seed: int):
    from ...world import WorldConfig, WorldDataset

    wcfg = WorldConfig(model=cfg.model, image_size=cfg.photo_size, realism=cfg.realism)
    return WorldDataset(wcfg, length=max(cfg.n_real, 2 * cfg.n_geom), seed=seed)


def crop_sample(
    image: torch.Tensor, landmarks2d: torch.Tensor, size: int, scale: float = CROP_SCALE
) -> tuple[torch.Tensor, tuple[float, float, float], float]:
    """Crop ``image (C, H, W)`` around ``landmarks2d (68, 2)`` -> ``((C, size, size), box, a)``
    with ``a = size / side`` (crop pixel = ``a * (photo pixel - (x0, y0))``)."""
    from ...fit.api import crop_box, crop_image

    box = crop_box(landmarks2d.float(), scale)
    crop, _ = crop_image(image[None].float(), box, size)
    return crop[0], box, size / box[2]


def _real_chunk(ds, lo: int, hi: int, cfg: GARDataConfig) -> dict[str, torch.Tensor]:
    S = cfg.image_size
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("image", "normals", "mask", "lm", "identity")}  # fmt: skip
    for out in ds.batches(32, lo, hi):
        for b in range(out["image"].shape[0]):
            lm = out["landmarks2d"][b].float()
            img, box, a = crop_sample(out["image"][b].clamp(0, 1), lm, S, cfg.crop_scale)
            nrm, _, _ = crop_sample(out["normals"][b].permute(2, 0, 1), lm, S, cfg.crop_scale)
            msk, _, _ = crop_sample(out["mask_face"][b][None].float(), lm, S, cfg.crop_scale)
            nrm = F.normalize(nrm, dim=0) * (msk > 0.5)
            x0y0 = torch.tensor(box[:2])
            parts["image"].append((img.clamp(0, 1) * 255).round().to(torch.uint8))
            parts["normals"].append(nrm.half())
            parts["mask"].append((msk > 0.5).to(torch.uint8))
            parts["lm"].append((lm - x0y0) * a)
            parts["identity"].append(out["identity"][b].float())
    return {k: torch.stack(v).contiguous() for k, v in parts.items()}


def _geom_chunk(renderer, model, lo: int, hi: int, cfg: GARDataConfig) -> dict[str, torch.Tensor]:
    from ...geometry.camera import intrinsics

    S, W = cfg.image_size, cfg.photo_size
    seed = cfg.seed + 1000
    pa = renderer.sample(list(range(lo, hi)), seed).params
    pb = renderer.sample(list(range(cfg.n_geom + lo, cfg.n_geom + hi)), seed).params
    out: dict[str, torch.Tensor] = {"identity": pa.identity.float()}
    dt = model.dtype
    for tag, p in (("a", pa), ("b", pb)):
        ident = pa.identity.to(dt)  # b shares a's identity; expression and pose are b's own
        expr, rot, tr = p.expression.to(dt), p.rotation.to(dt), p.translation.to(dt)
        f = p.focal.to(dt)
        K = intrinsics(f, f, torch.full_like(f, W / 2), torch.full_like(f, W / 2))
        Ks = pose_crop_camera(model, ident, expr, rot, tr, K, S, cfg.crop_scale)
        with torch.no_grad():
            n, m, lm = render_normals(model, ident, expr, rot, tr, Ks, S)
        out[f"normals_{tag}"] = n.half()
        out[f"mask_{tag}"] = (m > 0.5).to(torch.uint8)
        out[f"lm_{tag}"] = lm.float()
        out[f"expression_{tag}"] = expr.float()
        out[f"rotation_{tag}"] = rot.float()
        out[f"translation_{tag}"] = tr.float()
        out[f"K_{tag}"] = Ks.float()
    return {k: v.contiguous() for k, v in out.items()}


def build_gar_data(
    directory: str | Path | None = None, cfg: GARDataConfig | None = None, progress: bool = True
) -> Path:
    """Render (or finish rendering) the cache; returns its directory. See the module doc."""
    from safetensors.torch import save_file

    from ...models import load

    cfg = cfg or GARDataConfig()
    directory = Path(directory) if directory is not None else default_data_dir(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ds = None
    for kind, n in (("real", cfg.n_real), ("geom", cfg.n_geom)):
        n_chunks = (n + cfg.chunk - 1) // cfg.chunk
        for k in range(n_chunks):
            path = directory / f"{kind}_{k:04d}.safetensors"
            if path.is_file():
                continue
            if ds is None:
                ds = _world(cfg, cfg.seed)
                model = load(cfg.model)
            lo, hi = k * cfg.chunk, min(n, (k + 1) * cfg.chunk)
            if kind == "real":
                chunk = _real_chunk(ds, lo, hi, cfg)
            else:
                chunk = _geom_chunk(ds.renderer, model, lo, hi, cfg)
            tmp = path.with_name(path.name + f".tmp{os.getpid()}")
            save_file(chunk, str(tmp))
            os.replace(tmp, path)
            if progress:
                print(f"gar data: {kind} {hi}/{n} ({time.time() - t0:.0f} s)", flush=True)
    (directory / "data.json").write_text(json.dumps({"config": asdict(cfg)}, indent=1))
    return directory


class GARData:
    """A :func:`build_gar_data` directory in memory.

    ``real``: ``image (N, 3, S, S) uint8``, ``normals (N, 3, S, S)``, ``mask (N, 1, S, S)``,
    ``lm (N, 68, 2)``, ``identity (N, K)``. ``geom``: ``normals_a/b (M, 3, S, S)``, ``mask_a/b``,
    ``lm_a/b (M, 68, 2)``, ``identity (M, K)``, ``expression_a/b``, ``rotation_a/b``,
    ``translation_a/b``, ``K_a/b``.
    """

    def __init__(self, directory: str | Path) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        self.real: dict[str, torch.Tensor] = {}
        self.geom: dict[str, torch.Tensor] = {}
        for kind, store in (("real", self.real), ("geom", self.geom)):
            files = sorted(directory.glob(f"{kind}_*.safetensors"))
            if not files:
                raise InvalidInput(f"no {kind}_*.safetensors in {directory}; run build_gar_data")
            parts = [load_file(str(f)) for f in files]
            for k in parts[0]:
                v = torch.cat([p[k] for p in parts])
                store[k] = v.float() if v.dtype == torch.float16 else v
        self.directory = directory

    @property
    def n_real(self) -> int:
        return int(self.real["image"].shape[0])

    @property
    def n_geom(self) -> int:
        return int(self.geom["identity"].shape[0])

    def real_images(self, idx: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [-1, 1]."""
        return self.real["image"][idx].float() / 127.5 - 1.0
