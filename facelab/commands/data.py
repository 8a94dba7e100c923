"""``facelab data list|fetch|verify|path`` — the asset registry on the command line.

``facelab data list --json`` prints a list of objects with the stable keys::

    name, title, license, redistributable, source, size_bytes, files,
    state ("present" | "partial" | "missing" | "corrupt"), location, missing, corrupt, verified

``facelab data fetch NAME [--dest DIR] [--force]`` downloads into the cache (or DIR) with a
progress bar and verifies sha256; offline it exits with code 1 and says what to download.
With ``--json`` it prints ``[{"name", "location", "model_cache"}]`` (``model_cache``: vertex
count of the compact model cache built, or null).

``facelab data verify [NAME ...] [--json]`` checks every asset given (default: all) and goes
on after a failure; ``--json`` prints ``[{"name", "ok", "error"}]`` (``error``: null or
``{"type", "message"}``); exit code 1 if any failed.

``facelab data import NAME FOLDER [--dest DIR] [--json]`` copies files downloaded by hand and
verifies them; ``--json`` prints ``{"name", "location"}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import data
from ..errors import FacelabError
from ._util import add_command_group, add_json, check_output_dir, human_size, print_json


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


def _known(names: list[str]) -> None:
    """Every name is a registered asset (checked before any download starts)."""
    from ..errors import AssetMissing

    reg = data.registry()
    for n in names:
        if n not in reg:
            raise AssetMissing(f"unknown asset {n!r}; known assets: {', '.join(sorted(reg))}")


def _fetch(args: argparse.Namespace) -> int:
    _known(args.names)
    check_output_dir(args.dest, "--dest")
    rows = []
    for name in args.names:
        root = data.fetch(name, dest=args.dest, force=args.force, progress=not args.quiet)
        row = {"name": name, "location": str(root), "model_cache": None}
        if not args.json:
            print(f"{name}: ok ({root})")
        if name in _MODEL_CACHE and not args.no_cache:
            from .. import models

            model = models.load(_MODEL_CACHE[name])
            row["model_cache"] = int(model.mean.shape[0])
            if not args.json:
                print(f"{name}: compact model cache built ({model.mean.shape[0]} vertices)")
        rows.append(row)
    if args.json:
        print_json(rows)
    return 0


def _verify(args: argparse.Namespace) -> int:
    names = args.names or sorted(data.registry())
    _known(names)
    rows = []
    for name in names:
        try:
            data.verify(name)
            rows.append({"name": name, "ok": True, "error": None})
            if not args.json:
                print(f"{name}: all files present, sha256 ok")
        except FacelabError as e:
            rows.append(
                {"name": name, "ok": False, "error": {"type": type(e).__name__, "message": str(e)}}
            )
            print(f"facelab data verify: error: {name}: {e}", file=sys.stderr)
    if args.json:
        print_json(rows)
    return 0 if all(r["ok"] for r in rows) else 1


def _import(args: argparse.Namespace) -> int:
    _known([args.name])
    check_output_dir(args.dest, "--dest")
    out = data.copy_into(args.name, args.folder, args.dest or data.cache_dir())
    if args.json:
        print_json({"name": args.name, "location": str(out)})
    else:
        print(f"{args.name}: copied and verified into {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = add_command_group(sub, "data", "list, download and verify face models and weights")

    q = s.add_parser("list", help="each asset, its license and whether it is present")
    add_json(q)
    q.add_argument("--verify", action="store_true", help="also check every sha256 (slower)")
    q.set_defaults(func=_list)

    q = s.add_parser("fetch", help="download assets (with checksums) into the cache")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.add_argument("--dest", type=Path, help="data directory to download into (default: cache)")
    q.add_argument("--force", action="store_true", help="download even if present")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--no-cache", action="store_true", help="do not build the compact model cache")
    add_json(q)
    q.set_defaults(func=_fetch)

    q = s.add_parser("verify", help="check that assets are complete and intact")
    q.add_argument("names", nargs="*", metavar="NAME")
    add_json(q)
    q.set_defaults(func=_verify)

    q = s.add_parser("import", help="copy files you downloaded by hand into the cache")
    q.add_argument("name", metavar="NAME")
    q.add_argument("folder", type=Path)
    q.add_argument("--dest", type=Path, help="data directory to copy into (default: cache)")
    add_json(q)
    q.set_defaults(func=_import)
