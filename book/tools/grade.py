"""Grade students' chapters: run them and report which exercise checks pass.

    python book/tools/grade.py STUDENT_DIR [--json]

``STUDENT_DIR`` holds a student's chapters (``.md`` from the student edition, or ``.ipynb``).
Each chapter is executed top to bottom (FAST mode, errors allowed so one unfinished exercise
does not hide the others); every cell that calls ``check("chN.name", ...)`` is graded pass/fail
from its output. Prints a table per chapter (or JSON: ``{chapter: {exercise: "pass"|"fail"}}``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

CHECK = re.compile(r"""check\(\s*["'](?P<name>ch\d+\.[A-Za-z0-9_]+)["']""")


def grade_notebook(path: Path, timeout: int = 600) -> dict[str, str]:
    """Execute one chapter and return ``{exercise_name: "pass" | "fail"}``."""
    import jupytext
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    os.environ.setdefault("FACELAB_FAST", "1")
    NotebookClient(
        nb, timeout=timeout, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    results: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        names = CHECK.findall(cell.source)
        if not names:
            continue
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        for n in names:
            results[n] = "fail" if failed else "pass"
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    files = sorted(a.folder.glob("*.ipynb")) or sorted(a.folder.glob("*.md"))
    report = {f.stem: grade_notebook(f) for f in files}
    if a.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    for chapter, res in report.items():
        passed = sum(v == "pass" for v in res.values())
        print(f"{chapter}: {passed}/{len(res)} exercises pass")
        for name, v in sorted(res.items()):
            print(f"  {'✓' if v == 'pass' else '✗'} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
