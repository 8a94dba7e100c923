"""GAR's claim with ground truth: does fitting through a *learned* renderer shrink the domain gap?

    python benchmarks/gar.py --fast --faces 10 --json      # what the chapter's table shows
    python benchmarks/gar.py                                # default mode: 30 faces per level
    python benchmarks/gar.py --fast --faces 30 --ablations \
        --variants normals=STEM depth=STEM params=STEM concat=STEM   # + the condition ablation

**Faces.** :mod:`facelab.world` (``ict-face``, 256 px, seed 7): the first ``--faces`` samples
with ``|yaw| < 45``, rendered at every ``--realism`` level (0, 0.5, 1). The geometry, pose and
albedo of a face are the *same* at every level (same world seed and index); only the image
formation changes -- from exactly Part I's Lambert-SH model (0) to specular, subsurface,
shadows, backgrounds, noise, blur and JPEG (1). So a method's error growth from 0 to 1 is its
domain gap. GAR was trained on realism-1 photos of *other* seeds (training world seed 0).

**Rows.** ``mean face`` (the floor: the model's mean shape, Part I's landmark pose);
``part1`` (:func:`facelab.fit.fit`: detector landmarks with calibration + the photometric
stage, the headline of ``benchmarks/fit.py``); ``gar`` (:func:`facelab.methods.gar.invert.fit_gar`:
Part I's landmark fit for the pose, encoder start, refinement through normal maps and G);
``gar-encoder`` (the encoder's shape, no refinement); with ``--ablations`` also ``gar-mean``
(mean-face start + refinement); with ``--variants NAME=STEM`` a row ``gar[NAME]`` per extra
checkpoint (encoder start + refinement; at the levels of ``--variants-realism``, default the
highest): chapter 8's condition ablation (``facelab.methods.gar.train``'s ``ablation-*``
configs). All take the same detected landmarks (``auto`` detector); a
miss is a failure (infinite error in medians, counted in ``det``).

**Metrics.** ``s2m``: NoW-style scan-to-mesh median, mm (``benchmarks/fit.py``'s
:func:`face_s2m`); ``normal``: mean angle (degrees) between the fit's rendered normals and the
world's ground-truth normals over the ground-truth face mask where the fit covers it;
``nme``: inner-51 landmark NME (%) against the exact landmarks; ``s``: seconds per photo
(detection + fit; GAR's without the UV texture unwrap Part I's includes; the load average is
printed, the machine is shared). Medians over faces.

**Blender** (``--blender``, JSON key ``blender``: ``summary`` with ``realism`` -1 and
``rows``): the same rows on the report half of ``benchmarks/data/blender_eval`` (Blender
Cycles renders, an image formation none of our code shares; see ``benchmarks/fit.py``); no
ground-truth normals there, so ``normal`` is empty.

**Adherence** (``adherence`` in the JSON, one entry per GAR checkpoint): does the generator
draw the geometry it is given? On ``--adherence-n`` held-out geometries (the GAR data sampler
at another seed), each generator renders its own condition with a random ``z``; one common
judge (the shipped checkpoint's auxiliary estimator, trained on real crops only, the same for
every checkpoint) reads the normals and landmarks back: mean normal angle (degrees, over the
face mask) and landmark RMSE (crop pixels) against the geometry's true ones.
The floor, ``gar (wrong geometry)``: the first generator drawing each face from *another*
face's condition (what a generator that ignored its condition would score).

**The paper's numbers** (Piao et al. CVPR 2021, supplementary: AFLW2000-3D landmark NME
GAR 2.92 vs 3DDFA 5.42, PRN 3.62) are printed beside ours, labelled as different data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit as fitbench  # noqa: E402  (benchmarks/fit.py: the shared evaluation helpers)

PAPER = {
    "source": "Piao et al., Inverting Generative Adversarial Renderer for Face Reconstruction, "
    "CVPR 2021, supplementary material (AFLW2000-3D, 68-point NME %, real photos)",
    "aflw2000_nme_percent": {"GAR": 2.92, "3DDFA": 5.42, "PRN": 3.62},
    "note": "different data (real photos, other normalisation), not comparable with our rows",
}
METHODS = ("mean face", "part1", "gar", "gar-encoder", "gar-mean")
#: The ``realism`` of the Blender rows in their summary (not a world level: another renderer).
BLENDER = -1.0


def normal_error_deg(posed: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                     gt_normals: torch.Tensor, gt_mask: torch.Tensor) -> float:  # fmt: skip
    """Mean angle (deg) between the rendered normals of ``posed (V, 3)`` (camera space, photo
    intrinsics ``K``) and ``gt_normals (H, W, 3)`` over ``gt_mask (H, W)`` & the render."""
    from facelab.render import Renderer

    H, W = gt_mask.shape
    r = Renderer(image_size=(H, W)).render(posed[None].float(), faces, K=K[None].float())
    n = r.normals[0].permute(1, 2, 0)
    m = r.fragments.mask[0] & gt_mask.bool()
    if int(m.sum()) == 0:
        return math.inf
    cos = (n[m] * gt_normals[m].float()).sum(-1).clamp(-1, 1)
    return float(torch.rad2deg(torch.acos(cos)).mean())


def select(ds, n: int, max_yaw: float = 45.0, max_index: int = 600) -> list[int]:
    """Indices of the first ``n`` samples with ``|yaw| < max_yaw`` (geometry only: realism-free)."""
    out = []
    for i in range(max_index):
        if len(out) >= n:
            break
        wb = ds.renderer.sample([i], ds.seed)
        if abs(float(wb.ypr[0, 0])) < max_yaw:
            out.append(i)
    return out


def _part1(face, model, det, cal, args, row, record, gtn, gtm) -> None:
    from facelab.fit import fit
    from facelab.models.morphable import pose_points

    t0 = time.perf_counter()
    r1 = fit(face["image"], model=model, landmarks=det, landmark_config=fitbench.landmark_config(),
             calibration=cal, fast=args.fast, progress=False)  # fmt: skip
    record("part1", r1, face["detect_seconds"] + time.perf_counter() - t0)
    # the floor: the mean shape in Part I's landmark pose
    mean = model.mean.double()
    posed = pose_points(mean[None], r1.params.rotation.double(), r1.params.translation.double())[0]
    row["mean face"] = {
        "s2m": fitbench.face_s2m(face, model.mean, model),
        "normal": None if gtn is None else normal_error_deg(posed, model.faces, r1.K, gtn, gtm),
        "nme": None, "s": None,
    }  # fmt: skip


def evaluate_face(s: dict, model, gar, det, cal, args, det_seconds: float = 0.0,
                  reuse: dict | None = None, variants: dict | None = None,
                  level: float | None = None) -> dict:  # fmt: skip
    from facelab.methods.gar.invert import GARFitConfig, fit_gar

    # s: a world sample, or an already prepared benchmark face (the Blender set: no normals)
    face = s if "scan" in s else fitbench.world_face(s, model)
    face["detect_seconds"] = det_seconds
    row = {"face": face["name"], "yaw": face["yaw"], "detected": det is not None}
    if det is None:
        return row
    gtn, gtm = s.get("normals"), s.get("mask_face")

    def record(name: str, res, seconds: float) -> None:
        row[name] = {
            "s2m": fitbench.face_s2m(face, res.vertices, model),
            "normal": None
            if gtn is None
            else normal_error_deg(res.posed_vertices, model.faces, res.K, gtn, gtm),
            "nme": 100 * fitbench.inner_nme(res.projected_landmarks, face["exact"]),
            "s": seconds,
        }

    if reuse is not None and "part1" in reuse:  # Part I rows of an earlier run (--reuse)
        row["part1"], row["mean face"] = reuse["part1"], reuse["mean face"]
    else:
        _part1(face, model, det, cal, args, row, record, gtn, gtm)
    if args.no_gar:
        return row
    gcfg = GARFitConfig()
    runs = [("gar", "encoder", None, gar), ("gar-encoder", "encoder", 0, gar)]
    if args.ablations:
        runs.append(("gar-mean", "mean", None, gar))
    if level is not None and level in args.variants_realism:
        runs += [(f"gar[{k}]", "encoder", None, v) for k, v in (variants or {}).items()]
    for name, start, steps, gm in runs:
        t0 = time.perf_counter()
        rg = fit_gar(face["image"], model=model, gar=gm, landmarks=det,
                     config=GARFitConfig(**{**gcfg.__dict__, "start": start}), fast=args.fast,
                     refine_steps=steps, calibration=cal, texture_size=0)  # fmt: skip
        record(name, rg, face["detect_seconds"] + time.perf_counter() - t0)
    return row


def summarize(rows: list[dict], realism: float, extra: tuple[str, ...] = ()) -> list[dict]:
    """Median per method and metric; a face the detector missed counts as +inf."""
    out = []
    n = len(rows)
    det = sum(r["detected"] for r in rows) / max(n, 1)
    for m in (*METHODS, *extra):
        if not any(m in r for r in rows):
            continue
        cell = {"realism": realism, "method": m, "n": n, "detection": det}
        for k in ("s2m", "normal", "nme", "s"):
            vals = [(r[m][k] if m in r else (None if k == "s" else math.inf)) for r in rows]
            present = [v for v in vals if v is not None]
            cell[k] = fitbench.median_with_failures(present) if present else None
        out.append(cell)
    return out


def format_table(summary: list[dict]) -> str:
    def f(x, spec):
        return "-" if x is None else ("MISS" if math.isinf(x) else format(x, spec))

    lines = [f"{'realism':>7} {'method':<12} {'n':>3} {'det':>5} {'s2m mm':>7} {'normal deg':>10} "
             f"{'NME %':>6} {'s/photo':>7}"]  # fmt: skip
    for r in summary:
        lines.append(f"{r['realism']:>7.1f} {r['method']:<12} {r['n']:>3} {100 * r['detection']:>4.0f}% "
                     f"{f(r['s2m'], '7.2f')} {f(r['normal'], '10.1f')} {f(r['nme'], '6.2f')} "
                     f"{f(r['s'], '7.1f')}")  # fmt: skip
    return "\n".join(lines)


def run(args) -> dict:
    from facelab.fit.calibration import load_calibration
    from facelab.methods.gar.train import load_gar
    from facelab.models import load
    from facelab.world import WorldConfig, WorldDataset

    torch.set_num_threads(1)
    t_start = time.time()
    model = load("ict-face")
    gar = None if args.no_gar else load_gar(args.checkpoint)
    variants = {} if args.no_gar else {k: load_gar(v) for k, v in args.variants.items()}
    if not args.variants_realism:
        args.variants_realism = [max(args.realism)]
    if args.blender:
        args.variants_realism = [*args.variants_realism, BLENDER]
    reuse = {}
    if args.reuse:
        prev = json.loads(Path(args.reuse).read_text())
        reuse = {(float(k), r["face"]): r for k, rs in prev["rows"].items() for r in rs}
    cal = load_calibration(args.detector, model.name)
    rows: dict[float, list[dict]] = {r: [] for r in args.realism}
    worlds = {lvl: WorldDataset(WorldConfig(model="ict-face", image_size=256, realism=lvl),
                                length=600, seed=7) for lvl in args.realism}  # fmt: skip
    idx = select(worlds[args.realism[0]], args.faces)
    done = 0
    for i in idx:  # face-major: every level of one face before the next face
        if args.minutes and (time.time() - t_start) / 60 > args.minutes:
            break
        for lvl in args.realism:
            s = worlds[lvl][i]
            face = {"image": s["image"]}
            det = fitbench.detect_all([face], args.detector)[0]
            row = (
                evaluate_face(
                    s,
                    model,
                    gar,
                    det,
                    cal,
                    args,
                    face["detect_seconds"],
                    reuse.get((lvl, f"world/{i}")),
                    variants,
                    lvl,
                )
                if det is not None
                else {"face": f"world/{i}", "yaw": float(s["ypr"][0]), "detected": False}
            )
            rows[lvl].append(row)
            if not args.json:
                cells = ", ".join(
                    f"{m} {v['s2m']:.2f}" for m, v in row.items() if isinstance(v, dict)
                )
                print(f"  realism {lvl} world/{i} yaw {float(s['ypr'][0]):+.0f}: {cells or 'MISS'}",
                      file=sys.stderr, flush=True)  # fmt: skip
        done += 1
        res = _result(args, rows, done, gar, t_start, variants)
        if args.out:  # written after every face: an interrupted run keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    res = _result(args, rows, done, gar, t_start, variants)
    if args.blender:  # the independent renderer (Blender Cycles; benchmarks/fit.py's report half)
        brows = []
        for face in fitbench.blender_faces(model, "report"):
            det = fitbench.detect_all([face], args.detector)[0]
            row = evaluate_face(face, model, gar, det, cal, args, face["detect_seconds"],
                                None, variants, BLENDER)  # fmt: skip
            brows.append(row)
            if not args.json:
                cells = ", ".join(
                    f"{m} {v['s2m']:.2f}" for m, v in row.items() if isinstance(v, dict)
                )
                print(f"  blender {face['name']}: {cells or 'MISS'}", file=sys.stderr, flush=True)
        extra = tuple(f"gar[{k}]" for k in variants)
        res["blender"] = {"summary": summarize(brows, BLENDER, extra), "rows": brows}
    if gar is not None and args.adherence_n:
        res["adherence"] = adherence({"gar": gar, **{f"gar[{k}]": v for k, v in variants.items()}},
                                     gar.aux, args.adherence_n)  # fmt: skip
    return res


def adherence(gars: dict, judge, n: int = 256, seed: int = 4242) -> dict:
    """Does each generator draw the geometry it is told? (module doc, **Adherence**)."""
    from facelab.methods.gar.data import GARDataConfig, _geom_chunk, _world
    from facelab.methods.gar.geometry import render_condition
    from facelab.models import load

    model = load("ict-face")
    cfg = GARDataConfig(n_geom=n, seed=seed)
    geom = _geom_chunk(_world(cfg, seed).renderer, model, 0, n, cfg)
    out = {}
    first = next(iter(gars))
    todo = [(k, v, False) for k, v in gars.items()] + [
        (f"{first} (wrong geometry)", gars[first], True)
    ]
    for name, gm, shuffled in todo:
        ecfg = gm.E.config
        with torch.no_grad():
            cond, nrm, mask, lm = render_condition(
                gm.config.condition, model, geom["identity"], geom["expression_a"],
                geom["rotation_a"], geom["translation_a"], geom["K_a"], gm.resolution, None,
                ecfg.n_identity, ecfg.n_expression,
            )  # fmt: skip
            z = torch.randn(n, gm.G.config.z_dim, generator=torch.Generator().manual_seed(seed))
            if shuffled:  # the floor: every image drawn from another face's condition
                cond = cond.roll(1, 0)
            img = gm.G(cond.float(), z, noise_mode="const")
            a = judge(img)
        m = mask.float()
        cos = (a["normals"] * nrm.float()).sum(1, keepdim=True).clamp(-1, 1)
        ang = float((torch.rad2deg(torch.acos(cos)) * m).sum() / m.sum())
        rmse = float((a["landmarks"] - lm.float()).square().sum(-1).mean().sqrt())
        out[name] = {"normal_deg": ang, "landmark_px": rmse, "n": n,
                     "condition": gm.config.condition,
                     "injection": gm.G.config.injection,
                     "steps": gm.meta.get("step"), "checkpoint": gm.meta.get("status")}  # fmt: skip
    return out


def _result(args, rows: dict, done: int, gar, t_start: float, variants: dict | None = None) -> dict:
    extra = tuple(f"gar[{k}]" for k in (variants or {}))
    summary = [c for lvl in args.realism for c in summarize(rows[lvl], lvl, extra)]
    return {
        "faces_per_level": done, "faces_planned": args.faces, "fast": args.fast,
        "checkpoint": str(args.checkpoint or "shipped cpu-32"), "gar_meta": {} if gar is None else {
            k: gar.meta.get(k) for k in ("status", "command", "seed", "wall_time_s")},
        "variants": {k: {"stem": args.variants[k], "status": v.meta.get("status"),
                         "command": v.meta.get("command"), "condition": v.config.condition,
                         "injection": v.G.config.injection}
                     for k, v in (variants or {}).items()},
        "variants_realism": args.variants_realism,
        "reused_part1_from": args.reuse,
        "load_average": os.getloadavg(), "minutes": round((time.time() - t_start) / 60, 2),
        "summary": summary, "rows": {str(k): v for k, v in rows.items()}, "paper": PAPER,
    }  # fmt: skip


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fast", action="store_true", help="FAST fits (Part I and GAR)")
    p.add_argument("--faces", type=int, default=30, help="faces per realism level (30)")
    p.add_argument("--realism", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--minutes", type=float, default=None, help="stop adding faces after this")
    p.add_argument("--detector", default="auto")
    p.add_argument("--checkpoint", default=None, help="GAR checkpoint stem (default: shipped)")
    p.add_argument("--ablations", action="store_true", help="also the mean-face start")
    p.add_argument("--no-gar", action="store_true", help="Part I and mean face rows only")
    p.add_argument(
        "--variants",
        nargs="*",
        default=[],
        metavar="NAME=STEM",
        help="extra GAR checkpoints, a row gar[NAME] each (the condition ablation)",
    )
    p.add_argument(
        "--variants-realism",
        type=float,
        nargs="*",
        default=None,
        help="levels the variants are fitted at (default: the highest --realism)",
    )
    p.add_argument(
        "--blender",
        action="store_true",
        help="also the Blender report faces (JSON key 'blender'; realism -1 there)",
    )
    p.add_argument(
        "--adherence-n",
        type=int,
        default=256,
        help="held-out geometries for the adherence table (0: skip)",
    )
    p.add_argument("--reuse", default=None, help="take Part I / mean-face rows from this JSON")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p.parse_args(argv)


def _variants(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        name, sep, stem = it.partition("=")
        if not sep or not name or not stem:
            raise SystemExit(f"--variants takes NAME=STEM, got {it!r}")
        out[name] = stem
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    args.variants = _variants(args.variants)
    res = run(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    if args.json:
        print(json.dumps(res, indent=1, default=float))
    else:
        print(format_table(res["summary"]))
        for name, ad in res.get("adherence", {}).items():
            print(
                f"adherence {name:<16} ({ad['condition']}, {ad['injection']}): normal "
                f"{ad['normal_deg']:.1f} deg, landmarks {ad['landmark_px']:.2f} px"
            )
        print(f"{res['faces_per_level']} faces per level in {res['minutes']} min; load "
              f"{res['load_average'][0]:.1f}. Paper (different data): {PAPER['aflw2000_nme_percent']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
