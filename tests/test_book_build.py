"""book/tools/build.py: a failed execution is reported with its chapter and cell."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BUILD = Path(__file__).resolve().parents[1] / "book" / "tools" / "build.py"


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("facelab_book_build", BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter

```{code-cell} ipython3
x = 1
```

Some prose.

```{code-cell} ipython3
import time

time.sleep(1000)
```
"""


def test_explain_failure_names_chapter_and_cell_for_a_timeout(build, tmp_path, monkeypatch):
    pytest.importorskip("jupytext")
    monkeypatch.setattr(build, "BOOK", tmp_path)
    chap = tmp_path / "chapters" / "01_x.md"
    chap.parent.mkdir()
    chap.write_text(CHAPTER)
    log = (
        f"{chap}: WARNING: Executing notebook failed: CellTimeoutError [mystnb.exec]\n"
        "A cell timed out while it was being executed, after 300 seconds.\n"
        "The message was: Cell execution timed out.\n"
        "Here is a preview of the cell contents:\n-------------------\n"
        "import time\n\ntime.sleep(1000)\n-------------------\n"
    )
    (line,) = build.explain_failure(log)
    assert line.startswith("chapters/01_x.md: cell 3 (line 21 of 01_x.md)")
    assert "timed out after 300 s" in line


def test_explain_failure_names_the_error_and_long_cell_previews(build, tmp_path, monkeypatch):
    pytest.importorskip("jupytext")
    monkeypatch.setattr(build, "BOOK", tmp_path)
    chap = tmp_path / "chapters" / "02_y.md"
    chap.parent.mkdir()
    chap.write_text(CHAPTER)
    log = (
        f"ExecutionError: {chap}\n"
        "An error occurred while executing the following cell:\n------------------\n"
        "x = 1\n------------------\n\n"
        "Traceback (most recent call last):\n  ...\nValueError: bad x\n\n"
    )
    (line,) = build.explain_failure(log)
    assert line == "chapters/02_y.md: cell 1 (line 15 of 02_y.md) failed: ValueError: bad x"
    # nbclient shows cells over ten lines as a list repr of their first lines
    assert build._first_source_line("['import time', '', 'a = 1']\n...\n['z']") == "import time"
    assert build.explain_failure("everything fine") == []


def test_explain_failure_names_sphinx_warnings_not_executed_chapters(build, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "BOOK", tmp_path)
    chap = tmp_path / "chapters" / "00_a.md"
    log = (
        f"{chap}: Executed notebook in 14.05 seconds [mystnb]\n"
        "/x/facelab/viz/report.py:docstring of facelab.viz.report.SavedFit:5: \x1b[91mWARNING: "
        "Inline literal start-string without end-string.\x1b[39;49;00m\n"
    )
    lines = build.explain_failure(log)
    assert lines == [
        "Sphinx warning (the build runs with -W): /x/facelab/viz/report.py:docstring of "
        "facelab.viz.report.SavedFit:5: WARNING: Inline literal start-string without end-string."
    ]


def test_no_widget_output_capture_in_the_book_or_library():
    """Every widget goes through facelab.viz.interactive: no ``widgets.interact``,
    ``interactive_output`` or ``with out:`` capture (they stall nbclient, issue 13)."""
    import re

    root = BUILD.parents[2]
    bad = re.compile(
        r"widgets\.interact\b|\binteract\(|interactive_output|^\s*with\s+[\w.]*out(put)?\s*:",
        re.M,
    )
    files = sorted((root / "book" / "chapters").glob("*.md")) + sorted(
        (root / "facelab").rglob("*.py")
    )
    widgets_py = root / "facelab" / "viz" / "widgets.py"  # its docs name what not to use
    capture = re.compile(r"^\s*with\s+[\w.]*out(put)?\s*:", re.M)
    hits = [
        f"{f.relative_to(root)}: {m.group(0).strip()}"
        for f in files
        for m in (capture if f == widgets_py else bad).finditer(f.read_text(errors="replace"))
    ]
    assert not hits, hits
