"""Measure a detector's per-landmark offset and spread against the model (facelab.fit.calibration).

    python scripts/calibrate_detector.py --detector auto --n 90     # writes facelab/assets/...
    python scripts/calibrate_detector.py --embedding --eval-seed 303 --out /tmp/c.json

Runs the real detector on :mod:`facelab.world` images (realism 1, seed 101: not a seed the
benchmarks or the tuning use) and compares its 68 points with the exact projections of the
model's landmark vertices. Faces the detector misses are skipped (they are counted).
``--embedding`` also fits the detector's 3D landmark embedding (a surface point per inner
landmark, :func:`facelab.fit.calibration.fit_embedding`) and the spreads after it;
``--eval-seed`` prints the inner-landmark residual by yaw bin on held-out faces. The
detections and ground truth of each seed are cached in ``~/.cache/facelab/calib/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

#: detections and ground truth of a calibration run (the detector runs once per seed)
CACHE_DIR = Path.home() / ".cache" / "facelab" / "calib"


def collect(model, detector: str, seed: int, n: int, size: int = 256, realism: float = 1.0,
            cache_dir: Path = CACHE_DIR) -> dict:  # fmt: skip
    """Detector points and exact ground truth of the first ``n`` faces of the world ``seed``.

    Returns (and caches in ``cache_dir``) a dict of ``detected (N, 68, 2)`` (NaN = missed),
    ``exact (N, 68, 2)`` (the world's ``landmarks2d``), ``vertices (N, V, 3)`` camera-space
    ground truth (the world projects ``vertices[:, model.landmarks]`` with ``K`` to get
    ``exact``), ``K (N, 3, 3)`` and ``yaw (N,)`` degrees.
    """
    from facelab.vision import get_detector, select_faces
    from facelab.world import WorldConfig, WorldDataset

    path = Path(cache_dir) / f"{detector}_{model.name}_r{realism:g}_{size}px_seed{seed}_n{n}.pt"
    if path.is_file():
        return torch.load(path)
    ds = WorldDataset(WorldConfig(model=model.name, image_size=size, realism=realism),
                      length=n, seed=seed, model=model)  # fmt: skip
    det = get_detector(detector)
    D, E, Vs, Ks, Y = [], [], [], [], []
    for i in range(n):
        s = ds[i]
        if i % 10 == 0:
            print(f"  seed {seed}: face {i}/{n}", file=sys.stderr, flush=True)
        faces = det.detect(s["image"])
        d = select_faces(faces)[0].landmarks.double() if faces else torch.full((68, 2), torch.nan)
        D.append(d.double())
        E.append(s["landmarks2d"].double())
        Vs.append(s["vertices"].float())
        Ks.append(s["K"].double())
        Y.append(float(s["ypr"][0]))
    out = {"detected": torch.stack(D), "exact": torch.stack(E), "vertices": torch.stack(Vs),
           "K": torch.stack(Ks), "yaw": torch.tensor(Y, dtype=torch.float64), "seed": seed,
           "detector": detector, "model": model.name}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def face_sizes(points2d: torch.Tensor) -> torch.Tensor:
    """``(N, 68, 2)`` -> ``(N,)`` sqrt of the landmark box area (the calibration's unit)."""
    span = points2d.amax(1) - points2d.amin(1)
    return (span[:, 0] * span[:, 1]).sqrt()


GROUPS = {"jaw": range(17), "brows": range(17, 27), "nose": range(27, 36),
          "eyes": range(36, 48), "mouth": range(48, 68)}  # fmt: skip
YAW_BINS = ((0.0, 20.0), (20.0, 45.0), (45.0, 70.0))


def residual_table(data: dict, cal, model) -> list[dict]:
    """Inner-landmark reprojection residual (x face size) by yaw bin of the detector's points
    against ground truth: ``none`` (landmark vertices), ``offsets`` (the calibration's 2D
    offsets, as a fit without the embedding sees them) and ``embedding`` (its 3D points).

    Per face the mean over the 51 inner points; the table gives the median over the
    detected faces of each bin (``n`` faces, ``det`` detected).
    """
    from facelab.fit.calibration import LandmarkEmbedding, embedding_residuals

    d, V, K, yaw = data["detected"], data["vertices"], data["K"], data["yaw"]
    sizes = face_sizes(data["exact"])
    plain = LandmarkEmbedding.from_vertices(model.landmarks.cpu())
    r_none = embedding_residuals(d, V, K, plain, sizes)
    ok = torch.isfinite(d).all(-1).all(-1)
    dc = d.clone()
    dc[ok] = cal.correct(d[ok])
    r_off = embedding_residuals(dc, V, K, plain, sizes)
    r_emb = (
        embedding_residuals(d, V, K, cal.embedding, sizes) if cal.embedding is not None else None
    )
    rows = []
    for lo, hi in YAW_BINS:
        b = (yaw.abs() >= lo) & (yaw.abs() < hi)
        m = b & ok
        row = {"bin": f"{lo:.0f}-{hi:.0f}", "n": int(b.sum()), "det": int(m.sum())}
        for name, r in (("none", r_none), ("offsets", r_off), ("embedding", r_emb)):
            if r is not None and int(m.sum()):
                row[name] = float(r[m][:, 17:].mean(-1).median())
                for g in ("brows", "nose", "eyes", "mouth"):
                    row[f"{name}_{g}"] = float(r[m][:, list(GROUPS[g])].mean(-1).median())
        rows.append(row)
    return rows


def print_residuals(rows: list[dict], title: str) -> None:
    print(title)
    print(f"  {'|yaw|':7s} {'n':>3s} {'det':>4s} {'none':>7s} {'offsets':>8s} {'embedding':>10s}")
    for r in rows:
        cells = [f"{r[k]:.4f}" if k in r else "-" for k in ("none", "offsets", "embedding")]
        print(f"  {r['bin']:7s} {r['n']:3d} {r['det']:4d} {cells[0]:>7s} {cells[1]:>8s} "
              f"{cells[2]:>10s}")  # fmt: skip


def main(argv=None) -> int:
    from facelab.fit.calibration import (
        calibration_path,
        fit_embedding,
        load_calibration,
        measure_calibration,
        measure_embedding_spread,
    )
    from facelab.models import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--model", default="ict-face")
    ap.add_argument("--n", type=int, default=90)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--out", default=None)
    ap.add_argument("--embedding", action="store_true",
                    help="also fit the detector's 3D landmark embedding")  # fmt: skip
    ap.add_argument("--radius-mm", type=float, default=15.0,
                    help="embedding search radius around each landmark vertex")  # fmt: skip
    ap.add_argument("--eval-seed", type=int, default=None,
                    help="held-out world seed: print the residual table before/after")  # fmt: skip
    ap.add_argument("--eval-n", type=int, default=40)
    ap.add_argument("--cache-dir", default=str(CACHE_DIR),
                    help="where detections are cached (a new folder re-runs the detector)")  # fmt: skip
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load(args.model)
    data = collect(model, args.detector, args.seed, args.n, cache_dir=Path(args.cache_dir))
    ok = torch.isfinite(data["detected"]).all(-1).all(-1)
    miss = int((~ok).sum())
    cal = measure_calibration(data["detected"][ok], data["exact"][ok], data["yaw"][ok],
                              args.detector, args.model)  # fmt: skip
    cal.note = (
        f"facelab.world realism 1, seed {args.seed}, 256 px, {args.n} faces, {miss} missed; "
        "scripts/calibrate_detector.py"
    )
    if args.embedding:
        to_mm = {"mm": 1.0, "cm": 10.0, "m": 1000.0}.get(getattr(model, "units", "cm"), 10.0)
        emb = fit_embedding(data["detected"], data["vertices"], data["K"], data["yaw"],
                            model.faces, model.mean, model.landmarks,
                            radius=args.radius_mm / to_mm)  # fmt: skip
        spread = measure_embedding_spread(data["detected"], data["vertices"], data["K"],
                                          data["yaw"], emb,
                                          sizes=face_sizes(data["exact"]))  # fmt: skip
        spread[:17] = cal.spread[:17]  # the jaw slides on the contour: its measured spread
        cal.embedding, cal.embedding_spread = emb, spread
        moved = emb.points(model.mean.double()[None])[0] - model.mean.double()[model.landmarks]
        mm = moved.norm(dim=-1)[17:] * to_mm
        cal.note += (f"; 3D embedding (inner points, Huber, |yaw| < 45, radius "
                     f"{args.radius_mm:g} mm): moved median {float(mm.median()):.1f} mm, "
                     f"max {float(mm.max()):.1f} mm")  # fmt: skip
    out = args.out or calibration_path(args.detector, args.model)
    cal.save(out)
    w = cal.fit_weights()
    print(f"{int(ok.sum())} faces ({miss} missed) -> {out}")
    print("spread (x face size): " + ", ".join(
        f"{k} {float(cal.spread[list(r)].mean()):.3f}" for k, r in GROUPS.items()))  # fmt: skip
    if cal.embedding_spread is not None:
        print("after the embedding: " + ", ".join(
            f"{k} {float(cal.embedding_spread[list(r)].mean()):.3f}"
            for k, r in GROUPS.items()))  # fmt: skip
        print(cal.note)
    off = float(cal.offset[17:].norm(dim=-1).mean())
    print(
        f"offset |mean| inner {off:.4f}; weights min {float(w.min()):.2f} max {float(w.max()):.2f}"
    )
    print_residuals(residual_table(data, cal, model), f"calibration faces (seed {args.seed})")
    if args.eval_seed is not None:
        held = collect(model, args.detector, args.eval_seed, args.eval_n,
                       cache_dir=Path(args.cache_dir))  # fmt: skip
        print_residuals(residual_table(held, cal, model),
                        f"held-out faces (seed {args.eval_seed})")  # fmt: skip
        old = load_calibration(args.detector, args.model)
        if old is not None and old.embedding is None:
            print_residuals(residual_table(held, old, model),
                            f"held-out faces (seed {args.eval_seed}), shipped calibration")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
