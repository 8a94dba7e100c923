"""Training photos for the tri-plane 3D GAN, from :mod:`facelab.world`, in EG3D's camera frame.

Each view is a world photo of a random ICT person (moderate realism, no background so that
the generator's opacity has a clean target) whose camera is known exactly. The world's
``cam2world`` lives in model space (centimetres); :func:`world_to_eg3d` moves it into EG3D's
head frame (:mod:`facelab.geometry.eg3d`): the face centre goes to the look-at point
``(0, 0, 0.2)``, x = 0 stays the face's symmetry plane, and the scale makes the frontal camera
sit at distance 2.5 from the look-at point (2.7 from the origin), as for EG3D's FFHQ cameras.
Depth maps are scaled the same way, so depth statistics of generated faces compare directly.

The views are rendered once into a directory of safetensors chunks (:func:`build_views`,
resumable chunk by chunk) and read back with :class:`TriplaneViews`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import InvalidInput
from ..geometry.eg3d import EG3D_FOCAL, EG3D_LOOKAT, EG3D_RADIUS, fov_degrees

__all__ = [
    "TriplaneViews",
    "ViewsConfig",
    "build_views",
    "mean_head",
    "view_distance",
    "world_config",
    "world_to_eg3d",
]


@dataclass
class ViewsConfig:
    """The world the 3D GAN learns from (defaults: the shipped CPU run)."""

    model: str = "ict-face"
    image_size: int = 64
    realism: float = 0.5
    length: int = 3072
    seed: int = 0
    fill: float = 0.7
    yaw_range: tuple[float, float] = (-45.0, 45.0)
    pitch_range: tuple[float, float] = (-15.0, 15.0)
    roll_range: tuple[float, float] = (-4.0, 4.0)
    chunk: int = 256


def world_config(cfg: ViewsConfig):
    """The :class:`~facelab.world.WorldConfig` of these views: EG3D's field of view (13.37
    degrees), the face centred, black background."""
    from ..world import WorldConfig

    fov = fov_degrees(EG3D_FOCAL)
    return WorldConfig(
        model=cfg.model,
        image_size=cfg.image_size,
        realism=cfg.realism,
        background="none",
        fov_range=(fov, fov),
        fill_range=(cfg.fill, cfg.fill),
        center_jitter=0.0,
        yaw_range=tuple(cfg.yaw_range),
        pitch_range=tuple(cfg.pitch_range),
        roll_range=tuple(cfg.roll_range),
    )


def world_to_eg3d(
    cam2world_model: torch.Tensor, face_center: torch.Tensor, distance: float
) -> tuple[torch.Tensor, float]:
    """World cam2world ``(B, 4, 4)`` (model space, model units) -> EG3D head frame.

    ``x_eg3d = s (x_model - c) + (0, 0, 0.2)`` with ``c = (0, c_y, c_z)`` the face centre (x kept
    at 0 so mirroring stays the plane x = 0) and ``s = (2.7 - 0.2) / distance``. Returns the
    new matrices and ``s`` (multiply model-unit depths by it).
    """
    s = (EG3D_RADIUS - EG3D_LOOKAT[2]) / float(distance)
    c = face_center.to(cam2world_model).clone()
    c[0] = 0.0
    out = cam2world_model.clone()
    out[:, :3, 3] = s * (cam2world_model[:, :3, 3] - c) + c.new_tensor(EG3D_LOOKAT)
    return out, s


def view_distance(face_width: float, fill: float) -> float:
    """Camera distance (model units) at which a face ``face_width`` wide fills ``fill`` of an
    EG3D image (focal ``4.2647`` image widths)."""
    return EG3D_FOCAL * float(face_width) / float(fill)


def mean_head(cfg: ViewsConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The morphable model's mean shape as the world renders it, in EG3D's head frame
    (:func:`world_to_eg3d`'s transform): ``(verts (V, 3), faces (F, 3))``, float32. The 3D
    GAN's template prior (:attr:`facelab.gan.triplane.TriplaneConfig.template_prior`)."""
    from ..world import WorldRenderer

    cfg = cfg or ViewsConfig()
    r = WorldRenderer(world_config(cfg))
    s = (EG3D_RADIUS - EG3D_LOOKAT[2]) / view_distance(r.face_width, cfg.fill)
    c = r.face_center.double().clone()
    c[0] = 0.0
    v = s * (r.model.mean.double() - c) + c.new_tensor(EG3D_LOOKAT)
    return v.float(), r.model.faces.clone()


def build_views(
    directory: str | Path, cfg: ViewsConfig | None = None, progress: bool = True
) -> Path:
    """Render ``cfg.length`` world views into ``directory`` (chunks ``views_XXXX.safetensors``
    + ``views.json``); chunks already written are skipped (resumable)."""
    from safetensors.torch import save_file

    from ..world import WorldDataset

    cfg = cfg or ViewsConfig()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wcfg = world_config(cfg)
    ds = WorldDataset(wcfg, length=cfg.length, seed=cfg.seed)
    r = ds.renderer
    distance = view_distance(r.face_width, cfg.fill)
    meta = {"views": asdict(cfg), "world": wcfg.to_dict(), "distance_model_units": distance}
    t0 = time.time()
    n_chunks = (cfg.length + cfg.chunk - 1) // cfg.chunk
    for k in range(n_chunks):
        path = directory / f"views_{k:04d}.safetensors"
        if path.is_file():
            continue
        lo, hi = k * cfg.chunk, min(cfg.length, (k + 1) * cfg.chunk)
        parts: dict[str, list[torch.Tensor]] = {"image": [], "c2w": [], "depth": [], "mask": []}
        for out in ds.batches(32, lo, hi):
            c2w, s = world_to_eg3d(out["cam2world"].double(), r.face_center.double(), distance)
            parts["image"].append((out["image"].clamp(0, 1) * 255).round().to(torch.uint8))
            parts["c2w"].append(c2w.float())
            parts["depth"].append((out["depth"].double() * s).half())
            parts["mask"].append(out["mask"].to(torch.uint8))
        save_file({k2: torch.cat(v).contiguous() for k2, v in parts.items()}, str(path))
        if progress:
            print(f"chunk {k + 1}/{n_chunks} ({hi} views) {time.time() - t0:.0f} s", flush=True)
    meta["scale"] = (EG3D_RADIUS - EG3D_LOOKAT[2]) / distance
    (directory / "views.json").write_text(json.dumps(meta, indent=1))
    return directory


class TriplaneViews:
    """All views of a :func:`build_views` directory in memory.

    Attributes: ``image (N, 3, H, W) uint8``, ``c2w (N, 4, 4)``, ``depth (N, H, W)`` (EG3D
    units, 0 on background), ``mask (N, H, W) bool``, ``K_norm (3, 3)``.
    """

    def __init__(self, directory: str | Path) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        files = sorted(directory.glob("views_*.safetensors"))
        if not files:
            raise InvalidInput(f"no views_*.safetensors in {directory}; run build_views first")
        parts = [load_file(str(f)) for f in files]
        self.image = torch.cat([p["image"] for p in parts])
        self.c2w = torch.cat([p["c2w"] for p in parts])
        self.depth = torch.cat([p["depth"] for p in parts]).float()
        self.mask = torch.cat([p["mask"] for p in parts]).bool()
        meta_path = directory / "views.json"
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.K_norm = torch.tensor(
            [[EG3D_FOCAL, 0.0, 0.5], [0.0, EG3D_FOCAL, 0.5], [0.0, 0.0, 1.0]]
        )

    def __len__(self) -> int:
        return int(self.image.shape[0])
