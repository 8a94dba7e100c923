"""Build the facelab book to static HTML, offline, executing every chapter.

Usage (from the repository root; ``make book`` and ``make test`` call it)::

    python book/tools/build.py            # default mode: the full results a reader sees
    python book/tools/build.py --fast     # FACELAB_FAST=1: small sizes and few steps (CI)

What it does, in order:

1. Puts the JavaScript the static pages need into ``book/_ext_static`` (never committed):
   the ipywidgets HTML manager and require.js and MathJax 3 from ``book/node_modules``
   (installed from npm by ``npm ci`` in ``book/``), and ``plotly.min.js`` from the installed
   plotly package. Jupyter Book 1 otherwise loads all of these from CDNs.
2. Runs ``jupyter-book build`` with ``-W -n --keep-going`` and notebook execution forced, so any
   cell error or Sphinx warning fails the build: the build is a test of every chapter. The
   kernel gets ``IPYTHONDIR=book/.ipython``, whose startup file makes plotly write HTML that
   uses the shared ``plotly.min.js`` instead of inlining 4.6 MB per figure.
   Every cell has ``--cell-timeout`` seconds (default 300 with ``--fast``, 600 otherwise;
   passed to myst-nb as ``nb_execution_timeout`` by ``book/_ext``): a stalled kernel fails
   the build within minutes, and the failure names the chapter, the cell (its index and its
   line in the ``.md``) and what happened (timeout or the error's last line).
3. Prints a per-chapter execution-time table from myst-nb's execution data.
4. Writes the student-edition ``.ipynb`` of every chapter into ``_build/html/notebooks/`` (what
   the Colab buttons open; :func:`publish_notebooks`).
5. Checks the built HTML (``book/tools/check_html.py``): offline assets, figures and widgets
   embedded, and what readers see (no auto-playing figure, visible exercise tasks, one help
   text per CLI section, no literal reST, every "Chapter N" a link).

Exit status: 0 on success, 1 on any failure (with the reason printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
STATIC = BOOK / "_ext_static"
NODE = BOOK / "node_modules"


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(
            src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.map", "*.md")
        )
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def ensure_js_assets() -> None:
    """Copy the offline JavaScript into ``book/_ext_static`` (run ``npm ci`` first if needed)."""
    if not (NODE / "@jupyter-widgets" / "html-manager").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("build: npm is not installed; it is needed once to fetch the book's JS")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BOOK, check=True)
    import plotly

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    _copy(plotly_js, STATIC / "plotly.min.js")
    _copy(NODE / "requirejs" / "require.js", STATIC / "require.js")
    dist = NODE / "@jupyter-widgets" / "html-manager" / "dist"
    for f in dist.iterdir():
        if f.suffix != ".map" and f.name not in ("embed.js", "embed.js.LICENSE.txt"):
            _copy(f, STATIC / f.name)
    _copy(NODE / "mathjax" / "es5", STATIC / "mathjax")
    _copy(BOOK / "_ext" / "facelab.css", STATIC / "facelab.css")


API_PACKAGES = [
    "geometry",
    "models",
    "render",
    "vision",
    "world",
    "fit",
    "metrics",
    "viz",
    "data",
    "errors",
    "color",
    "exercises",
]


def write_api_pages() -> None:
    """Write ``appendix/api/<package>.md``: an ``automodule`` block per public module."""
    import importlib
    import pkgutil

    out = BOOK / "appendix" / "api"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for i, name in enumerate(API_PACKAGES):
        full = f"facelab.{name}"
        try:
            mod = importlib.import_module(full)
        except ImportError:
            continue  # a sub-package not written yet
        mods = [full]
        if hasattr(mod, "__path__"):
            for info in pkgutil.walk_packages(mod.__path__, prefix=full + "."):
                if not any(part.startswith("_") for part in info.name.split(".")):
                    mods.append(info.name)
        # The package's re-exports are its public API (indexed under the package name); each
        # public submodule adds what it does not re-export. A submodule shadowed by a function
        # of the same name (e.g. ``facelab.render.texture``) is documented through the package.
        opts = {m: ":members:\n   :undoc-members:\n   :show-inheritance:" for m in mods}
        opts[full] = ":members:\n   :show-inheritance:"
        keep = [full]
        for m in mods[1:]:
            module = importlib.import_module(m)  # first: importing sets the parent's attribute
            parent = importlib.import_module(m.rsplit(".", 1)[0])
            if getattr(parent, m.rsplit(".", 1)[1], None) is module:
                keep.append(m)
        blocks = "\n".join(
            f"```{{eval-rst}}\n.. automodule:: {m}\n   {opts[m]}\n```\n" for m in keep
        )
        (out / f"{i:02d}_{name}.md").write_text(f"# `{full}`\n\n{blocks}")


COLAB_SETUP = """# Colab (or any fresh Python): install facelab and fetch the face models first.
%pip install -q "facelab[vision,book] @ git+https://github.com/facelab-book/facelab"
!facelab data fetch ict-facekit dlib-models"""


def publish_notebooks(html_dir: Path) -> list[Path]:
    """Write the student edition of every chapter as ``.ipynb`` into ``html_dir/notebooks``.

    These are the notebooks the Colab launch buttons open (Colab reads ``.ipynb``, not the
    MyST ``.md`` chapters): solutions stripped, checks kept, no outputs, and a first cell that
    installs facelab and fetches the models (see the install appendix). The book workflow
    publishes the folder as the repository branch named by ``facelab_colab_branch``.
    """
    import jupytext
    from editions import student_text  # type: ignore[import-not-found]
    from nbformat.v4 import new_code_cell, new_markdown_cell

    out = html_dir / "notebooks" / "chapters"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for md in sorted((BOOK / "chapters").glob("*.md")):
        nb = jupytext.reads(student_text(md.read_text()), fmt="myst")
        nb.cells[:0] = [
            new_markdown_cell(
                "**Running this notebook in Colab or a fresh environment:** run the next cell "
                "once (it installs facelab and downloads the face models), then run the "
                "notebook from the top. Solutions are removed in this edition; each exercise "
                "cell checks your code."
            ),
            new_code_cell(COLAB_SETUP),
        ]
        dst = out / md.with_suffix(".ipynb").name
        jupytext.write(nb, dst)
        written.append(dst)
    return written


def print_timings(build_dir: Path, fast: bool) -> None:
    """Print the execution-time table from the stats file written by conf hooks."""
    stats = build_dir / "html" / "_facelab_exec_stats.json"
    if not stats.exists():
        print("build: no execution statistics were recorded", file=sys.stderr)
        return
    data = json.loads(stats.read_text())
    print(f"\nper-chapter execution ({'FAST' if fast else 'default'} mode):")
    print(f"{'document':<44} {'method':<8} {'seconds':>8}  status")
    total = 0.0
    for d in sorted(data, key=lambda r: r["docname"]):
        rt = d.get("runtime")
        total += rt or 0.0
        rts = f"{rt:8.1f}" if rt is not None else "       -"
        print(f"{d['docname']:<44} {d.get('method', '-'):<8} {rts}  {d.get('status', '-')}")
    print(f"{'total':<44} {'':<8} {total:8.1f}")


def _run_tee(cmd: list[str], env: dict) -> tuple[int, str]:
    """Run ``cmd``, echoing its output live, and return ``(exit code, output)``."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    chunks = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        chunks.append(line)
    return proc.wait(), "".join(chunks)


def _first_source_line(preview: str) -> str:
    """The first line of nbclient's cell preview (a list repr for cells over ten lines)."""
    import ast

    first = preview.strip().splitlines()[0] if preview.strip() else ""
    if first.startswith("[") and first.endswith("]"):
        try:
            lines = ast.literal_eval(first)
            return str(lines[0]) if lines else ""
        except (ValueError, SyntaxError):
            pass
    return first


def _locate_cell(chapter: Path, first_line: str) -> str:
    """``"cell N (line L of the .md)"`` for the code cell starting with ``first_line``."""
    if not first_line.strip() or not chapter.is_file():
        return "cell ?"
    try:
        import jupytext

        nb = jupytext.read(chapter)
    except Exception:  # noqa: BLE001 (the message is best effort)
        return "cell ?"
    want = first_line.strip()
    for i, cell in enumerate(nb.cells):
        lines = cell.source.strip().splitlines()
        if cell.cell_type == "code" and lines and lines[0].strip() == want:
            text = chapter.read_text().splitlines()
            line = next((k + 1 for k, t in enumerate(text) if t.strip() == want), None)
            return f"cell {i}" + (f" (line {line} of {chapter.name})" if line else "")
    return "cell ?"


def explain_failure(output: str) -> list[str]:
    """One line per failed chapter: chapter, cell, and timeout or error, from the build log.

    Reads myst-nb's messages in ``output`` and the Sphinx traceback files it names
    (``/tmp/sphinx-err-*.log``) and the ``reports/*.err.log`` files.
    """
    import re

    texts = [output]
    for m in re.findall(r"(/\S*sphinx-err-\S+?\.log)", output):
        try:
            texts.append(Path(m).read_text(errors="replace"))
        except OSError:
            pass
    reports = BOOK / "_build" / "html" / "reports"
    if reports.is_dir():
        for log in sorted(reports.rglob("*.err.log")):
            rel = log.relative_to(reports).as_posix()[: -len(".err.log")]
            texts.append(f"ExecutionError: {BOOK / rel}.md\n" + log.read_text(errors="replace"))
    text = "\n".join(texts)
    out: list[str] = []
    # Only chapters named by a failure message: every executed chapter's path also starts a
    # line ("x.md: Executed notebook in N seconds"), which is no failure.
    failed_re = (
        r"ExecutionError: (/\S+?\.(?:md|ipynb))"
        r"|^(/\S+?\.(?:md|ipynb)):.*?Executing notebook failed"
    )
    found = [a or b for a, b in re.findall(failed_re, text, flags=re.M)]
    chapters = list(dict.fromkeys(found))
    chapters = [c for c in chapters if "/chapters/" in c or "/appendix/" in c or "intro" in c]
    timeouts = re.findall(
        r"timed out while it was being executed, after (\d+) seconds\.\n.*?\n"
        r"Here is a preview of the cell contents:\n-+\n(.*?)\n-+\n",
        text,
        flags=re.S,
    )
    errors = re.findall(
        r"An error occurred while executing the following cell:\n-+\n(.*?)\n-+\n(.*?)(?:\n\n|$)",
        text,
        flags=re.S,
    )
    for chap in chapters or ["(unknown chapter)"]:
        path = Path(chap)
        name = path.relative_to(BOOK).as_posix() if path.is_relative_to(BOOK) else chap
        if timeouts:
            secs, preview = timeouts[0]
            where = _locate_cell(path, _first_source_line(preview))
            out.append(
                f"{name}: {where} timed out after {secs} s (kernel stalled or cell too slow)"
            )
        elif errors:
            src, tb = errors[0]
            where = _locate_cell(path, _first_source_line(src))
            last = [ln for ln in tb.strip().splitlines() if ln.strip()]
            msg = re.sub(r"\x1b\[[0-9;]*m", "", last[-1]) if last else "error"
            out.append(f"{name}: {where} failed: {msg[:300]}")
        else:
            out.append(f"{name}: execution failed (see the log above)")
    if not (chapters or timeouts or errors):
        out = []
    # -W turns every Sphinx warning into a failure: name them (docstrings, references, ...).
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    warns = [
        ln.strip()
        for ln in plain.splitlines()
        if "WARNING:" in ln and "Executing notebook failed" not in ln and "[IPKernelApp]" not in ln
    ]
    for w in warns[:20]:
        out.append(f"Sphinx warning (the build runs with -W): {w[:300]}")
    if len(warns) > 20:
        out.append(f"... and {len(warns) - 20} more Sphinx warnings")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="FAST mode (FACELAB_FAST=1)")
    ap.add_argument("--no-check", action="store_true", help="skip the HTML checks")
    ap.add_argument("--builder", default="html")
    ap.add_argument(
        "--cell-timeout",
        type=int,
        default=None,
        metavar="S",
        help="seconds per cell before the build fails (default 300 with --fast, else 600)",
    )
    a = ap.parse_args(argv)

    from preflight import check_assets  # type: ignore[import-not-found]

    problem = check_assets()  # the face models, before anything executes (one line if missing)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    ensure_js_assets()
    write_api_pages()
    env = dict(os.environ)
    env["IPYTHONDIR"] = str(BOOK / ".ipython")
    env.setdefault(
        "OMP_NUM_THREADS", "1"
    )  # one kernel at a time, one thread: see performance notes
    env.setdefault("MKL_NUM_THREADS", "1")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    if a.fast:
        env["FACELAB_FAST"] = "1"
    cell_timeout = a.cell_timeout or (300 if a.fast else 600)
    env["FACELAB_CELL_TIMEOUT"] = str(cell_timeout)  # read by book/_ext (nb_execution_timeout)
    build_dir = BOOK / "_build"
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(BOOK), "--builder", a.builder, "--all", "-W", "-n", "--keep-going"]
    print(f"build: {' '.join(cmd)}  (cell timeout {cell_timeout} s)", flush=True)
    t0 = time.perf_counter()
    returncode, output = _run_tee(cmd, env)
    dt = time.perf_counter() - t0
    print_timings(build_dir, a.fast)
    print(f"build: jupyter-book finished in {dt:.0f} s with exit code {returncode}")
    if returncode != 0:
        reports = build_dir / "html" / "reports"
        if reports.is_dir():
            for log in sorted(reports.glob("*.log")):
                print(f"--- {log.name} (tail) ---")
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        for line in explain_failure(output):
            print(f"build: FAILED {line}")
        return 1
    nbs = publish_notebooks(build_dir / "html")
    print(f"build: {len(nbs)} student notebooks for Colab in {build_dir / 'html' / 'notebooks'}")
    if not a.no_check:
        from check_html import check_book  # type: ignore[import-not-found]

        problems = check_book(build_dir / "html")
        if problems:
            print("build: HTML checks failed:\n  " + "\n  ".join(problems))
            return 1
        print("build: HTML checks passed")
    print(f"build: open {build_dir / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
