"""The ``facelab`` command line.

Sub-commands live in :mod:`facelab.commands`: each module there defines
``register(subparsers) -> None`` and is discovered automatically, so adding a command never
touches this file. Every command that prints a result accepts ``--json``; its JSON output is
documented in the book's appendix and is stable across releases.

The rules every command follows (the book's appendix "The command line" is their reference):
exit code 0 success, 1 an error (one line ``facelab CMD: error: ...`` on stderr; with ``--json``
also the error object ``{"error": {"command", "type", "message", "exit_code"}}`` on stdout), 2 a
usage error (bad or missing options or sub-command), 130 interrupted. Arguments and output
paths are checked before any work; ``--threads``/``--device``/``--model`` mean the same
everywhere (:mod:`facelab.commands._util`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import commands
from .commands._util import error_object, print_json
from .errors import FacelabError


class _Parser(argparse.ArgumentParser):
    """argparse with the ``--json`` rule: a usage error also prints the JSON error object."""

    json_errors = False  # set by main() when --json is on the command line
    command = ""  # the sub-command words of the command line being parsed

    def error(self, message: str):  # noqa: ANN201 (argparse signature)
        if _Parser.json_errors:
            cmd = self.prog.split(" ", 1)[1] if " " in self.prog else _Parser.command
            print_json(error_object(cmd, UsageError(message), exit_code=2))
        super().error(message)


def _command_words(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """``["model", "list", "--x"]`` -> ``"model list"`` (the sub-command path in ``argv``)."""
    words, p = [], parser
    for tok in argv:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or tok not in subs[0].choices:
            if tok.startswith("-"):
                continue
            break
        words.append(tok)
        p = subs[0].choices[tok]
    return " ".join(words)


class UsageError(Exception):
    """A bad command line (exit code 2); its name is the ``type`` of the JSON error object."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every discovered sub-command registered."""
    from . import __version__

    parser = _Parser(
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
    argv = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_errors = "--json" in argv
    parser = build_parser()
    _Parser.command = _command_words(parser, argv)
    try:
        args = parser.parse_args(argv)
    finally:
        _Parser.json_errors = False
    command = " ".join(
        v for k, v in vars(args).items() if k == "command" or k.endswith("_command") if v
    )
    if not getattr(args, "func", None):  # a command group without its sub-command
        if not command:
            parser.print_help(sys.stderr)
        msg = f"choose a sub-command (facelab {command} --help lists them)".replace("  ", " ")
        print(f"facelab{' ' + command if command else ''}: error: {msg}", file=sys.stderr)
        if "--json" in argv:
            print_json(error_object(command, UsageError(msg), exit_code=2))
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `facelab ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (FacelabError, OSError) as e:
        # OSError: a file that vanished or a disk that filled up mid-way — one line, no traceback
        if isinstance(e, FacelabError) or not e.strerror:
            msg = str(e)
        else:
            msg = e.strerror + (f": {e.filename}" if e.filename else "")
        print(f"facelab {command}: error: {msg.strip()}", file=sys.stderr)
        if getattr(args, "json", False):
            print_json(error_object(command, e))
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
