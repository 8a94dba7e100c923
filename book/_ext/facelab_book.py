"""Sphinx extension of the facelab book (loaded from _config.yml ``local_extensions``).

* Writes ``_facelab_exec_stats.json`` into the HTML output: per document, myst-nb's execution
  data (runtime, method, success), which ``book/tools/build.py`` prints as a table.
* ``FACELAB_CELL_TIMEOUT`` (seconds, set by ``book/tools/build.py``) overrides the per-cell
  execution timeout (``nb_execution_timeout``, ``execute.timeout`` in ``_config.yml``).
* Numbers the chapters from their file names: ``chapters/03_cameras_landmarks.md`` gets the
  title "3. Cameras and landmark fitting" (in the page, the table of contents and the browser
  title), ``04b_...`` gets "4b.". A new chapter ``NN_name.md`` is numbered by adding it to
  ``_toc.yml``; nothing else to do.
* Links every "Chapter N" (and "Chapter 4b") written in prose to that chapter: write plain
  ``Chapter 3`` in the text, the link is made here (not inside code, literals, headings or
  existing links). ``book/tools/check_html.py`` fails the build on an unlinked "Chapter N".
* Points the Colab launch button at the published notebook of the page (``.ipynb``, which
  Colab can open; ``.md`` it cannot): ``blob/<facelab_colab_branch>/<page>.ipynb`` of the
  repository. ``book/tools/build.py`` writes those notebooks (the student edition, with an
  install cell for Colab) into ``_build/html/notebooks/``; the book workflow publishes that
  folder as the branch.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from docutils import nodes

CHAPTER_FILE = re.compile(r"^chapters/(?P<num>\d+[a-z]?)_")
CHAPTER_REF = re.compile(r"\bChapter (?P<num>\d+[a-z]?)\b")
# text inside these nodes is never turned into a link
_NO_LINK = (
    nodes.literal,
    nodes.literal_block,
    nodes.reference,
    nodes.title,
    nodes.raw,
    nodes.math,
    nodes.math_block,
    nodes.comment,
    nodes.target,
)


def chapter_number(docname: str) -> str | None:
    """``"chapters/04b_synthetic_world"`` -> ``"4b"``; None for pages that are not chapters."""
    m = CHAPTER_FILE.match(docname)
    if m is None:
        return None
    num = m.group("num")
    digits, suffix = num.rstrip("abcdefghijklmnopqrstuvwxyz"), num.lstrip("0123456789")
    return str(int(digits)) + suffix


def chapter_docs(found_docs) -> dict[str, str]:  # noqa: ANN001
    """Chapter number -> docname, for every chapter file of the book."""
    out = {}
    for doc in sorted(found_docs):
        num = chapter_number(doc)
        if num is not None:
            out[num] = doc
    return out


def _number_and_link(app, doctree) -> None:  # noqa: ANN001 (Sphinx signature)
    from sphinx import addnodes

    docname = app.env.docname
    num = chapter_number(docname)
    if num is not None:
        for section in doctree.findall(nodes.section):
            title = section[0] if section.children and isinstance(section[0], nodes.title) else None
            if title is not None and not title.astext().startswith(f"{num}. "):
                title.insert(0, nodes.Text(f"{num}. "))
            break
    chapters = chapter_docs(app.env.found_docs)
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or not CHAPTER_REF.search(text):
            continue
        anc, skip = parent, False
        while anc is not None:
            if isinstance(anc, _NO_LINK) or isinstance(anc, addnodes.pending_xref):
                skip = True
                break
            anc = anc.parent
        if skip:
            continue
        pieces: list[nodes.Node] = []
        pos = 0
        s = str(text)
        for m in CHAPTER_REF.finditer(s):
            target = chapters.get(m.group("num"))
            if target is None:
                continue
            if m.start() > pos:
                pieces.append(nodes.Text(s[pos : m.start()]))
            ref = addnodes.pending_xref(
                "",
                refdomain="std",
                reftype="doc",
                reftarget="/" + target,
                refexplicit=True,
                refdoc=docname,
            )
            ref += nodes.inline("", m.group(0))
            pieces.append(ref)
            pos = m.end()
        if not pieces:
            continue
        if pos < len(s):
            pieces.append(nodes.Text(s[pos:]))
        parent.replace(text, pieces)


def _colab_notebook(app, pagename, templatename, context, doctree) -> None:  # noqa: ANN001
    branch = app.config.facelab_colab_branch
    if not branch:
        return

    def fix(obj):  # noqa: ANN001, ANN202
        if isinstance(obj, dict):
            url = obj.get("url")
            if isinstance(url, str) and "colab.research.google.com" in url and "/blob/" in url:
                head = url.split("/blob/", 1)[0]
                obj["url"] = f"{head}/blob/{branch}/{pagename}.ipynb"
            for v in obj.values():
                fix(v)
        elif isinstance(obj, list):
            for v in obj:
                fix(v)

    fix(context.get("header_buttons", []))


def _write_stats(app, exception) -> None:  # noqa: ANN001 (Sphinx signature)
    # also after a failed build: the table then shows the chapters executed before the failure
    meta = getattr(getattr(app, "env", None), "nb_metadata", {}) or {}
    rows = []
    for docname, data in sorted(meta.items()):
        ex = data.get("exec_data")
        if not ex:
            continue
        rows.append(
            {
                "docname": docname,
                "runtime": ex.get("runtime"),
                "method": ex.get("method"),
                "status": "ok" if ex.get("succeeded") else f"FAILED ({ex.get('error')})",
            }
        )
    out = Path(app.outdir) / "_facelab_exec_stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


def _cell_timeout(app, config) -> None:  # noqa: ANN001 (Sphinx signature)
    value = os.environ.get("FACELAB_CELL_TIMEOUT")
    if value:
        config.nb_execution_timeout = int(value)


def setup(app):  # noqa: ANN001, ANN201
    app.add_config_value("facelab_colab_branch", "notebooks", "html")
    app.connect("config-inited", _cell_timeout)
    app.connect("build-finished", _write_stats)
    # before Sphinx's title and toctree collectors (priority 500) read the titles
    app.connect("doctree-read", _number_and_link, priority=400)
    # after sphinx-book-theme's launch buttons (priority 501)
    app.connect("html-page-context", _colab_notebook, priority=600)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
