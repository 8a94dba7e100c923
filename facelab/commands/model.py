"""``facelab model list|info|sample`` — the 3D morphable models on the command line.

``facelab model list [--json]``: every model :func:`facelab.models.load` knows, as a list of
objects with the stable keys ``name, title, source, license, present, location, note``.

``facelab model info NAME [--json]`` (NAME is a model name or a model file): an object with the
stable keys ``name, vertices, triangles, identity_components, expression_components,
expression_kind, expression_names, albedo_components, landmarks (68 when defined), has_uv,
uv_vertices, regions, contours, units, extent, license, source``.

``facelab model sample NAME --seed S [--expression-scale X] [--truncation T] --out FILE``
writes one random face (``model.sample`` with a seeded ``torch.Generator``) in model space to
``FILE`` (``.obj``, ``.ply`` or ``.glb``, by suffix); with ``--json`` it prints
``{"out", "name", "seed", "vertices", "triangles", "identity", "expression"}``.
"""

from __future__ import annotations

import argparse

from ._util import print_json


def _list(args: argparse.Namespace) -> int:
    from ..models import available

    rows = available()
    if args.json:
        print_json(rows)
        return 0
    print(f"{'model':<16} {'present':<8} {'license':<40} source")
    for r in rows:
        lic = r["license"] if len(r["license"]) <= 40 else r["license"][:37] + "..."
        extra = f"  ({r['note']})" if r["note"] else ""
        print(
            f"{r['name']:<16} {'yes' if r['present'] else 'no':<8} {lic:<40} {r['source']}{extra}"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..models import load

    info = load(args.name).info()
    if args.json:
        print_json(info)
        return 0
    for k, v in info.items():
        if k == "expression_names":
            v = ", ".join(v) if v else "-"
        print(f"{k:<22} {v}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from ..geometry.io import save_mesh
    from ..models import load

    model = load(args.name)
    gen = torch.Generator().manual_seed(args.seed)
    params = model.sample(
        1, generator=gen, truncation=args.truncation, expression_scale=args.expression_scale
    )
    verts = model.vertices(params)[0]
    save_mesh(args.out, model.mesh(verts.detach()))
    if args.json:
        print_json(
            {
                "out": str(args.out),
                "name": model.name,
                "seed": args.seed,
                "vertices": model.n_vertices,
                "triangles": model.n_faces,
                "identity": params.identity[0].tolist(),
                "expression": params.expression[0].tolist(),
            }
        )
    else:
        print(f"wrote {args.out} ({model.name}, seed {args.seed}, {model.n_vertices} vertices)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="list, inspect and sample 3D morphable face models")
    s = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    q = s.add_parser("list", help="models facelab can load, where they come from, if present")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=_list)

    q = s.add_parser("info", help="sizes, components, landmarks, units and license of a model")
    q.add_argument("name", help="model name (see `facelab model list`) or model file")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=_info)

    q = s.add_parser("sample", help="write a random face of a model to a mesh file")
    q.add_argument("name", help="model name (see `facelab model list`) or model file")
    q.add_argument("--seed", type=int, required=True, help="random seed")
    q.add_argument("--expression-scale", type=float, default=1.0, help="expression strength")
    q.add_argument("--truncation", type=float, default=1.0, help="identity = T * clamp(z, -3, 3)")
    q.add_argument("--out", required=True, help="output mesh: .obj, .ply or .glb")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=_sample)
