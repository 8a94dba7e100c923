"""``facelab render --model NAME --seed S --size N --out FILE.png`` — render a sampled face.

Samples one face of model ``NAME`` (default ``builtin``, which needs no data; ``ict``/``ict-face`` read the
ICT-FaceKit asset) with ``torch.Generator().manual_seed(S)``, places it frontally so it fills
the ``N x N`` image (or turned by ``--yaw``/``--pitch`` degrees), shades it with Lambertian SH
light (ambient plus a light from the upper left; the model's albedo if it has one, else a skin
tone) with facelab's rasterizer, and writes the PNG. Optional outputs: ``--normals FILE``
(camera-space normal map, ``(n + 1) / 2``), ``--depth FILE`` (8-bit, near = white),
``--mask FILE``. ``--backend pytorch3d`` uses PyTorch3D's rasterizer where installed.

The positional ``facelab render NAME`` still works and is deprecated. ``--device`` and
``--threads`` as for every command (the book's CLI appendix).

With ``--json`` it prints ``{"model", "seed", "size", "backend", "device", "outputs": {"image",
"normals", "depth", "mask"} (paths or null), "covered_pixels", "depth_range": [near, far],
"seconds"}`` (stable keys).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ._util import (
    add_device,
    add_json,
    add_model,
    add_threads,
    check_output_file,
    model_arg,
    print_json,
    setup_compute,
)


def _save(img, path: str) -> str:
    """Save ``(C, H, W)`` float in [0, 1] (C = 1 or 3) as an 8-bit PNG."""
    import numpy as np
    from PIL import Image

    arr = (img.detach().clamp(0, 1) * 255).round().to("cpu").numpy().astype(np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(p)
    return str(p)


def _handler(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InvalidInput
    from ..geometry.camera import intrinsics
    from ..geometry.conventions import flip_yz
    from ..geometry.rotation import axis_angle_to_matrix
    from ..models import load
    from ..render import Renderer, sh_ambient

    name = model_arg(args, "render")
    if args.size < 8 or args.size > 4096:
        raise InvalidInput(f"--size must be in [8, 4096], got {args.size}")
    for opt in ("out", "normals", "depth", "mask"):
        check_output_file(getattr(args, opt), f"--{opt}")
    device = setup_compute(args)
    t0 = time.perf_counter()
    model = load(name, device=device)
    params = model.sample(1, generator=torch.Generator().manual_seed(args.seed))
    verts = model.vertices(params)  # (1, V, 3) model space
    dt = verts.dtype
    # pose: rotate about the face's centre, then back off until the face fills the frame
    rot = torch.tensor(
        [[math.radians(args.pitch), math.radians(args.yaw), 0.0]], dtype=dt, device=device
    )
    lo, hi = verts[0].amin(0), verts[0].amax(0)
    centre = (lo + hi) / 2
    radius = float((hi - lo)[:2].max()) / 2
    fov = math.radians(args.fov)
    dist = radius / math.tan(fov / 2) / args.fill + float((hi - lo)[2]) / 2
    R = axis_angle_to_matrix(rot)[0] @ flip_yz(verts)
    translation = (torch.tensor([0.0, 0.0, dist], dtype=dt, device=device) - R @ centre)[None]
    focal = args.size / 2 / math.tan(fov / 2)
    K = intrinsics(focal, focal, args.size / 2, args.size / 2).to(device, dt)
    if model.albedo_mean is not None:
        colors = model.albedo(params.albedo if params.albedo is not None else None)
    else:
        colors = torch.tensor([0.78, 0.57, 0.47], dtype=dt, device=device)
        colors = colors.expand(1, verts.shape[1], 3)
    sh = sh_ambient(0.65, dtype=dt, device=device)
    light = torch.tensor(
        [-0.35, -0.5, -0.79], dtype=dt, device=device
    )  # towards the light: up-left, front
    sh[0, 1:4] = 1.3 * torch.stack([light[1], light[2], light[0]]).unsqueeze(-1)  # (y, z, x)
    renderer = Renderer(args.size, backend=args.backend, background=args.background)
    out = renderer.render(
        verts, model.faces, K=K, rotation=rot, translation=translation,
        vertex_colors=colors, sh=sh,
    )  # fmt: skip
    outputs = {"image": _save(out.image[0], args.out), "normals": None, "depth": None, "mask": None}
    if args.normals:
        outputs["normals"] = _save(out.normal_map()[0], args.normals)
    if args.depth:
        outputs["depth"] = _save(out.depth_map()[0], args.depth)
    if args.mask:
        outputs["mask"] = _save(out.mask[0], args.mask)
    m = out.fragments.mask
    z = out.fragments.zbuf[m]
    result = {
        "model": model.name,
        "device": str(device),
        "seed": args.seed,
        "size": args.size,
        "backend": args.backend,
        "outputs": outputs,
        "covered_pixels": int(m.sum()),
        "depth_range": [float(z.min()), float(z.max())] if z.numel() else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if args.json:
        print_json(result)
    else:
        extra = ", ".join(f"{k} {v}" for k, v in outputs.items() if v and k != "image")
        print(f"wrote {outputs['image']}" + (f" ({extra})" if extra else ""))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "render",
        help="render a sampled face to a PNG (and normal/depth/mask maps)",
        description=__doc__.split("\n\n")[0],
    )
    add_model(p, default="builtin", positional_alias=True)
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampled face")
    p.add_argument("--size", type=int, default=256, help="image size N (N x N pixels)")
    p.add_argument("--out", required=True, help="output PNG of the shaded face")
    p.add_argument("--normals", help="also write the camera-space normal map here")
    p.add_argument("--depth", help="also write the depth map here (near = white)")
    p.add_argument("--mask", help="also write the coverage mask here")
    p.add_argument("--yaw", type=float, default=0.0, help="yaw in degrees (about camera y)")
    p.add_argument("--pitch", type=float, default=0.0, help="pitch in degrees (about camera x)")
    p.add_argument("--fov", type=float, default=12.0, help="field of view in degrees")
    p.add_argument("--fill", type=float, default=0.85, help="fraction of the image the face spans")
    p.add_argument("--background", type=float, default=0.0, help="grey level of the background")
    p.add_argument("--backend", choices=("torch", "pytorch3d"), default="torch")
    add_threads(p)
    add_device(p)
    add_json(p)
    p.set_defaults(func=_handler)
