"""``facelab world sample|cache`` — the synthetic world on the command line.

``facelab world sample --seed S --size N --out DIR [--views K] [--index I] [--count C]
[--realism R] [--model NAME] [--json]`` renders sample ``I`` (default 0) of the world with seed
``S`` at ``N x N`` pixels and writes into ``DIR`` the image (``image.png``), ``gt.json``
(parameters, camera, 2D/3D landmarks with visibility, lights; schema in
:mod:`facelab.world.io`) and ``depth.png`` (16-bit), ``normals.png``, ``mask_face.png``,
``mask_skin.png`` and the UV albedo texture ``albedo.png``. ``--views K`` (K > 1) renders the same person from K cameras: files get a
``_k`` suffix and ``gt.json`` has one entry per view. ``--count C`` writes samples
``I .. I+C-1`` into ``DIR/000000/``, ``DIR/000001/``, ...

With ``--json`` it prints ``{"out", "seed", "size", "views", "realism", "model", "samples":
[{"index", "dir", "gt"}]}`` (stable keys).

``facelab world cache --seed S --size N --length L --out DIR [--realism R] [--shard-size M]
[--views K] [--json]`` renders ``L`` samples once into ``.npz`` shards + ``index.json``
(read them with :class:`facelab.world.ShardDataset`); ``--json`` prints ``{"out", "length",
"shards", "seconds", "images_per_second"}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._util import (
    add_command_group,
    add_json,
    add_model,
    add_threads,
    check_at_least,
    check_output_dir,
    print_json,
    setup_compute,
)


def _config(args: argparse.Namespace):
    from ..world import WorldConfig

    return WorldConfig(model=args.model, image_size=args.size, realism=args.realism)


def _sample(args: argparse.Namespace) -> int:
    from ..world import WorldDataset, save_sample

    check_at_least(args.count, "--count", 1)
    check_at_least(args.views, "--views", 1)
    check_at_least(args.index, "--index", 0)
    check_output_dir(args.out)
    setup_compute(args)
    from ..models import load

    cfg = _config(args)
    model = load(args.model)  # an unknown or missing model fails here, before any rendering
    ds = WorldDataset(
        cfg,
        length=args.index + args.count,
        seed=args.seed,
        views=args.views,
        include_albedo=True,
        model=model,
    )
    out = Path(args.out)
    rows = []
    for k in range(args.count):
        i = args.index + k
        d = out if args.count == 1 else out / f"{i:06d}"
        sample = ds.multiview(i, args.views) if args.views > 1 else ds[i]
        gt = save_sample(sample, d, cfg, args.seed)
        rows.append({"index": i, "dir": str(d), "gt": str(gt)})
        if not args.json:
            print(f"wrote {gt}")
    if args.json:
        print_json(
            {
                "out": str(out),
                "seed": args.seed,
                "size": args.size,
                "views": args.views,
                "realism": args.realism,
                "model": model.name,
                "samples": rows,
            }
        )
    return 0


def _cache(args: argparse.Namespace) -> int:
    import json
    import time

    from ..world import WorldDataset, write_cache

    check_at_least(args.length, "--length", 1)
    check_at_least(args.views, "--views", 1)
    check_at_least(args.shard_size, "--shard-size", 1)
    check_output_dir(args.out)
    setup_compute(args)
    ds = WorldDataset(_config(args), length=args.length, seed=args.seed, views=args.views)
    t0 = time.perf_counter()
    index = write_cache(ds, args.out, shard_size=args.shard_size, progress=not args.json)
    dt = time.perf_counter() - t0
    shards = json.loads(Path(index).read_text())["shards"]
    res = {
        "out": str(args.out),
        "length": args.length,
        "shards": len(shards),
        "seconds": round(dt, 3),
        "images_per_second": round(args.length * args.views / dt, 2) if dt > 0 else None,
    }
    if args.json:
        print_json(res)
    else:
        print(f"wrote {res['shards']} shards of {args.length} samples to {args.out} in {dt:.1f} s")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the world's seed")
    p.add_argument("--size", type=int, default=128, help="image size N (N x N pixels)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--realism", type=float, default=1.0, help="domain-gap knob in [0, 1]")
    add_model(p, default="builtin")
    p.add_argument("--views", type=int, default=1, help="cameras per sample (multi-view)")
    add_threads(p)
    add_json(p)


def register(subparsers) -> None:
    sub = add_command_group(subparsers, "world", "render synthetic faces with exact ground truth")
    s = sub.add_parser("sample", help="render samples to PNGs + gt.json")
    _common(s)
    s.add_argument("--index", type=int, default=0, help="first sample index")
    s.add_argument("--count", type=int, default=1, help="number of samples")
    s.set_defaults(func=_sample)
    c = sub.add_parser("cache", help="render a data set once into npz shards")
    _common(c)
    c.add_argument("--length", type=int, required=True, help="number of samples")
    c.add_argument("--shard-size", type=int, default=256, help="samples per shard")
    c.set_defaults(func=_cache)
