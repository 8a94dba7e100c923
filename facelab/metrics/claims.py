"""Verdicts for "paper claim vs our reproduction" tables, computed from numbers and their spread.

Every chapter ends its experiments with a table of what a paper claims and what we measured.
The verdict word in that table must follow from the numbers, not from the author's hopes, and
the prose must agree with it in every mode the book is built in (FAST or default). So:

* :func:`claim_verdict` turns measurements into a :class:`Verdict`: ``"holds"``, ``"fails"``
  or ``"inconclusive"`` (the spread is too large to tell), from the mean of the measured
  differences and a ``z``-standard-error interval (``z = 2``: about 95 %);
* :meth:`Verdict.require` is the test-like check a chapter runs before its prose states a
  verdict: it raises ``AssertionError`` (failing the book build) if the numbers say otherwise;
* :func:`claims_table` makes the table (``source``, ``claim``, ``our measurement``,
  ``verdict``); it refuses rows whose verdict is a hand-written string.

Example::

    v = claim_verdict(photometric_mm, landmark_mm, claim="less")  # paired, per face
    v.require("holds", "inconclusive")  # what the prose below is written to cover
    claims_table([("Deng et al. 2019", "pixels add to landmarks", v.describe("mm"), v)])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInput

__all__ = ["CLAIMS", "VERDICTS", "Verdict", "claim_verdict", "claims_table"]

VERDICTS = ("holds", "fails", "inconclusive")
CLAIMS = ("less", "greater", "equal", "at_most", "at_least")


@dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim against measurements.

    Attributes:
        word: ``"holds"``, ``"fails"`` or ``"inconclusive"``.
        claim: the kind of claim tested (one of :data:`CLAIMS`).
        mean: mean of the measured quantity (minus the reference / the paired values).
        half_width: ``z`` standard errors of that mean (0 for one exact number).
        n: number of measurements.
        tol: the tolerance of the claim (``equal``: ``|d| <= tol``; others: the margin).
    """

    word: str
    claim: str
    mean: float
    half_width: float
    n: int
    tol: float = 0.0

    def __str__(self) -> str:
        return self.word

    def describe(self, unit: str = "", digits: int = 2) -> str:
        """``"Δ = -0.12 ± 0.05 mm (n = 20, 2 s.e.)"``: the difference and its interval."""
        u = f" {unit}" if unit else ""
        if self.n <= 1 or self.half_width == 0.0:
            return f"Δ = {self.mean:+.{digits}f}{u} (n = {self.n})"
        return f"Δ = {self.mean:+.{digits}f} ± {self.half_width:.{digits}f}{u} (n = {self.n})"

    def require(self, *allowed: str) -> Verdict:
        """Assert that the verdict is one of ``allowed`` (what the prose says); return self."""
        bad = [a for a in allowed if a not in VERDICTS]
        if not allowed or bad:
            raise InvalidInput(f"require() takes verdicts from {VERDICTS}, got {allowed}")
        if self.word not in allowed:
            raise AssertionError(
                f"the claim ({self.claim}) {self.word} on these numbers "
                f"({self.describe()}, tol {self.tol:g}), but the text says {' or '.join(allowed)}"
            )
        return self


def _values(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise InvalidInput(f"claim_verdict: {name} is empty")
    if not np.isfinite(arr).all():
        raise InvalidInput(
            f"claim_verdict: {name} has NaN/inf values (count failures as failures "
            "with a finite penalty, or drop them explicitly and say so)"
        )
    return arr


def claim_verdict(
    measured: Any,
    reference: Any = 0.0,
    *,
    claim: str = "less",
    tol: float = 0.0,
    z: float = 2.0,
    min_n: int = 1,
) -> Verdict:
    """Test a claim about ``measured`` against ``reference`` with the measurements' spread.

    Args:
        measured: one number (exact) or a sample (one value per face/photo/run).
        reference: a number, or a sample of the same length **paired** with ``measured``
            (the claim is about the per-item differences ``measured - reference``).
        claim: ``"less"`` (measured < reference), ``"greater"``, ``"equal"`` (within
            ``tol``), ``"at_most"`` (measured <= reference + tol), ``"at_least"``
            (measured >= reference - tol).
        tol: tolerance (``equal``) or margin (``less``/``greater`` need the difference to
            exceed it; ``at_most``/``at_least`` allow it).
        z: width of the interval in standard errors of the mean difference.
        min_n: fewer measurements than this are ``"inconclusive"`` whatever they show (e.g.
            three all-correct pairs cannot confirm a 99.4 % accuracy: their spread is 0).

    Returns:
        a :class:`Verdict`. With ``d`` the differences, ``m`` their mean and
        ``h = z * std(d) / sqrt(n)`` (0 for one number): ``less`` holds if ``m + h < -tol``,
        fails if ``m - h >= 0``; ``equal`` holds if ``|m| + h <= tol``, fails if
        ``|m| - h > tol``; ``at_most`` holds if ``m + h <= tol``, fails if ``m - h > tol``;
        everything in between is ``"inconclusive"``.
    """
    if claim not in CLAIMS:
        raise InvalidInput(f"claim must be one of {CLAIMS}, got {claim!r}")
    if tol < 0 or z < 0:
        raise InvalidInput(f"tol and z must be >= 0, got tol={tol}, z={z}")
    a = _values(measured, "measured")
    b = _values(reference, "reference")
    if b.size not in (1, a.size):
        raise InvalidInput(
            f"claim_verdict: reference has {b.size} values for {a.size} measurements "
            "(give one number or a paired sample)"
        )
    d = a - b
    n = int(d.size)
    m = float(d.mean())
    h = float(z * d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    if claim in ("less", "greater"):
        m_ = -m if claim == "greater" else m
        word = "holds" if m_ + h < -tol else "fails" if m_ - h >= 0 else "inconclusive"
    elif claim == "equal":
        word = "holds" if abs(m) + h <= tol else "fails" if abs(m) - h > tol else "inconclusive"
    else:  # at_most / at_least
        m_ = m if claim == "at_most" else -m
        word = "holds" if m_ + h <= tol else "fails" if m_ - h > tol else "inconclusive"
    if n < min_n:
        word = "inconclusive"
    return Verdict(word=word, claim=claim, mean=m, half_width=h, n=n, tol=float(tol))


def claims_table(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str] = ("source", "claim", "our measurement", "verdict"),
) -> Any:
    """A "paper claim vs our reproduction" table (a pandas Styler without the index).

    Each row ends with its :class:`Verdict` (computed by :func:`claim_verdict`), or a tuple of
    verdicts for a claim with several parts (the row holds only if every part holds, fails if
    any part fails). A hand-written verdict string is refused.
    """
    import pandas as pd

    out = []
    for row in rows:
        row = list(row)
        if len(row) != len(columns):
            raise InvalidInput(f"claims_table: row has {len(row)} cells, expected {len(columns)}")
        v = row[-1]
        parts = list(v) if isinstance(v, tuple | list) else [v]
        if not parts or not all(isinstance(p, Verdict) for p in parts):
            raise InvalidInput(
                "claims_table: the last cell must be a Verdict from claim_verdict "
                f"(computed from the numbers), got {v!r}"
            )
        words = [p.word for p in parts]
        word = (
            "fails" if "fails" in words else "holds" if set(words) == {"holds"} else "inconclusive"
        )
        out.append([*row[:-1], word])
    return pd.DataFrame(out, columns=list(columns)).style.hide(axis="index")
