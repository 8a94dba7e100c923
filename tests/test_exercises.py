"""Every coding exercise in the book: the reference solution passes, the stub fails.

Exercise cells are self-contained (they import what they use), contain a
``### BEGIN SOLUTION`` / ``### END SOLUTION`` block and call ``check("chN.name", fn)``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from facelab.exercises import ExerciseFailed, check, registry, strip_solutions

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK / "tools"))
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
CHECK = re.compile(r"""check\(\s*["'](ch\d+\.\w+)["']""")


def _exercise_cells() -> list[tuple[str, str, str]]:
    out = []
    for md in sorted((BOOK / "chapters").glob("*.md")):
        for m in CELL.finditer(md.read_text()):
            body = m.group("body")
            body = "\n".join(ln for ln in body.splitlines() if not ln.startswith(":tags:"))
            names = CHECK.findall(body)
            if names and "### BEGIN SOLUTION" in body:
                out.append((md.stem, names[0], body))
    return out


CELLS = _exercise_cells()


@pytest.mark.parametrize(("chapter", "name", "body"), CELLS, ids=[c[1] for c in CELLS])
def test_reference_solution_passes_and_stub_fails(chapter, name, body, capsys):
    exec(compile(body, f"{chapter}:{name}", "exec"), {"__name__": "__exercise__"})
    assert "all" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed):
        exec(compile(strip_solutions(body), f"{chapter}:{name}[stub]", "exec"), {})


def test_every_registered_exercise_is_used_in_the_book():
    used = {name for _, name, _ in CELLS}
    assert set(registry()) <= used, sorted(set(registry()) - used)


def test_check_reports_wrong_answers_and_crashes(monkeypatch):
    import facelab.exercises as ex
    from facelab.exercises import exercise

    monkeypatch.setattr(ex, "_EXERCISES", dict(ex._EXERCISES))  # do not leak the toy exercise

    @exercise("ch0.double", "double a number", hint="multiply by two")
    def _checker(fn):
        assert fn(2) == 4, f"double(2) should be 4, got {fn(2)}"
        return 1

    assert check("ch0.double", lambda x: 2 * x, quiet=True) == 1
    with pytest.raises(ExerciseFailed, match="(?s)should be 4.*hint: multiply by two"):
        check("ch0.double", lambda x: x + 1)
    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError"):
        check("ch0.double", lambda x: x / 0)
    with pytest.raises(KeyError):
        check("ch0.nope", lambda x: x)


def test_strip_solutions_keeps_indentation_and_rejects_bad_markers():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert strip_solutions(src) == 'def f(x):\n    raise NotImplementedError("your code here")\n'
    with pytest.raises(ValueError, match="unterminated"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError, match="without"):
        strip_solutions("### END SOLUTION\n")


def test_student_edition_strips_solutions(tmp_path):
    from editions import make_edition, student_text

    md = (
        "Q1. Why?\n\n:::{admonition} Solution\n:class: dropdown\nBecause.\n:::\n\n"
        "```{code-cell} ipython3\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n"
        "    ### END SOLUTION\n```\n"
    )
    s = student_text(md)
    assert "Because." not in s and "return x" not in s and "NotImplementedError" in s
    assert "Q1. Why?" in s
    files = make_edition("student", tmp_path / "student")
    for f in files:
        assert "### BEGIN SOLUTION" not in f.read_text()
    inst = make_edition("instructor", tmp_path / "instructor")
    assert len(inst) == len(files)
    assert (tmp_path / "instructor" / "tools" / "grade.py").exists()
