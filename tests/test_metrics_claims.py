"""facelab.metrics.claims: verdicts follow from the numbers and their spread."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.errors import InvalidInput
from facelab.metrics import claim_verdict, claims_table


def test_clear_improvement_holds_and_noise_is_inconclusive():
    rng = np.random.default_rng(0)
    base = rng.normal(2.4, 0.6, 20)
    assert claim_verdict(base - 0.5, base, claim="less").word == "holds"  # paired, exact gap
    # the chapter-5 case: 2.40 vs 2.38 mm over 3 faces with std ~0.6 is noise
    a, b = np.array([2.0, 2.4, 2.8]), np.array([2.7, 1.9, 2.54])
    v = claim_verdict(a, b, claim="greater")
    assert v.word == "inconclusive" and v.n == 3 and v.half_width > abs(v.mean)
    assert claim_verdict(base + 0.5, base, claim="less").word == "fails"


def test_exact_numbers_and_tolerances():
    assert claim_verdict(0.009, 0.0, claim="at_most", tol=0.01).word == "holds"
    assert claim_verdict(12.6, 1.0, claim="at_most", tol=2.0).word == "fails"  # 12.6 % vs ~1 %
    assert claim_verdict(0.5, 0.5, claim="equal", tol=1e-9).word == "holds"
    assert claim_verdict(3.0, 2.0, claim="greater").word == "holds"
    assert claim_verdict(2.0, 2.0, claim="greater").word == "fails"
    # equal with spread: a wide interval around a small mean cannot confirm equality
    assert claim_verdict([0.1, -0.3, 0.4], 0.0, claim="equal", tol=0.05).word == "inconclusive"
    assert claim_verdict([5.0, 5.1, 4.9], 0.0, claim="equal", tol=0.5).word == "fails"
    # three correct pairs of three: no spread, but far too few to confirm 99.38 % accuracy
    assert claim_verdict([1.0, 1.0, 1.0], 0.9938, claim="at_least").word == "holds"
    assert claim_verdict([1.0, 1.0, 1.0], 0.9938, claim="at_least", min_n=20).word == "inconclusive"


def test_require_is_a_check_on_the_prose():
    v = claim_verdict([1.0, 1.1, 0.9], 2.0, claim="less")
    assert v.require("holds") is v
    with pytest.raises(AssertionError, match="text says fails"):
        v.require("fails")
    with pytest.raises(InvalidInput):
        v.require("maybe")
    assert v.describe("mm").startswith("Δ = -1.00 ± 0.12 mm (n = 3")


def test_bad_input():
    with pytest.raises(InvalidInput):
        claim_verdict([1.0, np.nan], 0.0)
    with pytest.raises(InvalidInput):
        claim_verdict([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput):
        claim_verdict(1.0, claim="better")
    with pytest.raises(InvalidInput):
        claim_verdict([], 0.0)


def test_claims_table_needs_computed_verdicts():
    ok = claim_verdict(1.0, 2.0, claim="less")
    bad = claim_verdict(3.0, 2.0, claim="less")
    df = claims_table([("a", "b", "c", ok), ("d", "e", "f", (ok, bad))]).data
    assert list(df["verdict"]) == ["holds", "fails"]
    assert list(df.columns) == ["source", "claim", "our measurement", "verdict"]
    with pytest.raises(InvalidInput):
        claims_table([("a", "b", "c", "holds")])
    with pytest.raises(InvalidInput):
        claims_table([("a", "b", ok)])
