"""The ``facelab`` command line.

Sub-commands live in :mod:`facelab.commands`: each module there defines
``register(subparsers) -> None`` and is discovered automatically, so adding a command never
touches this file. Every command that prints a result accepts ``--json``; its JSON output is
documented in the book's appendix and is stable across releases.

Exit codes: 0 success, 1 a facelab error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import commands
from .errors import FacelabError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered sub-command registered."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="facelab",
        description="facelab: monocular 3D face reconstruction, the toolkit of the book.",
    )
    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelab`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FacelabError as e:
        print(f"facelab {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
