"""Make the student or the instructor edition of the book.

    python book/tools/editions.py student OUT      # solutions stripped, checks kept
    python book/tools/editions.py instructor OUT   # everything, plus the grading tool
    (add --ipynb to also write .ipynb notebooks next to the .md chapters)

Student edition:
* in code cells, each ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block becomes
  ``raise NotImplementedError("your code here")`` (see ``facelab.exercises.strip_solutions``);
* every ``:::{admonition} Solution`` … ``:::`` block (the answers to concept questions) is removed;
* the ``check("chN.name", fn)`` cells stay, so students can check their own work.

Instructor edition: the book as it is (solutions visible in dropdowns) plus ``grade.py``, which
executes students' chapters and tabulates which exercise checks pass.
``make student-edition`` and ``make instructor-edition`` call this script (output in ``editions/``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from facelab.exercises import strip_solutions

BOOK = Path(__file__).resolve().parents[1]
COPY = [
    "_config.yml",
    "_toc.yml",
    "intro.md",
    "references.bib",
    "chapters",
    "appendix",
    "_ext",
    ".ipython",
    "package.json",
    "package-lock.json",
    "tools",
    "README.md",
]
SOLUTION_ADMONITION = re.compile(
    r"^(?P<fence>:{3,})\{admonition\}\s*Solution[^\n]*\n.*?^(?P=fence)\s*$\n?",
    re.MULTILINE | re.DOTALL,
)
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n.*?^```\s*$", re.MULTILINE | re.DOTALL)


def student_text(md: str) -> str:
    """The student version of one MyST chapter."""
    md = SOLUTION_ADMONITION.sub("", md)
    return CODE_CELL.sub(lambda m: strip_solutions(m.group(0)), md)


def make_edition(kind: str, out: Path, ipynb: bool = False) -> list[Path]:
    """Write the edition into ``out`` and return the chapter files written."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in COPY:
        src = BOOK / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copyfile(src, out / name)
    if kind == "student":
        shutil.rmtree(out / "tools", ignore_errors=True)
        (out / "tools").mkdir()
        shutil.copyfile(BOOK / "tools" / "build.py", out / "tools" / "build.py")
        shutil.copyfile(BOOK / "tools" / "check_html.py", out / "tools" / "check_html.py")
    written = []
    for md in sorted((out / "chapters").glob("*.md")):
        if kind == "student":
            md.write_text(student_text(md.read_text()))
        written.append(md)
        if ipynb:
            import jupytext

            nb = jupytext.read(md)
            jupytext.write(nb, md.with_suffix(".ipynb"))
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["student", "instructor"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--ipynb", action="store_true", help="also write .ipynb notebooks")
    a = ap.parse_args(argv)
    files = make_edition(a.kind, a.out, a.ipynb)
    print(f"{a.kind} edition: {len(files)} chapters in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
