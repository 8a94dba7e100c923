"""Writing a sample as files: PNG images and a ``gt.json`` of its ground truth.

Files of one view (``suffix`` is ``""`` for a single view, ``"_k"`` for view ``k``)::

    image{s}.png       8-bit RGB photo
    depth{s}.png       16-bit grey: 0 = background, else 1 + round((z - near) / (far - near) * 65534)
    normals{s}.png     8-bit RGB camera-space normals encoded (n + 1) / 2, background 0
    mask_face{s}.png   8-bit 0/255
    mask_skin{s}.png   8-bit 0/255

``gt.json`` (schema ``"facelab.world.gt/1"``; every array is a nested list)::

    format, seed, index, realism, config      the world
    image_size                                [H, W]
    params       {identity, expression, rotation, translation, light, focal}  (FaceParams,
                 no batch dim; shared by all views except rotation/translation/light)
    albedo_texture  "albedo.png" when the sample carries its UV albedo (the CLI writes it)
    views        one entry per view (a single-view sample has exactly one):
      camera     {K (3x3), R (3x3, model -> camera incl. diag(1,-1,-1)), t (3), focal, ypr_deg,
                  cam2world (4x4, the inverse)}
      rotation, translation, light (9x3), environment_sh (9x3), key_dir, key_color
      landmarks2d (68x2), landmarks3d (68x3), landmarks_visible (68 bools)
      files      {image, depth, normals, mask_face, mask_skin}
      depth_encoding {type: "uint16-linear", near, far, background: 0}

:func:`load_gt` reads it back and decodes the depth PNGs to metric depth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput
from ..geometry.conventions import flip_yz
from ..geometry.rotation import axis_angle_to_matrix

FORMAT = "facelab.world.gt/1"


def _png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _lst(t: torch.Tensor) -> Any:
    return t.detach().cpu().double().tolist()


def encode_depth(depth: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, float, float]:
    """``(H, W)`` depth -> uint16 image and ``(near, far)`` (see module docstring)."""
    d = depth.detach().cpu().double()
    m = mask.detach().cpu().bool() & (d > 0)
    if bool(m.any()):
        near, far = float(d[m].min()), float(d[m].max())
    else:
        near, far = 0.0, 1.0
    far = max(far, near + 1e-6)
    q = 1 + torch.round((d - near) / (far - near) * 65534).clamp(0, 65534)
    q = torch.where(m, q, torch.zeros_like(q))
    return q.numpy().astype(np.uint16), near, far


def decode_depth(arr: np.ndarray, near: float, far: float) -> np.ndarray:
    """Inverse of :func:`encode_depth` (background -> 0)."""
    a = arr.astype(np.float64)
    return np.where(a > 0, near + (a - 1) / 65534.0 * (far - near), 0.0)


def _rgb8(img: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8."""
    return (img.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _view_files(sample: dict[str, torch.Tensor], out: Path, suffix: str) -> dict[str, Any]:
    img = _rgb8(sample["image"])
    files = {
        "image": f"image{suffix}.png",
        "depth": f"depth{suffix}.png",
        "normals": f"normals{suffix}.png",
        "mask_face": f"mask_face{suffix}.png",
        "mask_skin": f"mask_skin{suffix}.png",
    }
    _png(out / files["image"], img)
    dep, near, far = encode_depth(sample["depth"], sample["mask"])
    _png(out / files["depth"], dep)
    n = sample["normals"].detach().cpu()
    enc = ((n + 1) * 0.5 * sample["mask"].cpu()[..., None]).clamp(0, 1)
    _png(out / files["normals"], (enc.numpy() * 255 + 0.5).astype(np.uint8))
    for k in ("mask_face", "mask_skin"):
        _png(out / files[k], sample[k].cpu().numpy().astype(np.uint8) * 255)
    R = axis_angle_to_matrix(sample["rotation"].double()) @ flip_yz(sample["rotation"].double())
    return {
        "camera": {
            "K": _lst(sample["K"]),
            "R": _lst(R),
            "t": _lst(sample["translation"]),
            "focal": float(sample["focal"]),
            "ypr_deg": _lst(sample["ypr"]),
            "cam2world": _lst(sample["cam2world"]) if "cam2world" in sample else None,
        },
        "rotation": _lst(sample["rotation"]),
        "translation": _lst(sample["translation"]),
        "light": _lst(sample["light"]),
        "environment_sh": _lst(sample["env_light"]),
        "key_dir": _lst(sample["key_dir"]),
        "key_color": _lst(sample["key_color"]),
        "landmarks2d": _lst(sample["landmarks2d"]),
        "landmarks3d": _lst(sample["landmarks3d"]),
        "landmarks_visible": [bool(v) for v in sample["landmarks_visible"].tolist()],
        "files": files,
        "depth_encoding": {"type": "uint16-linear", "near": near, "far": far, "background": 0},
    }


def save_sample(
    sample: dict[str, torch.Tensor],
    out_dir: str | Path,
    config=None,
    seed: int | None = None,
) -> Path:
    """Write one sample (a :class:`~facelab.world.WorldDataset` item; multi-view when
    ``image`` is ``(K, 3, H, W)``) as PNGs + ``gt.json`` into ``out_dir``; returns gt.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    img = sample["image"]
    if img.dim() == 3:
        views = [sample]
        suffixes = [""]
    elif img.dim() == 4:
        K = img.shape[0]
        views = [{k: v[i] for k, v in sample.items()} for i in range(K)]
        suffixes = [f"_{i}" for i in range(K)]
    else:
        raise InvalidInput(
            f"sample['image'] must be (3, H, W) or (K, 3, H, W), got {tuple(img.shape)}"
        )
    first = views[0]
    gt: dict[str, Any] = {
        "format": FORMAT,
        "seed": seed,
        "index": int(first["index"]) if "index" in first else None,
        "realism": None if config is None else float(config.realism),
        "config": None if config is None else config.to_dict(),
        "image_size": [int(first["image"].shape[1]), int(first["image"].shape[2])],
        "params": {
            "identity": _lst(first["identity"]),
            "expression": _lst(first["expression"]),
            "rotation": _lst(first["rotation"]),
            "translation": _lst(first["translation"]),
            "light": _lst(first["light"]),
            "focal": float(first["focal"]),
        },
        "views": [_view_files(v, out, s) for v, s in zip(views, suffixes)],
    }
    if "albedo_texture" in first:
        _png(out / "albedo.png", _rgb8(first["albedo_texture"]))
        gt["albedo_texture"] = "albedo.png"
    path = out / "gt.json"
    path.write_text(json.dumps(gt, indent=1))
    return path


def load_gt(directory: str | Path) -> dict[str, Any]:
    """Read ``gt.json`` and the images of a saved sample: returns the JSON dict where each view
    also has ``image (H, W, 3) uint8``, ``depth (H, W) float64`` (decoded), ``normals (H, W, 3)``
    (decoded to [-1, 1]), ``mask_face``/``mask_skin`` bool arrays."""
    from PIL import Image

    d = Path(directory)
    path = d / "gt.json"
    if not path.is_file():
        raise InvalidInput(f"{d} has no gt.json; write one with `facelab world sample --out {d}`")
    gt = json.loads(path.read_text())
    if gt.get("format") != FORMAT:
        raise InvalidInput(f"{path}: unknown format {gt.get('format')!r}, want {FORMAT}")
    for v in gt["views"]:
        f = v["files"]
        with Image.open(d / f["image"]) as im:
            v["image"] = np.asarray(im.convert("RGB"))
        with Image.open(d / f["depth"]) as im:
            enc = v["depth_encoding"]
            v["depth"] = decode_depth(np.asarray(im), enc["near"], enc["far"])
        with Image.open(d / f["normals"]) as im:
            v["normals"] = np.asarray(im).astype(np.float64) / 255.0 * 2 - 1
        for k in ("mask_face", "mask_skin"):
            with Image.open(d / f[k]) as im:
                v[k] = np.asarray(im) > 127
    return gt
