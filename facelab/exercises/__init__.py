"""Self-checking exercises for the book's chapters.

A coding exercise in a chapter looks like this::

    def pca_basis(shapes, k):
        ### BEGIN SOLUTION
        ...reference solution...
        ### END SOLUTION

    check("ch2.pca_basis", pca_basis)

The student edition of the book (``make student-edition``) replaces everything between the
markers with ``raise NotImplementedError("your code here")``; the instructor edition keeps it.
:func:`check` runs the exercise's checks against the student's function and prints a short
report; it raises :class:`ExerciseFailed` with a hint when a check fails, so a notebook stops
at the first unfinished exercise.

Every check is registered with :func:`exercise` in ``facelab/exercises/chNN.py``. The test
suite (``tests/test_exercises.py``) extracts each exercise from the chapter sources and verifies
that the reference solution passes and the unmodified stub fails — a check can never be vacuous.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
STUB = 'raise NotImplementedError("your code here")'


class ExerciseFailed(AssertionError):
    """A check of an exercise failed; the message says which and gives a hint."""


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: ``checker(fn)`` raises AssertionError on a wrong ``fn``."""

    name: str
    title: str
    checker: Callable[[Callable[..., Any]], int]
    hint: str = ""


_EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, title: str, hint: str = "") -> Callable:
    """Decorator registering a checker ``f(student_fn) -> number_of_checks_run``."""

    def deco(checker: Callable[[Callable[..., Any]], int]) -> Callable:
        if name in _EXERCISES and _EXERCISES[name].checker is not checker:
            raise ValueError(f"exercise {name!r} registered twice")
        _EXERCISES[name] = Exercise(name, title, checker, hint)
        return checker

    return deco


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{info.name}")


def registry() -> dict[str, Exercise]:
    """All registered exercises by name (``"ch2.pca_basis"`` ...)."""
    _load_all()
    return dict(_EXERCISES)


def check(name: str, fn: Callable[..., Any], quiet: bool = False) -> int:
    """Run the checks of exercise ``name`` on the student's ``fn``.

    Returns the number of checks passed; raises :class:`ExerciseFailed` on the first failure
    (including an exception raised by ``fn``, e.g. the stub's ``NotImplementedError``).
    """
    ex = registry().get(name)
    if ex is None:
        raise KeyError(f"no exercise called {name!r}; known: {', '.join(sorted(_EXERCISES))}")
    try:
        n = ex.checker(fn)
    except NotImplementedError:
        raise ExerciseFailed(
            f"{ex.title}: not done yet — replace the stub with your code"
        ) from None
    except AssertionError as e:
        hint = f"\n  hint: {ex.hint}" if ex.hint else ""
        raise ExerciseFailed(f"{ex.title}: {e}{hint}") from None
    except Exception as e:  # the student's code crashed: report it as a failed check
        raise ExerciseFailed(f"{ex.title}: your function raised {type(e).__name__}: {e}") from e
    if not quiet:
        print(f"✓ {ex.title}: all {n} checks passed")
    return n


def strip_solutions(source: str) -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by the stub.

    The stub keeps the indentation of the ``BEGIN`` marker. Unbalanced markers raise
    ``ValueError`` naming the line.
    """
    out: list[str] = []
    inside = False
    for i, line in enumerate(source.splitlines(keepends=True), 1):
        stripped = line.strip()
        if stripped == SOLUTION_BEGIN:
            if inside:
                raise ValueError(f"line {i}: nested {SOLUTION_BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}\n")
        elif stripped == SOLUTION_END:
            if not inside:
                raise ValueError(f"line {i}: {SOLUTION_END} without {SOLUTION_BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"unterminated {SOLUTION_BEGIN}")
    return "".join(out)


__all__ = ["Exercise", "ExerciseFailed", "check", "exercise", "registry", "strip_solutions"]
