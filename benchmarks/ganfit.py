"""GANFit (issue 15) measured as users run it: photo -> detector -> fit, against ground truth.

    python benchmarks/ganfit.py --fast                 # FAST mode (the chapter's settings)
    python benchmarks/ganfit.py --fast --per-bin 2 --blender-n 4 --ablation-n 3 --json

**Sets** (both with exact ICT-FaceKit ground truth; the helpers of ``benchmarks/fit.py``):
``world`` -- :mod:`facelab.world` at realism 1, 256 px, seed 7, the first ``--per-bin`` faces
of every yaw bin (< 20, 20-45, 45-70 deg); ``blender`` -- the ``report`` half of
``benchmarks/data/blender_eval`` (Cycles, an image formation neither fitter shares).
Detected landmarks (``auto``: dlib HOG then MMOD CNN) with the shipped calibration; a missed
face counts as a failure (infinite error in the medians), never skipped.

**Rows**: ``mean face`` (floor), ``Part I`` (:func:`facelab.fit.fit`: landmarks +
photometric, PCA albedo), ``GANFit`` (:func:`facelab.methods.ganfit.fit.fit`).

**Metrics**: NoW-style scan-to-mesh median (mm; ``benchmarks/fit.py``'s ``face_s2m``: 7-landmark
alignment + rigid ICP, 95 mm crop around the nose tip); UV texture RMSE (sRGB) against the
world's ground-truth albedo on the skin texels visible / hidden in the photo (world only: the
Blender set stores no albedo map); identity similarity: cosine of dlib-ResNet embeddings of
the photo and of the fit's render over it -- **the only face-recognition network available
offline is the one the GANFit loss uses, so this number is not independent of the loss**;
seconds per photo (detection + fit, 1 torch thread): wall time (load average printed: the
machine is shared) and the process's CPU time (what one unloaded core would take).

**Ablation** (first ``--ablation-n`` detected world faces): GANFit without each term
(identity, second-render identity, content, pixel, landmark), and two stages (the Adam
stages start from the landmark fit's shape) with and without the old landmark weight 300, vs
the full (one-stage) schedule; mean +- std over faces.

**MICC-like settings** (``--settings micc``; MICC Florence's three video conditions, mirrored
in :mod:`facelab.world` at realism 1 and 256 px, seed 7, the first ``--micc-n`` faces of
each; the ranges are ours):

- ``cooperative``: indoor, frontal -- yaw +-15 deg, pitch +-10, soft light (ambient 0.55-0.75,
  key 0.1-0.3), the face filling 50-60 % of the frame;
- ``indoor PTZ``: a pan-tilt-zoom camera -- yaw +-40, pitch +-20, a smaller face (30-45 %),
  stronger blur and sensor noise (x2 the realism-1 scale);
- ``outdoor``: strong sun -- key light 0.8-1.2 with shadows, little ambient (0.15-0.3), yaw
  +-30, pitch +-15.

**Time to error** (``--time-to-error``, FAST): GANFit's Adam stages started from (a) the
landmark fit's shape (``one_stage=False``), (b) the mean shape (the default) and (c) the
start regressor's prediction (``fast_start``, Fast-GANFit), each run for 0, 25, 50 and 100 %
of the FAST schedule's steps; median s2m and seconds per photo over the first
``--tte-world`` world and ``--tte-blender`` Blender faces. 0 % of (c) is the regressor alone
(with the landmark fit's pose); 0 % of (b) is the mean face posed by the landmark fit.

**Paper** (Gecer et al. 2019, Table 1; protocol in the GANFit repository's
``micc_evaluation.py``): MICC Florence average 0.95 mm -- different data (real scans,
real video frames), quoted for scale only.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit as bfit  # noqa: E402  (benchmarks/fit.py: faces, detection, s2m, bins)

ROWS = ("mean face", "Part I", "GANFit")
ABLATIONS = {
    "full (one stage)": {},
    "- identity": {"weights": {"id": 0.0}},
    "- 2nd-render identity": {"weights": {"id_random": 0.0}},
    "- content": {"weights": {"content": 0.0}},
    "- pixel": {"weights": {"pixel": 0.0}},
    "- landmark": {"weights": {"landmark": 0.0}},
    "two stages": {"one_stage": False},
    "two stages, landmark 300 (old default)": {"one_stage": False, "weights": {"landmark": 300.0}},
}
PAPER = {"MICC Florence average (Gecer et al. 2019, Table 1)": 0.95}


def identity_similarity(enc, image: torch.Tensor, res, landmarks: torch.Tensor) -> float:
    """cos(F(photo), F(render over the photo)), dlib chip from the detected landmarks."""
    from facelab.vision.identity import similarity

    img = (image if image.dim() == 4 else image[None]).float()  # Blender photos are (1, 3, H, W)
    comp = torch.where(res.mask[None, None], res.render[None].float(), img)
    with torch.no_grad():
        a = enc.embed(img, landmarks[None].float())
        b = enc.embed(comp, landmarks[None].float())
    return float(similarity(a, b)[0])


def texture_errors(model, face: dict, albedo: torch.Tensor) -> dict[str, float]:
    from facelab.methods.ganfit.fit_metrics import uv_texture_error

    return uv_texture_error(model, albedo.double(), face["albedo"].double(), face["visible"])


#: MICC-like world settings (module doc): WorldConfig overrides at realism 1.
MICC_SETTINGS = {
    "cooperative": {"yaw_range": (-15.0, 15.0), "pitch_range": (-10.0, 10.0),
                    "ambient_range": (0.55, 0.75), "key_range": (0.1, 0.3),
                    "fill_range": (0.5, 0.6)},
    "indoor PTZ": {"yaw_range": (-40.0, 40.0), "pitch_range": (-20.0, 20.0),
                   "fill_range": (0.3, 0.45), "blur": 2.0, "noise": 2.0},
    "outdoor": {"yaw_range": (-30.0, 30.0), "pitch_range": (-15.0, 15.0),
                "key_range": (0.8, 1.2), "ambient_range": (0.15, 0.3), "shadows": 1.0},
}  # fmt: skip


def world_faces(model, per_bin: int, seed: int = 7, size: int = 256, first: int | None = None,
                **overrides) -> list[dict]:  # fmt: skip
    """The benchmark's world faces with their albedo map and visible vertices: the first
    ``per_bin`` of every yaw bin, or (``first``) the first ``first`` samples; ``overrides``
    are :class:`~facelab.world.WorldConfig` fields (the MICC-like settings)."""
    from facelab.methods.ganfit.fit_metrics import visible_vertices
    from facelab.models.morphable import pose_points
    from facelab.world import WorldConfig, WorldDataset

    wc = WorldConfig(model="ict-face", image_size=size, realism=1.0, **overrides)
    ds = WorldDataset(wc, length=400, seed=seed, model=model, include_albedo=True)
    picked = (
        bfit.select_samples(ds, per_bin) if first is None else [(None, ds[i]) for i in range(first)]
    )
    out = []
    for _, s in picked:
        f = bfit.world_face(s, model)
        v = model.forward(s["identity"][None], s["expression"][None])
        posed = pose_points(v, s["rotation"][None], s["translation"][None])[0]
        f["albedo"] = s["albedo_texture"]
        f["visible"] = visible_vertices(model, posed.double(), s["K"].double(), (size, size))
        out.append(f)
    return out


def run_face(face: dict, det, model, enc, args, cal, config=None, part1: bool = True) -> dict:
    from facelab.fit import fit as fit_part1
    from facelab.methods.ganfit.fit import GanFitConfig
    from facelab.methods.ganfit.fit import fit as fit_ganfit

    row = {"face": face["name"], "bin": face["bin"], "yaw": face["yaw"],
           "detected": det is not None, "mean face": bfit.face_s2m(face, model.mean, model)}  # fmt: skip
    if det is None:
        return row
    fits = {}
    if part1:
        t0, c0 = time.perf_counter(), time.process_time()
        fits["Part I"] = fit_part1(face["image"], model=model, landmarks=det, calibration=cal,
                                   landmark_config=bfit.landmark_config(), fast=args.fast,
                                   progress=False)  # fmt: skip
        row["Part I seconds"] = face["detect_seconds"] + time.perf_counter() - t0
        row["Part I cpu seconds"] = time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    fits["GANFit"] = fit_ganfit(face["image"], model=model, landmarks=det, calibration=cal,
                                landmark_config=bfit.landmark_config(), fast=args.fast,
                                config=config or GanFitConfig(progress=False), progress=False)  # fmt: skip
    row["GANFit seconds"] = face["detect_seconds"] + time.perf_counter() - t0
    row["GANFit cpu seconds"] = time.process_time() - c0  # load-independent (1 thread)
    for name, r in fits.items():
        row[name] = bfit.face_s2m(face, r.vertices, model)
        row[f"{name} id_sim"] = identity_similarity(enc, face["image"], r, det)
        if "albedo" in face:
            t = texture_errors(model, face, r.vertex_albedo)
            row[f"{name} tex_visible"], row[f"{name} tex_hidden"] = t["visible"], t["hidden"]
    return row


def _mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.fmean(xs) if xs else math.nan


def summarize(rows: list[dict], set_name: str) -> list[dict]:
    out = []
    groups = [(bfit._bin_name(k), [r for r in rows if r["bin"] == k]) for k in range(3)]
    groups.append(("all", rows))
    for bname, rs in groups:
        if not rs:
            continue
        floor = bfit.median_with_failures([r["mean face"] for r in rs])
        det = sum(r["detected"] for r in rs) / len(rs)
        for m in ROWS:
            med = bfit.median_with_failures([r.get(m) for r in rs])
            e = {"set": set_name, "bin": bname, "method": m, "n": len(rs), "detection": det,
                 "s2m_median_mm": med, "ratio_to_mean_face": med / floor if floor else math.nan}  # fmt: skip
            if m != "mean face":
                e["id_similarity"] = _mean([r.get(f"{m} id_sim") for r in rs])
                e["tex_visible"] = _mean([r.get(f"{m} tex_visible") for r in rs])
                e["tex_hidden"] = _mean([r.get(f"{m} tex_hidden") for r in rs])
                secs = [r[f"{m} seconds"] for r in rs if f"{m} seconds" in r]
                e["seconds_per_photo"] = statistics.median(secs) if secs else math.nan
                cpu = [r[f"{m} cpu seconds"] for r in rs if f"{m} cpu seconds" in r]
                e["cpu_seconds_per_photo"] = statistics.median(cpu) if cpu else math.nan
            out.append(e)
    return out


def ablation(faces, dets, model, enc, args, cal) -> list[dict]:
    from facelab.methods.ganfit.fit import GanFitConfig

    picked = [(f, d) for f, d in zip(faces, dets) if d is not None][: args.ablation_n]
    out = []
    for name, kw in ABLATIONS.items():
        rs = [run_face(f, d, model, enc, args, cal, GanFitConfig(progress=False, **kw), False)
              for f, d in picked]  # fmt: skip
        e = {"variant": name, "n": len(rs)}
        for key in ("GANFit", "GANFit id_sim", "GANFit tex_visible", "GANFit tex_hidden"):
            xs = [r[key] for r in rs if r.get(key) is not None]
            e[key.replace("GANFit", "").strip() or "s2m_mm"] = (
                statistics.fmean(xs) if xs else math.nan,
                statistics.stdev(xs) if len(xs) > 1 else 0.0,
            )
        out.append(e)
        print(f"  ablation {name}: {e}", file=sys.stderr, flush=True)
    return out


def run_set(label: str, faces, model, enc, args, cal) -> tuple[list[dict], list]:
    """Detect, then :func:`run_face` every face (progress on stderr, also with --json: stdout
    stays one JSON document); returns ``(rows, detections)``."""
    dets = bfit.detect_all(faces, args.detector)
    rows = []
    for i, (f, d) in enumerate(zip(faces, dets)):
        r = run_face(f, d, model, enc, args, cal)
        rows.append(r)
        cells = ", ".join(f"{m} {_f(r.get(m), '.2f')}" for m in ROWS)
        print(f"  {label} [{i + 1}/{len(faces)}] {f['name']} yaw {f['yaw']:+6.1f}: {cells} mm",
              file=sys.stderr, flush=True)  # fmt: skip
    return rows, dets


def micc(model, enc, args, cal) -> tuple[list[dict], dict[str, list[dict]]]:
    """The MICC-like settings: mean face, Part I and GANFit on ``--micc-n`` faces each."""
    summary, rows = [], {}
    for name, over in MICC_SETTINGS.items():
        faces = world_faces(model, 0, first=args.micc_n, **over)
        rows[name], _ = run_set(f"micc {name}", faces, model, enc, args, cal)
        summary += [e for e in summarize(rows[name], f"micc {name}") if e["bin"] == "all"]
    return summary, rows


TTE_STARTS = {
    "landmark fit": {"one_stage": False},
    "mean shape (default)": {},
    "start regressor (Fast-GANFit)": {"fast_start": True},
}
TTE_FRACTIONS = (0.0, 0.25, 0.5, 1.0)


def time_to_error(model, args, cal) -> list[dict]:
    """s2m and seconds per photo by start and by the fraction of the FAST schedule run."""
    from facelab.methods.ganfit.fit import GanFitConfig, GanStage, default_stages
    from facelab.methods.ganfit.fit import fit as fit_ganfit

    faces = world_faces(model, 0, first=args.tte_world) if args.tte_world else []
    faces += bfit.blender_faces(model, "report", limit=args.tte_blender) if args.tte_blender else []
    dets = bfit.detect_all(faces, args.detector)
    out = []
    for start, kw in TTE_STARTS.items():
        for frac in TTE_FRACTIONS:
            stages = [GanStage(s.name, round(s.steps * frac), s.lr, s.params)
                      for s in default_stages(fast=True)]  # fmt: skip
            stages = [s for s in stages if s.steps > 0]
            cfg = GanFitConfig(stages=stages, progress=False, fast=True, **kw)
            errs, wall, cpu = {"world": [], "blender": []}, [], []
            for f, d in zip(faces, dets):
                key = f["name"].split("/")[0]
                if d is None:
                    errs[key].append(math.inf)
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                r = fit_ganfit(f["image"], model=model, landmarks=d, calibration=cal,
                               landmark_config=bfit.landmark_config(), config=cfg)  # fmt: skip
                wall.append(f["detect_seconds"] + time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                errs[key].append(bfit.face_s2m(f, r.vertices, model))
            e = {"start": start, "fraction": frac, "steps": sum(s.steps for s in stages),
                 "seconds_per_photo": statistics.median(wall) if wall else math.nan,
                 "cpu_seconds_per_photo": statistics.median(cpu) if cpu else math.nan}  # fmt: skip
            for key, xs in errs.items():
                if xs:
                    e[f"{key}_n"] = len(xs)
                    e[f"{key}_s2m_median_mm"] = bfit.median_with_failures(xs)
            out.append(e)
            print(f"  time-to-error {start} x{frac}: {e}", file=sys.stderr, flush=True)
    return out


def targets(summary: list[dict], fast: bool) -> list[dict]:
    by = {(r["set"], r["bin"], r["method"]): r for r in summary}
    out = []
    for st in sorted({r["set"] for r in summary if not r["set"].startswith("micc")}):
        g, p = by.get((st, "all", "GANFit")), by.get((st, "all", "Part I"))
        if g and p:
            out.append({"target": f"{st}: GANFit shape error below the Part I fit (median, all bins)",
                        "value": g["s2m_median_mm"], "limit": p["s2m_median_mm"],
                        "met": g["s2m_median_mm"] < p["s2m_median_mm"]})  # fmt: skip
            if math.isfinite(g["tex_hidden"]) and math.isfinite(p["tex_hidden"]):
                out.append({"target": f"{st}: GANFit UV error below Part I on hidden texels",
                             "value": g["tex_hidden"], "limit": p["tex_hidden"],
                             "met": g["tex_hidden"] < p["tex_hidden"]})  # fmt: skip
            lim = 20.0 if fast else 120.0
            for key, what in (("seconds_per_photo", "wall"), ("cpu_seconds_per_photo", "CPU")):
                out.append({"target": f"{st}: {'FAST' if fast else 'default'} GANFit < {lim:g} s/photo ({what})",
                            "value": g[key], "limit": lim, "met": g[key] < lim})  # fmt: skip
    return out


_f = bfit.format_cell  # "-" for missing / NaN, "inf", else the format


def format_table(summary: list[dict]) -> str:
    hdr = (f"{'set':8s} {'yaw bin':8s} {'method':10s} {'n':>3s} {'det%':>5s} {'s2m med':>8s} "
           f"{'x mean':>7s} {'id cos':>7s} {'tex vis':>8s} {'tex hid':>8s} {'s/photo':>8s} {'cpu s':>6s}")  # fmt: skip
    lines = [hdr, "-" * len(hdr)]
    for r in summary:
        lines.append(
            f"{r['set']:8s} {r['bin']:8s} {r['method']:10s} {r['n']:3d} {100 * r['detection']:5.0f} "
            f"{_f(r['s2m_median_mm'], '8.3f'):>8s} {_f(r['ratio_to_mean_face'], '7.2f'):>7s} "
            f"{_f(r.get('id_similarity'), '7.3f'):>7s} {_f(r.get('tex_visible'), '8.4f'):>8s} "
            f"{_f(r.get('tex_hidden'), '8.4f'):>8s} {_f(r.get('seconds_per_photo'), '8.1f'):>8s} "
            f"{_f(r.get('cpu_seconds_per_photo'), '6.1f'):>6s}"
        )
    return "\n".join(lines)


def run(args) -> dict:
    from facelab.fit.calibration import load_calibration
    from facelab.methods.ganfit.fit import load_components
    from facelab.models import load

    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    model = load("ict-face")
    _, enc = load_components()
    cal = load_calibration(args.detector, model.name)
    rows, summary, abl = {}, [], []
    sets = {}
    if "world" in args.sets:
        sets["world"] = world_faces(model, args.per_bin)
    if "blender" in args.sets:
        sets["blender"] = bfit.blender_faces(model, "report", limit=args.blender_n)
    for name, faces in sets.items():
        rows[name], dets = run_set(name, faces, model, enc, args, cal)
        summary += summarize(rows[name], name)
        if name == "world" and args.ablation_n > 0:
            abl = ablation(faces, dets, model, enc, args, cal)
    micc_summary, micc_rows = micc(model, enc, args, cal) if args.settings == "micc" else ([], {})
    tte = time_to_error(model, args, cal) if args.time_to_error else []
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    meta = {"fast": args.fast, "per_bin": args.per_bin, "blender_n": args.blender_n,
            "detector": args.detector, "threads": torch.get_num_threads(),
            "load_average_end": load_avg, "seconds": time.perf_counter() - t_all,
            "identity_network": "dlib-ResNet port (the same network as the GANFit identity loss)"}  # fmt: skip
    return {"meta": meta, "summary": summary, "rows": rows, "ablation": abl,
            "micc_settings": {"config": MICC_SETTINGS, "summary": micc_summary, "rows": micc_rows},
            "time_to_error": tte,
            "paper_mm_different_data": PAPER, "targets": targets(summary, args.fast)}  # fmt: skip


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--fast", action="store_true", help="FAST mode (both fitters)")
    ap.add_argument("--per-bin", type=int, default=10, help="world faces per yaw bin (10)")
    ap.add_argument("--blender-n", type=int, default=None, help="at most this many Blender faces")
    ap.add_argument("--ablation-n", type=int, default=3, help="world faces in the ablation (3)")
    ap.add_argument("--sets", default="world,blender",
                    help="comma list: world, blender (empty: neither)")  # fmt: skip
    ap.add_argument("--settings", default=None, choices=("micc",),
                    help="also the MICC-like world settings (module doc)")  # fmt: skip
    ap.add_argument("--micc-n", type=int, default=8, help="faces per MICC-like setting (8)")
    ap.add_argument("--time-to-error", action="store_true",
                    help="also the start x schedule-length study (FAST)")  # fmt: skip
    ap.add_argument("--tte-world", type=int, default=8, help="world faces in it (8)")
    ap.add_argument("--tte-blender", type=int, default=6, help="Blender faces in it (6)")
    ap.add_argument("--detector", default="auto", help="facelab.vision.get_detector name")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
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
    print(f"GANFit benchmark ({'FAST' if m['fast'] else 'default'}; photo -> {m['detector']} -> fit); "
          f"{m['threads']} thread(s), load avg at end {m['load_average_end']:.1f}")  # fmt: skip
    print(format_table(out["summary"]))
    if out["ablation"]:
        print("\nablation (world, mean +- std over faces)")
        for e in out["ablation"]:
            cells = "  ".join(
                f"{k} {v[0]:.4f}+-{v[1]:.4f}" for k, v in e.items() if isinstance(v, tuple)
            )
            print(f"  {e['variant']:24s} n={e['n']}  {cells}")
    if out["micc_settings"]["summary"]:
        print("\nMICC-like settings (world, realism 1; module doc)")
        print(format_table(out["micc_settings"]["summary"]))
    if out["time_to_error"]:
        print("\ntime to error (FAST schedule fraction; median s2m mm, s/photo)")
        for e in out["time_to_error"]:
            print(f"  {e['start']:30s} x{e['fraction']:<4g} steps {e['steps']:3d}  "
                  f"world {_f(e.get('world_s2m_median_mm'), '.3f')}  "
                  f"blender {_f(e.get('blender_s2m_median_mm'), '.3f')}  "
                  f"{_f(e['seconds_per_photo'], '.1f')} s ({_f(e['cpu_seconds_per_photo'], '.1f')} cpu)")  # fmt: skip
    print("\npaper (different data):", out["paper_mm_different_data"])
    print("identity similarity uses", m["identity_network"])
    for t in out["targets"]:
        print(
            f"  {'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['value']:.4f} (limit {t['limit']:.4f})"
        )
    print(f"total {m['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
