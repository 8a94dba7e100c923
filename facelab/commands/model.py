"""``facelab model list|info|sample`` — the 3D morphable models on the command line.

``facelab model list [--json]``: every model :func:`facelab.models.load` knows, as a list of
objects with the stable keys ``name, title, source, license, present, location, note``.

``facelab model info --model NAME [--json]`` (NAME is a model name or a model file; the
positional ``model info NAME`` still works and is deprecated): an object with the
stable keys ``name, vertices, triangles, identity_components, expression_components,
expression_kind, expression_names, albedo_components, landmarks (68 when defined), has_uv,
uv_vertices, regions, contours, units, extent, license, source``.

``facelab model sample --model NAME --seed S [--expression-scale X] [--truncation T] --out FILE``
writes one random face (``model.sample`` with a seeded ``torch.Generator``) in model space to
``FILE`` (``.obj``, ``.ply`` or ``.glb``, by suffix); with ``--json`` it prints
``{"out", "name", "seed", "vertices", "triangles", "identity", "expression"}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._util import add_command_group, add_json, add_model, check_output_file, model_arg, print_json


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

    info = load(model_arg(args, "model info")).info()
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

    from ..errors import InvalidInput
    from ..geometry.io import save_mesh
    from ..models import load

    name = model_arg(args, "model sample")
    if Path(args.out).suffix.lower() not in (".obj", ".ply", ".glb"):
        raise InvalidInput(
            f"--out {args.out}: unsupported mesh format {Path(args.out).suffix!r} "
            "(the suffix chooses it: .obj, .ply or .glb)"
        )
    check_output_file(args.out)
    model = load(name)
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
    s = add_command_group(sub, "model", "list, inspect and sample 3D morphable face models")

    q = s.add_parser("list", help="models facelab can load, where they come from, if present")
    add_json(q)
    q.set_defaults(func=_list)

    q = s.add_parser("info", help="sizes, components, landmarks, units and license of a model")
    add_model(q, default=None, positional_alias=True)
    add_json(q)
    q.set_defaults(func=_info)

    q = s.add_parser("sample", help="write a random face of a model to a mesh file")
    add_model(q, default=None, positional_alias=True)
    q.add_argument("--seed", type=int, required=True, help="random seed")
    q.add_argument("--expression-scale", type=float, default=1.0, help="expression strength")
    q.add_argument("--truncation", type=float, default=1.0, help="identity = T * clamp(z, -3, 3)")
    q.add_argument("--out", required=True, help="output mesh: .obj, .ply or .glb")
    add_json(q)
    q.set_defaults(func=_sample)
