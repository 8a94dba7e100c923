"""Helpers shared by CLI sub-commands (internal)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented, key-sorted JSON (the stable ``--json`` format)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def human_size(n: int) -> str:
    """``1536`` -> ``"1.5 KB"``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


# ---------------------------------------------------------------------------------------------
# The rules every command follows (written down in the book's appendix "The command line").

DEVICES = ("cpu", "cuda", "mps", "auto")
DEFAULT_THREADS = 1


def error_object(command: str, exc: BaseException, exit_code: int = 1) -> dict:
    """The ``--json`` error object: ``{"error": {"command", "type", "message", "exit_code"}}``."""
    return {
        "error": {
            "command": command,
            "type": type(exc).__name__,
            "message": str(exc),
            "exit_code": exit_code,
        }
    }


def add_json(p: Any, help: str = "print machine-readable JSON (stable keys)") -> None:
    """``--json``: the result (or the error object) as JSON on stdout."""
    p.add_argument("--json", action="store_true", help=help)


def add_command_group(sub: Any, name: str, help: str) -> Any:
    """Register ``facelab NAME ACTION ...`` and return its sub-parsers: the one rule for
    command groups (a missing ACTION is a usage error, exit 2; the words of the command in
    error objects come from ``NAME_command``)."""
    p = sub.add_parser(name, help=help)
    return p.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def add_threads(p: Any) -> None:
    """``--threads N``: torch intra-op threads; 1 by default, 0 = torch's default."""
    p.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help=f"torch threads (default {DEFAULT_THREADS}; 0: torch's default, one per core)",
    )


def add_device(p: Any) -> None:
    """``--device cpu|cuda|mps|auto`` (default cpu; auto = cuda when available, else cpu)."""
    p.add_argument(
        "--device",
        default="cpu",
        choices=DEVICES,
        help="where the model computes (default cpu; auto: cuda if available, else cpu)",
    )


def add_model(p: Any, default: str | None, positional_alias: bool = False) -> None:
    """``--model NAME`` (a name from ``facelab model list`` or a model file).

    ``positional_alias``: also accept the old positional ``NAME`` (deprecated, warns).
    """
    if positional_alias:
        p.add_argument("name", nargs="?", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--model",
        default=None if positional_alias else default,
        metavar="NAME",
        help="face model: a name from `facelab model list` or a model file"
        + (f" (default: {default})" if default else ""),
    )
    p.set_defaults(_model_default=default)


def model_arg(args: Any, command: str) -> str:
    """The model chosen with ``--model`` (or the deprecated positional NAME, with a warning)."""
    from ..errors import InvalidInput

    positional = getattr(args, "name", None)
    chosen = getattr(args, "model", None)
    if positional is not None:
        if chosen is not None and chosen != positional:
            raise InvalidInput(f"two models given: {positional!r} and --model {chosen!r}")
        print(
            f"facelab {command}: warning: the positional model NAME is deprecated, "
            f"use --model {positional}",
            file=sys.stderr,
        )
        chosen = positional
    if chosen is None:
        chosen = getattr(args, "_model_default", None)
    if chosen is None:
        raise InvalidInput(f"facelab {command}: choose a model with --model NAME")
    return chosen


def check_at_least(value: float | None, option: str, low: float) -> None:
    """Fail with one line, before any work, when ``option``'s ``value`` is below ``low``
    (``None``, an option not given, passes)."""
    from ..errors import InvalidInput

    if value is not None and value < low:
        raise InvalidInput(f"{option} must be >= {low}, got {value}")


def setup_compute(args: Any) -> Any:
    """Validate and apply ``--threads`` / ``--device`` before any work; returns the device."""
    import torch

    from ..errors import InvalidInput

    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 0:
            raise InvalidInput(f"--threads must be >= 0 (0: torch's default), got {threads}")
        if threads > 0:
            torch.set_num_threads(threads)
    name = getattr(args, "device", "cpu") or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInput(
            f"--device cuda: no CUDA device is available (torch {torch.__version__}); "
            "use --device cpu"
        )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise InvalidInput("--device mps: Apple MPS is not available here; use --device cpu")
    return torch.device(name)


def _probe_dir(d: Path, option: str, shown: str) -> None:
    import tempfile

    from ..errors import InvalidInput

    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".facelab-write-test-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise InvalidInput(f"{option} {shown}: cannot write there ({reason})") from None


def check_output_file(path: str | Path | None, option: str = "--out") -> None:
    """Fail with one clear line, before any work, if ``path`` cannot be written.

    Creates missing parent folders (as the write would). ``None`` (option not given) passes.
    """
    from ..errors import InvalidInput

    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise InvalidInput(f"{option} {path}: is a directory, expected a file name")
    _probe_dir(p.parent if str(p.parent) else Path("."), option, str(path))


def check_output_dir(path: str | Path | None, option: str = "--out") -> None:
    """Like :func:`check_output_file` for an output folder (created if missing)."""
    from ..errors import InvalidInput

    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InvalidInput(f"{option} {path}: is a file, expected a directory")
    _probe_dir(p, option, str(path))
