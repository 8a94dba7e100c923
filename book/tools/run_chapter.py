"""Execute chapters one at a time, as the book build does, without building the site.

Usage (from the repository root)::

    .venv/bin/python book/tools/run_chapter.py book/chapters/04_differentiable_rendering.md
    .venv/bin/python book/tools/run_chapter.py --fast book/chapters/*.md
    .venv/bin/python book/tools/run_chapter.py --fast --save out/ book/chapters/02_*.md

Each chapter (MyST Markdown, jupytext) is converted to a notebook in memory and executed by
nbclient with the build's environment (``IPYTHONDIR=book/.ipython``, one torch thread,
``FACELAB_FAST=1`` with ``--fast``). A cell error, or anything a cell writes to stderr that
looks like a warning, fails the chapter: the book build (``-W``) would fail on it too. Prints
a table of chapters and seconds; exit status 1 if any chapter failed. ``--save DIR`` writes
the executed ``.ipynb`` files (to look at the outputs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]


def _problems(nb) -> list[str]:
    """Warnings printed to stderr by any cell (the Sphinx build turns them into failures)."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                text = o.get("text", "")
                if "warn" in text.lower() or "error" in text.lower():
                    out.append(f"cell {i}: stderr: {text.strip()[:300]}")
    return out


def run(path: Path, fast: bool, timeout: int, save: Path | None) -> tuple[float, list[str]]:
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = jupytext.read(path)
    env = {**os.environ, "IPYTHONDIR": str(BOOK / ".ipython"), "OMP_NUM_THREADS": "1"}
    if fast:
        env["FACELAB_FAST"] = "1"
    t0 = time.perf_counter()
    problems: list[str] = []
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute(env=env)  # the kernel's environment (passed on to start_kernel)
    except CellExecutionError as e:
        problems.append(str(e).strip().splitlines()[-1][:500])
        problems.append(str(e)[:3000])
    dt = time.perf_counter() - t0
    problems += _problems(nb)
    if save is not None:
        import nbformat

        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / (path.stem + ".ipynb"))
    return dt, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("chapters", nargs="+", type=Path)
    ap.add_argument("--fast", action="store_true", help="FACELAB_FAST=1")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    ap.add_argument("--save", type=Path, default=None, help="write executed notebooks here")
    a = ap.parse_args(argv)
    rows, failed = [], False
    for p in a.chapters:
        dt, problems = run(p, a.fast, a.timeout, a.save)
        rows.append((p.name, dt, "ok" if not problems else "FAILED"))
        if problems:
            failed = True
            print(f"--- {p.name}:\n  " + "\n  ".join(problems), flush=True)
    print(f"\n{'chapter':<40} {'seconds':>8}  status")
    for name, dt, st in rows:
        print(f"{name:<40} {dt:8.1f}  {st}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
