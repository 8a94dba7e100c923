"""Measure a detector's per-landmark offset and spread against the model (facelab.fit.calibration).

    python scripts/calibrate_detector.py --detector auto --n 60     # writes facelab/assets/...

Runs the real detector on :mod:`facelab.world` images (realism 1, seed 101: not a seed the
benchmarks or the tuning use) and compares its 68 points with the exact projections of the
model's landmark vertices. Faces the detector misses are skipped (they are counted).
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv=None) -> int:
    from facelab.fit.calibration import calibration_path, measure_calibration
    from facelab.models import load
    from facelab.vision import get_detector, select_faces
    from facelab.world import WorldConfig, WorldDataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--model", default="ict-face")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load(args.model)
    ds = WorldDataset(WorldConfig(model=args.model, image_size=256, realism=1.0),
                      length=args.n, seed=args.seed, model=model)  # fmt: skip
    det = get_detector(args.detector)
    D, E, Y = [], [], []
    miss = 0
    for i in range(args.n):
        s = ds[i]
        faces = det.detect(s["image"])
        if not faces:
            miss += 1
            continue
        D.append(select_faces(faces)[0].landmarks.double())
        E.append(s["landmarks2d"].double())
        Y.append(float(s["ypr"][0]))
    cal = measure_calibration(torch.stack(D), torch.stack(E), torch.tensor(Y), args.detector,
                              args.model)  # fmt: skip
    cal.note = (
        f"facelab.world realism 1, seed {args.seed}, 256 px, {args.n} faces, {miss} missed; "
        "scripts/calibrate_detector.py"
    )
    out = args.out or calibration_path(args.detector, args.model)
    cal.save(out)
    w = cal.weights()
    print(f"{len(D)} faces ({miss} missed) -> {out}")
    groups = {"jaw": range(17), "brows": range(17, 27), "nose": range(27, 36),
              "eyes": range(36, 48), "mouth": range(48, 68)}  # fmt: skip
    print("spread (x face size): " + ", ".join(
        f"{k} {float(cal.spread[list(r)].mean()):.3f}" for k, r in groups.items()))  # fmt: skip
    off = float(cal.offset[17:].norm(dim=-1).mean())
    print(
        f"offset |mean| inner {off:.4f}; weights min {float(w.min()):.2f} max {float(w.max()):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
