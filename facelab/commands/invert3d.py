"""``facelab invert3d PHOTO --out DIR`` -- one photo to a free-view 3D face (3D GAN inversion).

Inverts the shipped tri-plane 3D GAN (:mod:`facelab.gan.triplane`, checkpoint ``cpu-32-prior``, 32 px
neural rendering) on the photo with the facial symmetry prior of Yin et al. (CVPR 2023,
:mod:`facelab.methods.spi`): detects the face (dlib, offline) and fits the head pose with the
landmark stage of ``facelab fit`` to get the photo's camera in the GAN's convention, crops the
face as the GAN saw its training photos, optimises a W+ latent (with the mirror term: the
flipped photo seen from the mirrored camera, weighted by yaw), then tunes the generator around
it with depth-warped pseudo labels, conflict masks and a depth regulariser. Writes into ``DIR``:

* ``input.png``: the crop the GAN inverted (its resolution); ``views.png``: all novel views
  side by side, enlarged;
* ``view_YAW.png`` and ``depth_YAW.png`` per ``--views`` yaw (degrees; the depth map is camera
  z, bright = near, black = empty);
* ``mesh.obj``: marching cubes of the inverted face's density (EG3D units, the head box
  ``[-0.5, 0.5]^3``);
* ``turntable.gif``: views from -45 to 45 degrees and back;
* ``report.html``: a self-contained page (opens offline) with the crop, the views, the depth
  maps, the camera, the losses and the timings; ``result.json``: the same numbers.

``--no-symmetry`` switches the mirror term and the mirrored warps off (plain W+ inversion +
tuning). ``--fast``: the short schedule (60 latent + 30 tuning steps; about a minute on a
laptop CPU); ``--steps W,T`` sets both counts. ``--camera YAW,PITCH`` (degrees) skips detection:
the photo is then taken as already framed like the GAN's photos (face centred, filling 70 % of
the width) and is only resized. The perceptual term is the offline dlib-feature distance
(``--perceptual lpips`` needs the ``lpips`` package and its weights). A progress bar runs on
stderr (``--quiet`` hides it). ``--device`` and ``--threads`` as for every command.

``--json`` output (stable keys)::

    {
      "photo":    "PHOTO",
      "out":      "DIR",
      "symmetry": bool,
      "fast":     bool,
      "camera":   {"yaw": float, "pitch": float, "source": "landmarks" | "given"},  # degrees
      "views":    [float],                       # yaws rendered (degrees)
      "files":    {"input", "views", "report", "result", "mesh", "turntable",
                   "view_YAW", "depth_YAW", ...},   # paths
      "losses":   {"latent": float, "tuning": float | null},   # final reconstruction loss
      "timings":  {"camera", "latent", "tuning", "outputs", "total"},   # seconds
      "seconds":  float
    }
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ._util import add_device, add_json, add_threads, check_output_dir, print_json, setup_compute


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "invert3d",
        help="one photo -> a free-view 3D face (3D GAN inversion with a symmetry prior)",
        description=(
            "Invert the shipped tri-plane 3D GAN on PHOTO with the facial symmetry prior "
            "(Yin et al., CVPR 2023). Writes novel views, depth maps, mesh.obj, turntable.gif "
            "and report.html into DIR."
        ),
    )
    # "--views -45,-30,0" must read as a value, not as an unknown option "-45,-30,0"
    p._negative_number_matcher = re.compile(r"^-\d[-\d.,]*$")
    p.add_argument("photo", metavar="PHOTO", help="image file (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--views", default="-45,-30,0,30,45", metavar="YAWS",
        help="comma-separated yaws in degrees to render (default -45,-30,0,30,45)",
    )  # fmt: skip
    p.add_argument("--no-symmetry", action="store_true", help="no mirror term, no mirrored warps")
    p.add_argument("--fast", action="store_true", help="short schedule (60 + 30 steps)")
    p.add_argument("--steps", default=None, metavar="W,T", help="latent and tuning steps")
    p.add_argument(
        "--camera", default=None, metavar="YAW,PITCH",
        help="the photo's camera in degrees (skips detection; the photo must be framed like "
        "the GAN's photos)",
    )  # fmt: skip
    p.add_argument(
        "--detector", default="auto", choices=("auto", "dlib", "dlib-hog", "dlib-cnn"),
        help="face/landmark detector (default auto: HOG, then the CNN for faces HOG misses)",
    )  # fmt: skip
    p.add_argument(
        "--perceptual", default="dlib", choices=("dlib", "lpips", "none"),
        help="perceptual distance: dlib ResNet features (default, offline), lpips, none",
    )  # fmt: skip
    p.add_argument("--checkpoint", default=None, metavar="STEM", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=24, help="turntable frames (default 24)")
    add_threads(p)
    add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json(p)
    p.set_defaults(func=handler)


def _floats(value: str, option: str, n: int | None = None) -> list[float]:
    from ..errors import InvalidInput

    try:
        xs = [float(v) for v in value.split(",") if v.strip() != ""]
    except ValueError:
        raise InvalidInput(f"{option} {value!r}: expected comma-separated numbers") from None
    if not xs or (n is not None and len(xs) != n):
        want = f"{n} numbers" if n else "at least one number"
        raise InvalidInput(f"{option} {value!r}: expected {want}")
    return xs


def _check_args(args) -> tuple[list[float], tuple[int, int] | None, list[float] | None]:
    from ..errors import InvalidInput

    if not Path(args.photo).is_file():
        raise InvalidInput(f"{args.photo}: no such file")
    views = _floats(args.views, "--views")
    if any(abs(v) > 90 for v in views):
        raise InvalidInput(f"--views {args.views}: yaws must be within [-90, 90] degrees")
    steps = None
    if args.steps is not None:
        s = _floats(args.steps, "--steps", 2)
        if any(x < 0 or x != int(x) for x in s):
            raise InvalidInput(f"--steps {args.steps}: expected two non-negative integers")
        steps = (int(s[0]), int(s[1]))
    cam = None if args.camera is None else _floats(args.camera, "--camera", 2)
    if cam is not None and (abs(cam[0]) > 90 or abs(cam[1]) > 60):
        raise InvalidInput(f"--camera {args.camera}: yaw within [-90, 90], pitch within [-60, 60]")
    if args.frames < 2:
        raise InvalidInput(f"--frames must be >= 2, got {args.frames}")
    return views, steps, cam


def _u8(img):  # (3, H, W) in [-1, 1] -> (H, W, 3) uint8
    return ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def _depth_u8(depth, opacity, near: float = 2.3, far: float = 2.9):
    import numpy as np

    d = ((far - depth) / (far - near)).clamp(0, 1) * (opacity > 0.3)
    return (d * 255).round().byte().cpu().numpy().astype(np.uint8)


def _enlarge(arr, k: int = 4):
    return arr.repeat(k, 0).repeat(k, 1)


def handler(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image as PILImage

    t_all = time.perf_counter()
    views, steps, cam = _check_args(args)
    out = Path(args.out)
    check_output_dir(out)
    device = setup_compute(args)

    from ..gan.triplane_train import load_triplane_generator, shipped_triplane_checkpoint
    from ..geometry.eg3d import camera_params, normalized_intrinsics, orbit_cam2world
    from ..geometry.io import save_obj
    from ..geometry.mesh import Mesh
    from ..methods.spi import SPIConfig, estimate_camera, extract_mesh_ws, invert3d
    from ..methods.spi.losses import DlibFeatureDistance, LPIPSDistance
    from ..methods.spi.masks import landmark_face_mask
    from ..viz.report import html_table, image_data_uri

    stem = args.checkpoint or shipped_triplane_checkpoint()
    G, meta = load_triplane_generator(stem, device=device)
    R = G.config.out_res
    dist = None
    if args.perceptual == "dlib":
        dist = DlibFeatureDistance().to(device)
    elif args.perceptual == "lpips":
        dist = LPIPSDistance().to(device)
    t0 = time.perf_counter()
    face_mask = None
    if cam is None:
        pc = estimate_camera(args.photo, resolution=R, detector=args.detector)
        photo, camera, yaw, pitch = pc.image, pc.camera, pc.yaw, pc.pitch
        face_mask = landmark_face_mask(pc.crop_landmarks, (R, R))[None]
        source = "landmarks"
    else:
        from ..vision import load_image

        img = load_image(args.photo).tensor
        img = img[None] if img.dim() == 3 else img
        photo = torch.nn.functional.interpolate(img.float(), size=(R, R), mode="area") * 2 - 1
        yaw, pitch = cam
        c2w = orbit_cam2world(torch.tensor([yaw]).deg2rad(), torch.tensor([pitch]).deg2rad())
        camera = camera_params(c2w.float(), normalized_intrinsics())
        source = "given"
    photo, camera = photo.to(device), camera.to(device)
    t_cam = time.perf_counter() - t0
    cfg = SPIConfig.fast() if args.fast else SPIConfig()
    if steps is not None:
        cfg = SPIConfig(**{**cfg.to_dict(), "w_steps": steps[0], "pti_steps": steps[1]})
    if args.no_symmetry:
        cfg = SPIConfig(**{**cfg.to_dict(), "symmetry": False})
    res = invert3d(G, photo, camera, cfg, dist, face_mask=face_mask, progress=not args.quiet)

    t0 = time.perf_counter()
    files: dict[str, str] = {}
    inp = _u8(photo[0])
    PILImage.fromarray(_enlarge(inp)).save(out / "input.png")
    files["input"] = str(out / "input.png")
    rv = res.render_yaws(views)
    tiles, dtiles = [], []
    for k, y in enumerate(views):
        tag = f"{y:+.0f}".replace("+", "p").replace("-", "m")
        im, dm = _u8(rv["image"][k]), _depth_u8(rv["depth"][k], rv["opacity"][k])
        PILImage.fromarray(_enlarge(im)).save(out / f"view_{tag}.png")
        PILImage.fromarray(_enlarge(dm)).save(out / f"depth_{tag}.png")
        files[f"view_{tag}"] = str(out / f"view_{tag}.png")
        files[f"depth_{tag}"] = str(out / f"depth_{tag}.png")
        tiles.append(im)
        dtiles.append(np.repeat(dm[..., None], 3, -1))
    grid = np.concatenate([np.concatenate(tiles, 1), np.concatenate(dtiles, 1)], 0)
    PILImage.fromarray(_enlarge(grid)).save(out / "views.png")
    files["views"] = str(out / "views.png")
    verts, faces, level = extract_mesh_ws(res.G, res.ws, resolution=48)
    save_obj(out / "mesh.obj", Mesh(verts.float(), faces))
    files["mesh"] = str(out / "mesh.obj")
    half = args.frames // 2
    sweep = list(np.linspace(-45, 45, half)) + list(np.linspace(45, -45, args.frames - half))
    tt = res.render_yaws([float(s) for s in sweep])
    frames = [PILImage.fromarray(_enlarge(_u8(tt["image"][k]))) for k in range(len(sweep))]
    frames[0].save(
        out / "turntable.gif", save_all=True, append_images=frames[1:], duration=80, loop=0
    )
    files["turntable"] = str(out / "turntable.gif")
    t_out = time.perf_counter() - t0
    h = res.history
    losses = {
        "latent": h["latent"]["reconstruction"][-1] if h["latent"]["reconstruction"] else None,
        "tuning": h["tuning"]["reconstruction"][-1]
        if "tuning" in h and h["tuning"]["reconstruction"]
        else None,
    }
    timings = {
        "camera": round(t_cam, 3),
        "latent": round(res.timings.get("latent", 0.0), 3),
        "tuning": round(res.timings.get("tuning", 0.0), 3),
        "outputs": round(t_out, 3),
        "total": round(time.perf_counter() - t_all, 3),
    }
    doc = {
        "photo": args.photo,
        "out": str(out),
        "symmetry": not args.no_symmetry,
        "fast": bool(args.fast),
        "camera": {"yaw": round(float(yaw), 3), "pitch": round(float(pitch), 3), "source": source},
        "views": views,
        "files": files,
        "losses": losses,
        "timings": timings,
        "seconds": timings["total"],
        "generator": meta.get("status", ""),
        "mesh_level": level,
        "config": cfg.to_dict(),
    }
    import json

    (out / "result.json").write_text(json.dumps(doc, indent=1, default=float))
    files["result"] = str(out / "result.json")
    files["report"] = str(out / "report.html")
    _write_report(out / "report.html", doc, inp, grid, image_data_uri, html_table)
    if args.json:
        print_json({k: doc[k] for k in ("photo", "out", "symmetry", "fast", "camera", "views",
                                        "files", "losses", "timings", "seconds")})  # fmt: skip
    else:
        print(
            f"{args.photo}: camera yaw {yaw:+.1f} pitch {pitch:+.1f} deg ({source}); "
            f"{len(views)} views, mesh, turntable -> {out} ({timings['total']:.1f} s)"
        )
    return 0


def _write_report(path: Path, doc: dict, inp, grid, image_data_uri, html_table) -> None:
    import html

    rows = [(k, v) for k, v in doc["timings"].items()]
    body = [
        f"<h1>facelab invert3d: {html.escape(Path(doc['photo']).name)}</h1>",
        f"<p>Generator: {html.escape(str(doc['generator']))}. Symmetry prior: "
        f"{'on' if doc['symmetry'] else 'off'}. Camera ({doc['camera']['source']}): yaw "
        f"{doc['camera']['yaw']:+.1f}°, pitch {doc['camera']['pitch']:+.1f}°.</p>",
        f"<figure><img src='{image_data_uri(_big(inp))}' width='128'><figcaption>the crop the "
        "GAN inverted</figcaption></figure>",
        f"<figure><img src='{image_data_uri(_big(grid))}'><figcaption>novel views at yaws "
        f"{', '.join(f'{v:+.0f}°' for v in doc['views'])} and their depth (bright = near)"
        "</figcaption></figure>",
        "<figure><img src='turntable.gif' width='128'><figcaption>turntable (turntable.gif)"
        "</figcaption></figure>",
        html_table(["stage", "seconds"], rows, caption="timings"),
        html_table(
            ["loss", "final"],
            [(k, v if v is not None else "") for k, v in doc["losses"].items()],
            caption="final reconstruction loss (MSE + perceptual)",
        ),  # fmt: skip
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>facelab invert3d</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}img{image-rendering:"
        "pixelated}td.num{text-align:right}</style></head><body>" + "".join(body) + "</body></html>"
    )
    path.write_text(page)


def _big(arr):
    return _enlarge(arr, 4) if arr.shape[0] < 100 else arr
