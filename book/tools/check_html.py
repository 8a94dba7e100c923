"""Checks on the built book, as its readers see it.

``python book/tools/check_html.py [book/_build/html]`` prints problems and exits 1 if any.
``book/tools/build.py`` runs it after every build (so ``make test``'s FAST build and
``make book`` fail on a problem); ``tests/test_book_checks.py`` tests each check on small pages.

What is checked:

* offline assets present, no script from a CDN, no traceback in an output;
* plotly figures and ipywidgets state embedded where expected;
* no figure auto-plays (``Plotly.animate`` on load; use ``facelab.viz.frame_slider``);
* every coding exercise (a cell calling ``check("chN.name", fn)``) has its task visible above
  it: an "Exercise N (code)" paragraph naming ``fn``, and exercises are numbered 1, 2, 3, ...;
* the command-line appendix has one section per command, holding its own ``--help`` text;
* no literal reStructuredText roles (``:func:`` ...) or ``::`` blocks in the visible text;
* every "Chapter N" in the text is a link;
* no Output widget in the saved widget state holds binary buffers (a broken image).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REQUIRED_STATIC = ["plotly.min.js", "require.js", "embed-amd.js", "mathjax/tex-chtml.js"]
CDN = re.compile(r"""<script[^>]+src=["']https?://[^"']+["']""")
# pages that must contain at least one plotly figure / one embedded widget
MUST_HAVE_PLOTLY = ["chapters/00_first_look.html", "chapters/01_faces_as_data.html"]
MUST_HAVE_WIDGET = ["chapters/00_first_look.html", "chapters/01_faces_as_data.html"]


AUTOPLAY = re.compile(r"Plotly\.animate\(")
REST_ROLE = re.compile(
    r":(?:py:)?(?:func|mod|class|meth|attr|exc|data|obj|ref|doc|term|numref):(?![\w-])"
)
REST_BLOCK = re.compile(r"[A-Za-z)]::(?:\s|$)")
CHAPTER_WORD = re.compile(r"\bChapter \d+[a-z]?\b")
EXERCISE_LABEL = re.compile(r"\bExercise (\d+)\b")
CODE_TASK = re.compile(r"Exercise (\d+)\s*\(code\)")
CHECK_CALL = re.compile(r"""check\(["'](ch[0-9a-z]+\.\w+)["'],\s*(\w+)""")
CELL_START = re.compile(r'<div class="cell[ "]')
_SKIP_TAGS = {"script", "style", "pre", "code", "title", "h1", "h2", "h3", "h4", "h5", "h6", "kbd"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "source", "area", "col", "embed"}


class _Text(HTMLParser):
    """Visible prose of a page's article: text outside code/pre/headings, with link flags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.in_main = 0
        self.chunks: list[tuple[str, bool]] = []  # (text, inside a link)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _VOID:
            return
        self.stack.append(tag)
        if tag in ("main", "article"):
            self.in_main += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or tag not in self.stack:
            return
        while self.stack:
            t = self.stack.pop()
            if t in ("main", "article"):
                self.in_main -= 1
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.in_main <= 0 or any(t in _SKIP_TAGS for t in self.stack):
            return
        self.chunks.append((data, "a" in self.stack))


def visible_text(page_html: str) -> list[tuple[str, bool]]:
    """(text, is_link) pieces of the article's prose (no code, pre, headings, scripts)."""
    p = _Text()
    p.feed(page_html)
    return p.chunks


def _strip_tags(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def check_page(rel: str, text: str, chapters: set[str] | None = None) -> list[str]:
    """The reader-facing checks of one page (``rel``: its path in the site).

    ``chapters``: the chapter numbers the site has (``"3"``, ``"4b"``); an unlinked "Chapter N"
    is a problem when chapter N exists (a forward reference to a chapter not written yet is
    plain text until it exists, then the book's extension links it). None: every one counts.
    """
    problems: list[str] = []
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.DOTALL | re.IGNORECASE)
    if any(AUTOPLAY.search(js) for js in scripts):  # in code, not in prose that mentions it
        problems.append(
            f"{rel}: a plotly figure auto-plays on load (Plotly.animate): make slider figures "
            "with facelab.viz.frame_slider"
        )
    for js in re.findall(
        r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', text, re.DOTALL
    ):
        try:
            models = json.loads(js).get("state", {})
        except ValueError:
            problems.append(f"{rel}: the embedded widget state is not JSON")
            continue
        for model in models.values():
            if model.get("model_name") == "OutputModel" and model.get("buffers"):
                problems.append(
                    f"{rel}: an Output widget's outputs hold binary buffers (raw image bytes), "
                    "which the static page shows as a broken image: store base64 text "
                    "(facelab.viz.widgets.output_items)"
                )
    chunks = visible_text(text)
    prose = "".join(c for c, _ in chunks)
    for pat, what in ((REST_ROLE, "reST role"), (REST_BLOCK, "reST '::' block marker")):
        for m in pat.finditer(prose):
            ctx = prose[max(0, m.start() - 40) : m.end() + 20].replace("\n", " ")
            problems.append(f"{rel}: literal {what} in the text: ...{ctx}...")
    for chunk, linked in chunks:
        if linked:
            continue
        for m in CHAPTER_WORD.finditer(chunk):
            if chapters is not None and m.group(0).split()[1] not in chapters:
                continue
            problems.append(
                f"{rel}: '{m.group(0)}' is not a link (write 'Chapter N' in prose; "
                "the book's extension links it when chapter N exists)"
            )
    # coding exercises: a visible task right above each check cell, consistent numbering
    starts = [m.start() for m in CELL_START.finditer(text)]
    labels = [
        int(n)
        for n in EXERCISE_LABEL.findall(
            _strip_tags(" ".join(re.findall(r"<strong>\s*Exercise \d+\s*</strong>", text)))
        )
    ]
    if labels and labels != list(range(1, len(labels) + 1)):
        problems.append(f"{rel}: exercises are numbered {labels}, not 1..{len(labels)}")
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(text)
        cell = _strip_tags(text[start:end])
        m = CHECK_CALL.search(cell)
        if m is None:
            continue
        before = _strip_tags(text[starts[k - 1] if k else 0 : start])
        tail = before[-1500:]
        task = list(CODE_TASK.finditer(tail))
        if not task:
            problems.append(
                f"{rel}: coding exercise {m.group(1)} has no visible "
                "'Exercise N (code)' task above its cell"
            )
        elif not re.search(rf"\b{m.group(2)}\b", tail[task[-1].start() :]):
            problems.append(
                f"{rel}: the task above exercise {m.group(1)} does not name the "
                f"function to write ({m.group(2)})"
            )
    return problems


def check_cli_page(rel: str, text: str) -> list[str]:
    """Each ``facelab X`` section of the CLI appendix holds exactly its own ``--help`` text."""
    problems: list[str] = []
    sections = re.split(r"<h2[^>]*>", text)[1:]
    if not sections:
        return [f"{rel}: no command sections"]
    for sec in sections:
        title = _strip_tags(sec.split("</h2>", 1)[0]).replace("#", "").strip()
        m = re.match(r"facelab (\w+)", title)
        if m is None:
            continue
        cmd = m.group(1)
        body = _strip_tags(sec)
        usages = re.findall(r"usage: facelab (\w+)", body)
        if usages != [cmd]:
            problems.append(f"{rel}: section 'facelab {cmd}' holds the help of {usages or 'none'}")
    return problems


def check_book(html_dir: Path) -> list[str]:
    """Return a list of problems found in the built HTML (empty when all is well)."""
    html_dir = Path(html_dir)
    problems: list[str] = []
    if not (html_dir / "index.html").exists():
        return [f"{html_dir}/index.html does not exist: was the book built?"]
    for name in REQUIRED_STATIC:
        if not (html_dir / "_static" / name).is_file():
            problems.append(f"_static/{name} is missing (offline JS asset)")
    chapters = {
        str(int(m.group(1))) + m.group(2)
        for m in (
            re.match(r"(\d+)([a-z]?)_", p.name) for p in (html_dir / "chapters").glob("*.html")
        )
        if m
    }
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir).as_posix()
        if rel.startswith(("_static/", "_sources/", "genindex", "search")):
            continue
        text = page.read_text(errors="replace")
        for m in CDN.finditer(text):
            problems.append(f"{rel}: loads a script from the network: {m.group(0)[:120]}")
        if 'class="output traceback' in text or "ipythontb" in text:
            problems.append(f"{rel}: contains a traceback output")
        problems.extend(check_page(rel, text, chapters))
        if rel == "appendix/cli.html":
            problems.extend(check_cli_page(rel, text))
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
