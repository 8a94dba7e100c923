"""``facelab landmarks PHOTO [--json] [--out overlay.png]`` -- faces, boxes, scores, 68 points.

Detects every face (dlib HOG + 68-point shape predictor by default; runs offline) and prints
them left to right. Coordinates are full-resolution pixels with pixel centres at +0.5
(iBUG 68-point order). No face found is an error (exit code 1; with ``--json`` the error
object of every command, type ``NoFaceFound``).

``--json`` output (stable keys)::

    {
      "image":    "PHOTO as given",
      "width":    int, "height": int,          # upright (EXIF-corrected) size
      "detector": "dlib" | "fan" | "fan3d",
      "faces": [
        {"box": [x0, y0, x1, y1], "score": float, "detector": str,
         "landmarks": [[x, y], ... 68 ...]}   # + "landmarks_3d" for fan3d
      ],
      "overlay":  "overlay.png" or null
    }
"""

from __future__ import annotations

import argparse
import time

from ._util import add_json, add_threads, check_output_file, print_json, setup_compute


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "landmarks",
        help="detect faces and their 68 landmarks in a photo",
        description="Detect faces (boxes, scores) and 68 iBUG landmarks in PHOTO.",
    )
    p.add_argument("photo", metavar="PHOTO", help="image file (JPEG, PNG, ...)")
    add_json(p)
    p.add_argument("--out", metavar="OVERLAY", help="save the photo with boxes and landmarks drawn")
    p.add_argument(
        "--detector",
        default="dlib",
        choices=["dlib", "fan", "fan3d"],
        help="backend (default: dlib, offline)",
    )
    p.add_argument(
        "--max-side",
        type=int,
        default=1024,
        help="detect on a copy at most this large (default 1024)",
    )
    add_threads(p)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..errors import InvalidInput, NoFaceFound
    from ..vision import load_image, select_faces
    from ..vision.detect import DlibConfig, get_detector

    if args.max_side < 64:
        raise InvalidInput(f"--max-side must be >= 64 pixels, got {args.max_side}")
    check_output_file(args.out)
    setup_compute(args)
    img = load_image(args.photo)
    if args.detector == "dlib":
        det = get_detector("dlib", config=DlibConfig(max_side=args.max_side))
    else:
        det = get_detector(args.detector)
    t0 = time.perf_counter()
    faces = det.detect(img)
    dt = time.perf_counter() - t0
    faces = select_faces(faces, "all") if faces else []
    if not faces:
        raise NoFaceFound(f"{args.photo}: no face found ({args.detector} detector)")
    overlay = None
    if args.out:
        from ..vision.overlay import save_overlay

        overlay = str(save_overlay(img, faces, args.out))
    if args.json:
        print_json(
            {
                "image": args.photo,
                "width": img.width,
                "height": img.height,
                "detector": args.detector,
                "faces": [f.to_json() for f in faces],
                "overlay": overlay,
            }
        )
    else:
        print(
            f"{args.photo}: {img.width}x{img.height}, {len(faces)} face(s) [{args.detector}, {dt * 1000:.0f} ms]"
        )
        for i, f in enumerate(faces):
            x0, y0, x1, y1 = (float(v) for v in f.box)
            print(f"face {i}: box [{x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f}]  score {f.score:.3f}")
            pts = f.landmarks.tolist()
            for k in range(0, 68, 4):
                print(
                    "   "
                    + "  ".join(
                        f"{j:2d}:({x:7.1f},{y:7.1f})"
                        for j, (x, y) in enumerate(pts[k : k + 4], start=k)
                    )
                )
        if overlay:
            print(f"overlay saved to {overlay}")
    return 0
