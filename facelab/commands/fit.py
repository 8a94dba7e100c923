"""``facelab fit PHOTO [PHOTO ...] --out DIR`` -- a 3D face from photos (analysis by synthesis).

Detects the face (dlib, offline; the largest one unless ``--face``), fits the model to its 68
landmarks, refines pose, shape, expression, albedo and light photometrically
(:func:`facelab.fit.fit`), and writes into ``DIR``:

* ``mesh.obj`` (+ ``mesh.mtl``, ``mesh.png``): the fitted mesh (model space, model units) with
  a texture unwrapped from the photo;
* ``params.json``: the fitted parameters, camera, pose angles, landmark error, timings;
* ``overlay.png``: the render over the photo with the detected (green) and fitted (red)
  landmarks;
* ``report.html``: a self-contained page (opens offline): photo, fit over the face region,
  difference, the shape from five angles (grey and textured), a rotatable 3D view,
  landmarks, pose, coefficients, timings and losses (:mod:`facelab.viz.report`);
* ``mesh.glb`` with ``--glb``: the textured mesh as binary glTF (files key ``"glb"``).

``--method ganfit`` fits with GANFit (:mod:`facelab.methods.ganfit`: the texture GAN as the
albedo model, identity / content / pixel / landmark losses) and also writes
``gan_texture.png`` (the GAN's UV map; files key ``"gan_texture"``) and the latent in
``params.json`` (``"gan_latent"``). ``--fast-start`` (with ``--method ganfit``) starts its
optimisation from the shipped start regressor's shape and expression (Fast-GANFit,
:mod:`facelab.methods.ganfit.regressor`) instead of the mean shape.

``--method gar`` fits by inverting GAR (:mod:`facelab.methods.gar`: a generator of face crops
conditioned on the 3DMM's normal map; encoder start, then refinement of pose, shape,
expression and latent through the normal maps), one photo at a time.

With ``--shared-identity``, ``DIR/report.html`` is one page with a row per photo and the
shared shape (the identity at a neutral expression).

Several photos are fitted one by one, each into ``DIR/NN_STEM/``; with ``--shared-identity``
they are taken as one person and fitted together (one identity, one pose / expression /
light per photo, :func:`facelab.fit.fit_multi`). A progress bar runs on stderr
(``--quiet`` hides it). Exit code 1 with a message when no face is found, the face is too
small, or the fit diverges. Without ``--shared-identity`` each photo is saved as soon as it is
fitted; a photo that fails does not stop the others: the failures are listed at the end
(stderr, and in ``--json`` as ``results`` rows ``{"photo", "dir": null, "error": {"type",
"message"}}`` plus ``failed``) and the exit code is 1. ``--device`` and ``--threads`` as
for every command (default cpu, 1 thread).

``--json`` output (stable keys)::

    {
      "out":             "DIR",
      "model":           "ict-face",
      "fast":            bool,
      "photometric":     bool,          # False with --landmarks-only
      "shared_identity": bool,
      "seconds":         float,         # wall time of the whole command
      "results": [                      # one per photo, in the order given
        {"photo": "PHOTO", "dir": "DIR[/NN_STEM]",
         "files": {"mesh", "texture", "params", "overlay", "report"},   # paths; no
                                        # "texture" for a model without UVs
         "image_size": [H, W], "focal": float, "ypr_degrees": [yaw, pitch, roll],
         "landmark_nme": float,         # fitted vs detected, outer-eye normalised
         "timings": {"detect", "landmarks", "photometric", "total", ...},  # seconds
         "warnings": [str]}
      ],
      "failed":          [PHOTO]        # photos that failed (their rows carry "error")
    }
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ._util import (
    add_device,
    add_json,
    add_model,
    add_threads,
    check_output_dir,
    print_json,
    setup_compute,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a 3D face model to one photo (or several photos of one person)",
        description=(
            "Reconstruct a 3D face from PHOTO by analysis by synthesis: landmarks, then a "
            "photometric fit with the differentiable renderer. Writes mesh.obj (textured), "
            "params.json, overlay.png and report.html into DIR."
        ),
    )
    p.add_argument("photos", metavar="PHOTO", nargs="+", help="image file(s) (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_model(p, default="ict-face")
    p.add_argument(
        "--fast", action="store_true", help="FAST mode: 128-px crop and a short schedule"
    )
    p.add_argument(
        "--shared-identity",
        action="store_true",
        help="the photos show one person: fit one identity to all of them",
    )
    p.add_argument(
        "--landmarks-only", action="store_true", help="skip the photometric stage (stage 1 only)"
    )
    p.add_argument(
        "--face",
        default="largest",
        help="several faces: 'largest' (default), 'single' (error), or an index left to right",
    )
    p.add_argument(
        "--resolution", type=int, default=None, help="photometric crop size in pixels (192)"
    )
    p.add_argument(
        "--detector",
        default="auto",
        choices=("auto", "dlib", "dlib-hog", "dlib-cnn", "fan", "fan3d"),
        help="face/landmark detector: 'auto' (default: dlib HOG, then dlib's MMOD CNN for "
        "faces HOG misses, e.g. turned ones), 'dlib-hog', 'dlib-cnn', 'fan' (downloads)",
    )
    p.add_argument("--glb", action="store_true", help="also write mesh.glb (binary glTF)")
    p.add_argument(
        "--fast-start",
        action="store_true",
        help="with --method ganfit: start from the start regressor's shape and expression "
        "(Fast-GANFit) instead of the mean shape",
    )
    p.add_argument(
        "--method",
        default="classic",
        choices=tuple(METHODS),
        help="'classic' (Part I: landmarks + photometric, default), 'ganfit' (texture GAN, "
        "identity/content losses; also writes gan_texture.png) or 'gar' (inverts the learned "
        "renderer GAR: encoder start + refinement through normal maps)",
    )
    add_threads(p)
    add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json(p)
    p.set_defaults(func=handler)


def _classic(args, cfg):
    from ..errors import InvalidInput
    from ..fit import fit, fit_multi

    if getattr(args, "fast_start", False):
        raise InvalidInput("--fast-start is GANFit's (Fast-GANFit); add --method ganfit")
    return fit, fit_multi, {"config": cfg, "photometric": not args.landmarks_only}


def _ganfit(args, cfg):
    from ..errors import InvalidInput
    from ..methods.ganfit.fit import GanFitConfig, fit, fit_multi

    if args.landmarks_only:
        raise InvalidInput("--landmarks-only is the classic fit's stage 1; drop --method ganfit")
    gcfg = GanFitConfig(fast_start=getattr(args, "fast_start", False))
    if args.resolution is not None:
        gcfg.resolution = args.resolution
    return fit, fit_multi, {"config": gcfg}


def _gar(args, cfg):
    from ..errors import InvalidInput
    from ..methods.gar.invert import GARFitConfig, fit_gar

    if getattr(args, "fast_start", False):
        raise InvalidInput("--fast-start is GANFit's (Fast-GANFit); GAR starts from its encoder")
    if args.landmarks_only or args.shared_identity:
        raise InvalidInput(
            "--method gar fits one photo at a time through the learned renderer; drop "
            "--landmarks-only / --shared-identity"
        )
    return fit_gar, None, {"config": GARFitConfig()}


#: ``--method`` name -> builder ``(args, FitConfig) -> (fit, fit_multi, method kwargs)``.
METHODS = {"classic": _classic, "ganfit": _ganfit, "gar": _gar}


def _face_policy(value: str) -> str | int:
    from ..errors import InvalidInput

    if re.fullmatch(r"\d+", value):
        return int(value)
    if value not in ("largest", "single"):
        raise InvalidInput(
            f"--face must be 'largest', 'single' or a face index (0, 1, ...), got {value!r}"
        )
    return value


def _subdir(out: Path, i: int, photo: str, n: int) -> Path:
    if n == 1:
        return out
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(photo).stem) or "photo"
    return out / f"{i:02d}_{stem}"


def _row(photo: str, d: Path, paths: dict, res) -> dict:
    s = res.summary()
    return {
        "photo": photo,
        "dir": str(d),
        "files": {k: str(v) for k, v in paths.items()},
        "image_size": s["image_size"],
        "focal": s["focal"],
        "ypr_degrees": s["ypr_degrees"],
        "landmark_nme": s["landmark_nme"],
        "timings": s["timings"],
        "warnings": s["warnings"],
    }


def handler(args: argparse.Namespace) -> int:
    import sys

    from ..errors import FacelabError, InvalidInput
    from ..fit import FitConfig
    from ..models import load

    t0 = time.perf_counter()
    if args.shared_identity and len(args.photos) < 2:
        raise InvalidInput("--shared-identity needs at least two photos of the same person")
    for ph in args.photos:
        if not Path(ph).is_file():
            raise InvalidInput(f"{ph}: no such file")
    if args.resolution is not None and args.resolution < 32:
        raise InvalidInput(f"--resolution must be >= 32 pixels, got {args.resolution}")
    cfg = FitConfig() if args.resolution is None else FitConfig(resolution=args.resolution)
    face = _face_policy(args.face)
    fit, fit_multi, method_kw = METHODS[getattr(args, "method", "classic")](args, cfg)
    out = Path(args.out)
    check_output_dir(out)
    device = setup_compute(args)
    model = load(args.model, device=device)
    common = dict(
        model=model,
        **method_kw,
        face=face,
        detector=getattr(args, "detector", "auto"),
        fast=True if args.fast else None,
        progress=not args.quiet,
    )
    n = len(args.photos)

    def save(i: int, ph: str, res) -> dict:
        from ..fit.result import face_region

        d = _subdir(out, i, ph, n)
        if res.face_vertices is None:
            res.face_vertices = face_region(model)  # the report blends the face region only
        paths = res.save(d, glb=getattr(args, "glb", False))
        all_paths.append(paths)
        return _row(ph, d, paths, res)

    rows: list[dict] = []
    all_paths: list[dict] = []
    failed: list[str] = []
    if args.shared_identity:  # one fit of all photos: it succeeds or fails as a whole
        results = fit_multi(list(args.photos), **common)
        rows = [save(i, ph, res) for i, (ph, res) in enumerate(zip(args.photos, results))]
    else:
        # each photo is saved as soon as it is fitted; a failure is recorded and the rest go on
        results = []
        for i, ph in enumerate(args.photos):
            if n > 1 and not args.quiet:
                print(f"[{i + 1}/{n}] {ph}", file=sys.stderr)
            try:
                res = fit(ph, **common)
                rows.append(save(i, ph, res))
                results.append(res)
            except (FacelabError, OSError) as e:
                if n == 1:
                    raise
                failed.append(ph)
                err = {"type": type(e).__name__, "message": str(e)}
                rows.append({"photo": ph, "dir": None, "error": err})
    if args.shared_identity:
        from ..viz.report import save_report

        p0 = results[0].params
        neutral = model.forward(p0.identity.to(model.dtype), None)[0]
        save_report(results, out / "report.html", all_paths, shared_vertices=neutral)
    seconds = time.perf_counter() - t0
    if args.json:
        print_json(
            {
                "out": str(out),
                "model": getattr(model, "name", args.model),
                "fast": bool(args.fast),
                "photometric": not args.landmarks_only,
                "shared_identity": bool(args.shared_identity),
                "seconds": round(seconds, 3),
                "results": rows,
                "failed": failed,
            }
        )
    else:
        _print_rows(rows, seconds)
    if failed:
        for r in rows:
            if "error" in r:
                print(f"facelab fit: {r['photo']}: {r['error']['message']}", file=sys.stderr)
        print(
            f"facelab fit: error: {n - len(failed)} of {n} photos fitted; failed: "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


def _print_rows(rows: list[dict], seconds: float) -> None:
    for r in rows:
        if "error" in r:
            continue
        yaw, pitch, roll = r["ypr_degrees"]
        print(
            f"{r['photo']}: yaw {yaw:+.1f} pitch {pitch:+.1f} roll {roll:+.1f} deg, landmark "
            f"NME {r['landmark_nme']:.4f}, {r['timings'].get('total', 0.0):.1f} s -> {r['dir']}"
        )
        for w in r["warnings"]:
            print(f"  warning: {w}")
    print(f"wrote mesh.obj, params.json, overlay.png, report.html ({seconds:.1f} s)")
