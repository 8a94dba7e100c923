"""Choose the fitter's settings for detected landmarks by measurement on the TUNING faces only.

    python benchmarks/tune_fit.py --stage landmarks     # stage-1 variants (fast)
    python benchmarks/tune_fit.py --stage photometric   # stage-2 variants (FAST mode)

Tuning faces: :mod:`facelab.world` at realism 1, seed 5 (the benchmark reports seed 7) and
the ``tuning`` half of ``benchmarks/data/blender_eval`` (the ``report`` half is never read
here). Detector ``auto`` (dlib HOG, then MMOD CNN); missed faces are skipped here (tuning
compares settings on the same detected faces) and counted by ``benchmarks/fit.py``.
Prints the median over faces of the per-face NoW-style s2m median (mm), per yaw bin, and
the ratio to the aligned mean face.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit as bench  # noqa: E402  (benchmarks/fit.py)


def tuning_faces(n_world: int, blender: bool):
    from facelab.models import load
    from facelab.world import WorldConfig, WorldDataset

    model = load("ict-face")
    ds = WorldDataset(WorldConfig(model="ict-face", image_size=256, realism=1.0), length=400,
                      seed=5, model=model)  # fmt: skip
    faces = [
        bench.world_face(s, model) for _, s in bench.select_samples(ds, n_world, bins=bench.BINS)
    ]
    if blender:
        faces += bench.blender_faces(model, split="tuning")
    return model, faces


def main(argv=None) -> int:
    from facelab.fit import LandmarkFitConfig, fit
    from facelab.fit.calibration import load_calibration
    from facelab.fit.photometric import FitConfig, Stage

    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", default="landmarks", choices=("landmarks", "photometric"))
    ap.add_argument("--per-bin", type=int, default=4)
    ap.add_argument("--no-blender", action="store_true")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, faces = tuning_faces(args.per_bin, not args.no_blender)
    det_cache = bench.detect_all(faces, "auto")
    cal = load_calibration("auto")
    use = [(f, d) for f, d in zip(faces, det_cache) if d is not None]
    print(f"{len(use)} of {len(faces)} tuning faces detected", file=sys.stderr)
    mean_err = {id(f): bench.face_s2m(f, model.mean, model) for f, _ in use}

    def lm_variants():
        w = cal.weights()
        base = LandmarkFitConfig()
        yield "default (sigma .015, prior 1, uniform)", base, None, False
        yield "calibrated weights", base, w, False
        yield "weights + offsets", base, w, True
        for p in (3.0, 10.0, 30.0):
            yield f"weights + offsets, id prior {p:g}", replace(base, identity_prior=p), w, True
        for sg in (0.03, 0.05):
            yield f"weights + offsets, sigma {sg}", replace(base, sigma=sg), w, True
        for c in (0.03, 0.06):
            yield f"weights + offsets, prior 10, robust {c}", replace(
                base, identity_prior=10.0, robust=c), w, True  # fmt: skip
        yield "offsets only, id prior 10", replace(base, identity_prior=10.0), None, True
        # the fitted expression, not the identity, is what makes detected-landmark fits worse
        # than the mean face (the mean identity with the fitted expression scores worse than
        # the mean face; with the true expression, better): a stronger expression prior
        for ep in (3.0, 10.0, 30.0, 100.0):
            yield f"weights + offsets, prior 10, expr prior {ep:g}", replace(
                base, identity_prior=10.0, expression_prior=ep), w, True  # fmt: skip

    def ph_variants():
        w = cal.weights()
        lcfg = bench.landmark_config()
        yield "landmark stage only", lcfg, w, True, None
        yield "default FAST schedule, lm 300", lcfg, w, True, FitConfig()
        yield "lm weight 100", lcfg, w, True, FitConfig(weights={"landmark": 100.0})
        yield "lm weight 1000", lcfg, w, True, FitConfig(weights={"landmark": 1000.0})
        yield "id prior x10", lcfg, w, True, FitConfig(weights={"identity": 2e-3})
        yield "id prior x100", lcfg, w, True, FitConfig(weights={"identity": 2e-2})
        yield "lm weight 30", lcfg, w, True, FitConfig(weights={"landmark": 30.0})
        yield "stage-1 prior 30, default", replace(lcfg, identity_prior=30.0), w, True, FitConfig()
        # GANFit's ablation (benchmarks/ganfit.py) fits shapes better WITHOUT its landmark stage:
        # identity from the photo alone, the detector's points only for pose and expression
        frozen = replace(lcfg, identity_prior=1000.0)
        yield "stage-1 identity frozen, default", frozen, w, True, FitConfig()
        yield "stage-1 identity frozen, lm weight 100", frozen, w, True, FitConfig(
            weights={"landmark": 100.0})  # fmt: skip
        yield "stage-1 identity frozen, lm weight 10", frozen, w, True, FitConfig(
            weights={"landmark": 10.0})  # fmt: skip
        cand = [Stage("pose_light", 12, 0.05, ("rotation", "translation", "light", "albedo")),
                Stage("shape", 120, 0.05, ("rotation", "translation", "identity", "expression",
                                            "light", "albedo")),
                Stage("detail", 30, 0.02, ("rotation", "translation", "identity", "expression",
                                           "light", "albedo", "albedo_detail"))]  # fmt: skip
        yield "candidate [shape 120 lr .05, detail 30]", lcfg, w, True, FitConfig(stages=cand)
        # a stronger expression prior in both stages (the photometric one is ||e||^2)
        for ep in (10.0, 30.0):
            le = replace(lcfg, expression_prior=ep)
            yield f"stage-1 expr prior {ep:g}, landmark stage only", le, w, True, None
            for pw in (2e-4, 3e-3, 3e-2, 0.3):
                yield f"stage-1 expr prior {ep:g}, photometric expr {pw:g}", le, w, True, FitConfig(
                    weights={"expression": pw})  # fmt: skip

    variants = lm_variants() if args.stage == "landmarks" else ph_variants()
    print(f"{'variant':45s} " + " ".join(f"{bench._bin_name(k):>14s}" for k in range(3))
          + "   all (ratio to mean face)")  # fmt: skip
    for v in variants:
        name = v[0]
        if args.only and not any(o in name for o in args.only):
            continue
        errs = {k: [] for k in range(3)}
        ratios = {k: [] for k in range(3)}
        t0 = time.perf_counter()
        for f, d in use:
            if args.stage == "landmarks":
                _, lcfg, w, off = v
                cfg, photometric = None, False
            else:
                _, lcfg, w, off, cfg = v
                photometric = cfg is not None
            r = fit(f["image"], model=model, landmarks=d, photometric=photometric,
                    landmark_config=lcfg, config=cfg, fast=True, progress=False,
                    calibration=cal if (w is not None or off) else None,
                    calibration_weights=w is not None, calibration_offsets=off)  # fmt: skip
            e = bench.face_s2m(f, r.vertices, model)
            errs[f["bin"]].append(e)
            ratios[f["bin"]].append(e / mean_err[id(f)])
        allr = [x for k in ratios for x in ratios[k]]
        cells = " ".join(
            f"{statistics.median(errs[k]):5.2f} ({statistics.median(ratios[k]):4.2f})"
            if errs[k] else f"{'-':>14s}" for k in range(3))  # fmt: skip
        print(f"{name:45s} {cells}   {statistics.median(allr):.3f}  "
              f"[{(time.perf_counter() - t0) / len(use):.1f} s/face]", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
