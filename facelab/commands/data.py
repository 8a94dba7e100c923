"""``facelab data list|fetch|verify|path`` — the asset registry on the command line.

``facelab data list --json`` prints a list of objects with the stable keys::

    name, title, license, redistributable, source, size_bytes, files,
    state ("present" | "partial" | "missing" | "corrupt"), location, missing, corrupt, verified

``facelab data fetch NAME [--dest DIR] [--force]`` downloads into the cache (or DIR) with a
progress bar and verifies sha256; offline it exits with code 1 and says what to download.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import data
from ._util import human_size, print_json


def _list(args: argparse.Namespace) -> int:
    statuses = [data.status(name, verify=args.verify) for name in sorted(data.registry())]
    if args.json:
        print_json([s.to_json() for s in statuses])
        return 0
    print(f"data directories searched: {', '.join(str(d) for d in data.data_dirs())}")
    print(f"{'asset':<13} {'state':<8} {'size':>9}  {'license':<30} location")
    for s in statuses:
        lic = s.asset.license if len(s.asset.license) <= 30 else s.asset.license[:27] + "..."
        loc = str(s.location) if s.location else f"-> facelab data fetch {s.asset.name}"
        print(f"{s.asset.name:<13} {s.state:<8} {human_size(s.asset.size):>9}  {lic:<30} {loc}")
    return 0


# assets that a model loader converts into a compact cache (one .npz) right after download
_MODEL_CACHE = {"ict-facekit": "ict"}


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        root = data.fetch(name, dest=args.dest, force=args.force, progress=not args.quiet)
        print(f"{name}: ok ({root})")
        if name in _MODEL_CACHE and not args.no_cache:
            from .. import models

            model = models.load(_MODEL_CACHE[name])
            print(f"{name}: compact model cache built ({model.mean.shape[0]} vertices)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    for name in args.names or sorted(data.registry()):
        data.verify(name)
        print(f"{name}: all files present, sha256 ok")
    return 0


def _import(args: argparse.Namespace) -> int:
    out = data.copy_into(args.name, args.folder, args.dest or data.cache_dir())
    print(f"{args.name}: copied and verified into {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, download and verify face models and weights")
    s = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    q = s.add_parser("list", help="each asset, its license and whether it is present")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--verify", action="store_true", help="also check every sha256 (slower)")
    q.set_defaults(func=_list)

    q = s.add_parser("fetch", help="download assets (with checksums) into the cache")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.add_argument("--dest", type=Path, help="data directory to download into (default: cache)")
    q.add_argument("--force", action="store_true", help="download even if present")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--no-cache", action="store_true", help="do not build the compact model cache")
    q.set_defaults(func=_fetch)

    q = s.add_parser("verify", help="check that assets are complete and intact")
    q.add_argument("names", nargs="*", metavar="NAME")
    q.set_defaults(func=_verify)

    q = s.add_parser("import", help="copy files you downloaded by hand into the cache")
    q.add_argument("name", metavar="NAME")
    q.add_argument("folder", type=Path)
    q.add_argument("--dest", type=Path)
    q.set_defaults(func=_import)
