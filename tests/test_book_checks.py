"""The reader-facing checks of the built book (book/tools/check_html.py) and the book extension.

Each check is tried on a small page that must pass and one that must fail, so a check that
cannot fail is caught here, not on the site.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "tools"))
sys.path.insert(0, str(BOOK / "_ext"))

import check_html  # noqa: E402
import facelab_book  # noqa: E402


def page(body: str) -> str:
    return f"<html><body><nav>Chapter 3</nav><main><article>{body}</article></main></body></html>"


EX_CELL = (
    '<div class="cell tag_hide-cell docutils container"><pre>def f(x):\n    return x\n\n'
    "check(&quot;ch1.f&quot;, f)</pre></div>"
)


def test_good_page_passes():
    body = (
        '<p>See <a href="x.html"><span>Chapter 3</span></a>; <code>:func:`x`</code> is code.</p>'
        "<p>plotly's default adds <code>Plotly.animate(...)</code> on load.</p>"
        "<p><strong>Exercise 1</strong> (concept). Why?</p>"
        "<p><strong>Exercise 2</strong> (code). Write <code>f(x)</code>.</p>" + EX_CELL
    )
    assert check_html.check_page("p.html", page(body)) == []


@pytest.mark.parametrize(
    "body, needle",
    [
        (
            "<script>Plotly.newPlot('a', [], {}).then(function(){Plotly.animate('a', null);})</script>",
            "auto-plays",
        ),
        ("<p>as in Chapter 3.</p>", "'Chapter 3' is not a link"),
        (
            '<script type="application/vnd.jupyter.widget-state+json">{"state": {"m": '
            '{"model_name": "OutputModel", "state": {}, "buffers": [{"path": '
            '["outputs", 0, "data", "image/png"], "data": "iVBO"}]}}}</script>',
            "binary buffers",
        ),
        ("<p>uses :func:</p><code>facelab.fit</code>", "reST role"),
        ("<p>stable keys::</p>", "'::' block"),
        ("<p><strong>Exercise 1</strong> (concept).</p>" + EX_CELL, "no visible"),
        (
            "<p><strong>Exercise 1</strong> (code). Write <code>g</code>.</p>" + EX_CELL,
            "does not name",
        ),
        (
            "<p><strong>Exercise 1</strong> (concept).</p><p><strong>Exercise 3</strong> (code). "
            "Write f.</p>" + EX_CELL,
            "numbered [1, 3]",
        ),
    ],
)
def test_bad_pages_fail(body, needle):
    problems = check_html.check_page("p.html", page(body))
    assert any(needle in p for p in problems), problems


def test_forward_reference_to_an_unwritten_chapter_is_allowed():
    body = "<p>Chapter 7 fits the latent; Chapter 3 is missing its link.</p>"
    problems = check_html.check_page("p.html", page(body), chapters={"3", "6"})
    assert len(problems) == 1 and "Chapter 3" in problems[0]


def test_two_exercise_cells_under_one_task_fail():
    body = (
        "<p><strong>Exercise 1</strong> (code). Write <code>f</code>.</p>"
        + EX_CELL
        + EX_CELL.replace("ch1.f", "ch1.g").replace(", f)", ", g)")
    )
    problems = check_html.check_page("p.html", page(body))
    assert len(problems) == 1 and "ch1.g" in problems[0]


def test_cli_sections_hold_their_own_help():
    good = (
        "<h2>facelab data</h2><p>doc</p><pre>usage: facelab data [-h]</pre>"
        "<h2>facelab fit</h2><pre>usage: facelab fit PHOTO</pre>"
    )
    assert check_html.check_cli_page("cli.html", good) == []
    merged = (
        "<h2>facelab data</h2><pre>usage: facelab data [-h]\nusage: facelab fit PHOTO</pre>"
        "<h2>facelab fit</h2><p>doc</p>"
    )
    problems = check_html.check_cli_page("cli.html", merged)
    assert len(problems) == 2


def test_chapter_numbers_from_file_names():
    assert facelab_book.chapter_number("chapters/00_first_look") == "0"
    assert facelab_book.chapter_number("chapters/04b_synthetic_world") == "4b"
    assert facelab_book.chapter_number("chapters/10_inversion") == "10"
    assert facelab_book.chapter_number("appendix/cli") is None
    docs = facelab_book.chapter_docs(["intro", "chapters/03_x", "chapters/04b_y"])
    assert docs == {"3": "chapters/03_x", "4b": "chapters/04b_y"}


def test_chapters_make_slider_figures_with_the_helper():
    # hand-made frames/sliders auto-play in plotly's to_html; facelab.viz.frame_slider does not
    for md in sorted((BOOK / "chapters").glob("*.md")):
        src = md.read_text()
        assert not re.search(r"go\.Frame\(|sliders\s*=", src), f"{md.name}: use viz.frame_slider"


def test_every_chapter_states_its_time():
    for md in sorted((BOOK / "chapters").glob("*.md")):
        head = md.read_text()[:3000]
        assert re.search(r"\*\*Time:\*\*", head), f"{md.name}: no time estimate at the top"


def test_cli_docstrings_become_markdown():
    from facelab.commands._markdown import docstring_markdown

    doc = """``facelab x`` -- uses :func:`facelab.fit.fit` and :class:`~facelab.errors.InvalidInput`.

    The stable keys::

        name, size

    After the block.
    """
    md = docstring_markdown(doc)
    assert md.splitlines()[0] == "`facelab x` -- uses `facelab.fit.fit` and `InvalidInput`."
    assert "The stable keys:\n\n```text\nname, size\n```\n\nAfter the block." in md
    prose = md.replace("```", "")
    assert "::" not in prose and "``" not in prose and ":func:" not in prose
    for name in ("data", "fit", "world"):
        mod = __import__(f"facelab.commands.{name}", fromlist=["x"])
        out = docstring_markdown(mod.__doc__)
        assert not check_html.REST_ROLE.search(out) and "``" not in out.replace("```", ""), name
        assert out.count("```") % 2 == 0, name
