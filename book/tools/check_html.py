"""Checks on the built book: offline assets present, figures and widgets embedded, no CDN.

``python book/tools/check_html.py [book/_build/html]`` prints problems and exits 1 if any.
Used by ``book/tools/build.py`` after every build and by ``tests/test_book.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REQUIRED_STATIC = ["plotly.min.js", "require.js", "embed-amd.js", "mathjax/tex-chtml.js"]
CDN = re.compile(r"""<script[^>]+src=["']https?://[^"']+["']""")
# pages that must contain at least one plotly figure / one embedded widget
MUST_HAVE_PLOTLY = ["chapters/00_first_look.html", "chapters/01_faces_as_data.html"]
MUST_HAVE_WIDGET = ["chapters/00_first_look.html", "chapters/01_faces_as_data.html"]


def check_book(html_dir: Path) -> list[str]:
    """Return a list of problems found in the built HTML (empty when all is well)."""
    html_dir = Path(html_dir)
    problems: list[str] = []
    if not (html_dir / "index.html").exists():
        return [f"{html_dir}/index.html does not exist: was the book built?"]
    for name in REQUIRED_STATIC:
        if not (html_dir / "_static" / name).is_file():
            problems.append(f"_static/{name} is missing (offline JS asset)")
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir).as_posix()
        if rel.startswith(("_static/", "_sources/", "genindex", "search")):
            continue
        text = page.read_text(errors="replace")
        for m in CDN.finditer(text):
            problems.append(f"{rel}: loads a script from the network: {m.group(0)[:120]}")
        if 'class="output traceback' in text or "ipythontb" in text:
            problems.append(f"{rel}: contains a traceback output")
    for rel in MUST_HAVE_PLOTLY:
        p = html_dir / rel
        if not p.exists():
            problems.append(f"{rel}: page missing")
            continue
        t = p.read_text(errors="replace")
        if "plotly-graph-div" not in t or "Plotly.newPlot" not in t:
            problems.append(f"{rel}: no plotly figure in the page")
    for rel in MUST_HAVE_WIDGET:
        p = html_dir / rel
        if not p.exists():
            continue
        t = p.read_text(errors="replace")
        if "application/vnd.jupyter.widget-state+json" not in t:
            problems.append(f"{rel}: no saved ipywidgets state")
        if "application/vnd.jupyter.widget-view+json" not in t:
            problems.append(f"{rel}: no ipywidgets view")
    return problems


if __name__ == "__main__":
    d = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[1] / "_build" / "html"
    )
    probs = check_book(d)
    print("\n".join(probs) if probs else "ok")
    sys.exit(1 if probs else 0)
