"""Choose GANFit's schedule for detected landmarks by measurement on the TUNING faces only.

    python benchmarks/tune_ganfit.py --fast                   # all variants, FAST mode
    python benchmarks/tune_ganfit.py --fast --only default "one stage" --json

Tuning faces are ``benchmarks/tune_fit.py``'s: :mod:`facelab.world` at realism 1, seed 5
(``benchmarks/ganfit.py`` reports seed 7) and the ``tuning`` half of
``benchmarks/data/blender_eval`` (the ``report`` half is never read here). Detector ``auto``
with the shipped calibration, as users run it. Missed faces are skipped here (every variant
sees the same detected faces) and counted as failures by ``benchmarks/ganfit.py``.

Prints, per variant and set, the median over faces of the per-face NoW-style s2m median (mm)
and its ratio to the aligned mean face, beside the mean face and the Part I fit on the same
faces, and the per-face paired difference to the default (mean +- 2 standard errors).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ganfit as bganfit  # noqa: E402  (benchmarks/ganfit.py)
import tune_fit  # noqa: E402  (benchmarks/tune_fit.py: the tuning faces)

VARIANTS: dict[str, dict] = {
    "default": {},
    "one stage": {"one_stage": True},
    "landmark x 1/3": {"weights": {"landmark": 100.0}},
    "landmark x 1/10": {"weights": {"landmark": 30.0}},
    "one stage, landmark x 1/3": {"one_stage": True, "weights": {"landmark": 100.0}},
}


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and 2 standard errors of the per-face differences ``a - b``."""
    d = [x - y for x, y in zip(a, b)]
    if len(d) < 2:
        return (d[0] if d else math.nan), math.nan
    return statistics.fmean(d), 2 * statistics.stdev(d) / math.sqrt(len(d))


def main(argv=None) -> int:
    from facelab.fit.calibration import load_calibration
    from facelab.methods.ganfit.fit import GanFitConfig, load_components

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast", action="store_true", help="FAST mode (both fitters)")
    ap.add_argument("--per-bin", type=int, default=4, help="world tuning faces per yaw bin (4)")
    ap.add_argument("--no-blender", action="store_true")
    ap.add_argument("--only", nargs="*", help="variant names (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t_all = time.perf_counter()
    model, faces = tune_fit.tuning_faces(args.per_bin, not args.no_blender)
    dets = tune_fit.bench.detect_all(faces, "auto")
    cal = load_calibration("auto")
    _, enc = load_components()
    use = [(f, d) for f, d in zip(faces, dets) if d is not None]
    print(f"{len(use)} of {len(faces)} tuning faces detected", file=sys.stderr, flush=True)
    names = args.only or list(VARIANTS)
    unknown = set(names) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; known {list(VARIANTS)}")
    per: dict[str, list[dict]] = {}
    base: list[dict] = []
    for i, (f, d) in enumerate(use):
        # mean face and Part I once per face (config-independent), with the default GANFit
        base.append(bganfit.run_face(f, d, model, enc, args, cal, GanFitConfig(progress=False)))
        print(f"  [{i + 1}/{len(use)}] {f['name']}: mean {base[-1]['mean face']:.2f} "
              f"Part I {base[-1]['Part I']:.2f} default {base[-1]['GANFit']:.2f}",
              file=sys.stderr, flush=True)  # fmt: skip
    per["default"] = base
    for name in names:
        if name == "default":
            continue
        cfg = VARIANTS[name]
        per[name] = []
        for f, d in use:
            r = bganfit.run_face(f, d, model, enc, args, cal, GanFitConfig(progress=False, **cfg),
                                 part1=False)  # fmt: skip
            per[name].append(r)
        print(f"  {name}: done", file=sys.stderr, flush=True)
    out = []
    for set_name in ("world", "blender", "all"):
        idx = [k for k, (f, _) in enumerate(use)
               if set_name == "all" or (f["name"].startswith("blender") == (set_name == "blender"))]  # fmt: skip
        if not idx:
            continue
        floor = statistics.median(base[k]["mean face"] for k in idx)
        part1 = statistics.median(base[k]["Part I"] for k in idx)
        ref = [per["default"][k]["GANFit"] for k in idx]
        for name in ["default", *[n for n in names if n != "default"]]:
            vals = [per[name][k]["GANFit"] for k in idx]
            med = statistics.median(vals)
            m, h = paired(vals, ref)
            out.append({"set": set_name, "variant": name, "n": len(idx), "s2m_median_mm": med,
                        "ratio_to_mean_face": med / floor, "mean_face_mm": floor,
                        "part1_mm": part1, "paired_vs_default_mm": m, "paired_2se_mm": h})  # fmt: skip
    doc = {"fast": args.fast, "faces_detected": len(use), "faces": len(faces),
           "seconds": time.perf_counter() - t_all, "rows": out}  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(f"{'set':8s} {'variant':28s} {'n':>3s} {'s2m med':>8s} {'x mean':>7s} "
              f"{'mean face':>9s} {'Part I':>7s} {'vs default':>16s}")  # fmt: skip
        for r in out:
            print(f"{r['set']:8s} {r['variant']:28s} {r['n']:3d} {r['s2m_median_mm']:8.3f} "
                  f"{r['ratio_to_mean_face']:7.2f} {r['mean_face_mm']:9.3f} {r['part1_mm']:7.3f} "
                  f"{r['paired_vs_default_mm']:+8.3f} ± {r['paired_2se_mm']:.3f}")  # fmt: skip
        print(
            f"{doc['faces_detected']} of {doc['faces']} faces detected; "
            f"{doc['seconds'] / 60:.1f} min"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
