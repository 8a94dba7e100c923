"""``facelab compare DIR_A DIR_B --out FILE.html`` -- two fits side by side, on one page.

``DIR_A`` and ``DIR_B`` are folders written by ``facelab fit --out`` (any method that returns a
``FitResult``: ``mesh.obj``, ``mesh.png``, ``params.json``). The page (self-contained, opens
offline) shows both shapes grey-shaded and textured from the same five yaw angles at the same
scale, a table of their landmark error, pose and time, and the per-vertex distance between
them (millimetres, model space, no alignment) as a heat map on the mesh, from the same views
and in a rotatable 3D view (:func:`facelab.viz.report.compare_report_html`).

``--json`` output (stable keys)::

    {"out": "FILE.html", "a": "DIR_A", "b": "DIR_B", "labels": [str, str],
     "same_topology": bool,            # corresponding vertices (else nearest-vertex distance)
     "distance_mm": {"mean", "median", "p95", "max"}}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._util import check_output_file, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare two fits (e.g. two methods): shapes from the same views, distance heat map",
        description=(
            "Write one HTML page comparing the fits in DIR_A and DIR_B (folders written by "
            "`facelab fit --out`): both shapes from the same views and their per-vertex "
            "distance as a heat map on the mesh."
        ),
    )
    p.add_argument("dir_a", metavar="DIR_A", help="first fit folder (mesh.obj, params.json)")
    p.add_argument("dir_b", metavar="DIR_B", help="second fit folder")
    p.add_argument("--out", required=True, metavar="FILE.html", help="the page to write")
    p.add_argument(
        "--labels", nargs=2, metavar=("A", "B"), default=None,
        help="names shown on the page (default: the folder names)",
    )  # fmt: skip
    p.add_argument(
        "--vmax", type=float, default=None,
        help="distance (mm) at the top of the colour scale (default: the 95th percentile)",
    )  # fmt: skip
    p.add_argument("--size", type=int, default=256, help="pixel size of each view (256)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from ..errors import InvalidInput
    from ..viz.report import save_compare_report

    if args.size < 32:
        raise InvalidInput(f"--size must be >= 32 pixels, got {args.size}")
    if args.vmax is not None and not args.vmax > 0:
        raise InvalidInput(f"--vmax must be > 0 (millimetres), got {args.vmax}")
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InvalidInput(f"--out must be an .html file, got {out}")
    check_output_file(out)  # an unwritable page fails before the renders (CLI rule 5)
    stats = save_compare_report(
        args.dir_a, args.dir_b, out, args.labels, view_size=args.size, vmax_mm=args.vmax
    )
    d = {k: stats[f"{k}_mm"] for k in ("mean", "median", "p95", "max")}
    if args.json:
        print_json(
            {
                "out": str(out),
                "a": args.dir_a,
                "b": args.dir_b,
                "labels": stats["labels"],
                "same_topology": stats["same_topology"],
                "distance_mm": {k: round(v, 4) for k, v in d.items()},
            }
        )
        return 0
    a, b = stats["labels"]
    how = "corresponding vertices" if stats["same_topology"] else "nearest vertices"
    print(
        f"{a} vs {b} ({how}): distance mean {d['mean']:.2f} mm, median {d['median']:.2f}, "
        f"95% {d['p95']:.2f}, max {d['max']:.2f} -> {out}"
    )
    return 0
