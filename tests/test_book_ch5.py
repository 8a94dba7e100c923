"""Chapter 5 ("Analysis-by-synthesis"): the chapter's small code agrees with facelab.fit.

* the chapter's ``minimal_fit`` cell is ``facelab.exercises.ch5.minimal_fit``, character for
  character (so what the test below checks is what the reader runs);
* the chapter's from-scratch loss cells equal :mod:`facelab.fit.losses` on other inputs;
* the minimal loop and :func:`facelab.fit.fit_photometric`, started from the same landmark fit
  of the same synthetic photo, both move the shape closer to the truth than the mean face.

Uses the small built-in model (no data files).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest
import torch

from facelab.exercises import ch5
from facelab.fit import FitConfig, LandmarkFitConfig, fit_landmarks, fit_photometric, losses
from facelab.fit.photometric import skin_vertex_mask, srgb_to_linear
from facelab.metrics import aligned_vertex_error
from facelab.models import load
from facelab.world import WorldConfig, WorldDataset

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "chapters" / "05_analysis_by_synthesis.md"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def _cells() -> list[str]:
    return [m.group("body") for m in CELL.finditer(CHAPTER.read_text())]


def _cell_defining(name: str) -> str:
    hits = [c for c in _cells() if re.search(rf"^def {name}\(", c, re.MULTILINE)]
    assert len(hits) == 1, f"expected one chapter cell defining {name}, found {len(hits)}"
    return hits[0]


def _function_source(cell: str, name: str) -> str:
    """The text of ``def name(...)`` up to the next top-level statement."""
    lines = cell.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"def {name}("))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t")):
        end += 1
    return "\n".join(lines[start:end]).rstrip() + "\n"


def test_chapter_minimal_fit_is_the_library_copy():
    chapter_src = _function_source(_cell_defining("minimal_fit"), "minimal_fit")
    library_src = textwrap.dedent(inspect.getsource(ch5.minimal_fit))
    assert chapter_src == library_src, (
        "book/chapters/05_analysis_by_synthesis.md's minimal_fit differs from "
        "facelab/exercises/ch5.py's: keep the two identical"
    )


def test_chapter_losses_equal_the_library():
    ns: dict = {"torch": torch}
    exec(compile(_cell_defining("photo_loss"), "ch5:photo_loss", "exec"), ns)  # self-asserts
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(2, 2, 17, 13, 3, generator=g, dtype=torch.float64)
    for mask in (torch.rand(2, 17, 13, generator=g) > 0.3, torch.rand(2, 17, 13, generator=g)):
        for eps in (0.01, 0.2):
            torch.testing.assert_close(
                ns["photo_loss"](a, b, mask, eps), losses.photometric_loss(a, b, mask, eps=eps)
            )
    torch.testing.assert_close(ns["charbonnier"](a - b, 0.05), losses.charbonnier(a - b, 0.05))
    # the landmark term and the prior (defined in the chapter's "Landmarks and priors" cell)
    src = _cell_defining("landmark_term")
    defs = _function_source(src, "landmark_term") + _function_source(src, "gaussian_prior")
    ns2: dict = {"losses": losses}
    exec(compile(defs, "ch5:landmark_term", "exec"), ns2)
    x = 100 * torch.rand(3, 68, 2, generator=g, dtype=torch.float64)
    y = x + torch.randn(x.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ns2["landmark_term"](y, x), losses.landmark_loss(y, x))
    w = torch.randn(4, 9, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ns2["gaussian_prior"](w), losses.gaussian_prior(w))


@pytest.fixture(scope="module")
def setup():
    model = load("builtin")
    cfg = WorldConfig(model="builtin", image_size=96, realism=0.0, yaw_range=(-20.0, 20.0))
    s = WorldDataset(cfg, length=4, seed=7, model=model)[0]
    photo = s["image"][None]
    K = s["K"][None]
    lm2d = s["landmarks2d"][None]
    lf = fit_landmarks(model, lm2d, (96, 96), LandmarkFitConfig(focal=float(s["focal"])))
    gt = model.forward(s["identity"][None], s["expression"][None])

    def err(verts):
        return float(aligned_vertex_error(verts, gt, units_to_mm=10.0)["mean"][0])

    return model, photo, K, lm2d, lf, err


def test_minimal_loop_and_fit_photometric_both_reduce_the_error(setup):
    model, photo, K, lm2d, lf, err = setup
    floor = err(model.mean[None])
    target = srgb_to_linear(photo.permute(0, 2, 3, 1))
    params, log = ch5.minimal_fit(
        model, target, K, lf.params, lm2d, lf.landmark_vertices, skin_vertex_mask(model), steps=60
    )
    assert log["loss"][-1] < 0.5 * log["loss"][0], "the minimal loop did not reduce its energy"
    e_min = err(model.vertices(params))
    ph = fit_photometric(
        model, photo, lm2d, lf.params, K, lf.landmark_vertices, FitConfig(fast=True, progress=False)
    )
    e_lib = err(model.vertices(ph.params))
    assert e_min < floor, f"minimal loop {e_min:.2f} mm is not below the mean face {floor:.2f} mm"
    assert e_lib < floor, (
        f"fit_photometric {e_lib:.2f} mm is not below the mean face {floor:.2f} mm"
    )
    # the two fitters explain the same photo: their shapes are closer to each other than
    # either starting point (the mean face) is to the truth
    between = float(
        aligned_vertex_error(model.vertices(params), model.vertices(ph.params), units_to_mm=10.0)[
            "mean"
        ][0]
    )
    assert between < floor, f"the two fits are {between:.2f} mm apart (floor {floor:.2f} mm)"


def test_minimal_loop_snapshots(setup):
    model, photo, K, lm2d, lf, _ = setup
    target = srgb_to_linear(photo.permute(0, 2, 3, 1))
    _, log = ch5.minimal_fit(
        model, target, K, lf.params, lm2d, lf.landmark_vertices, skin_vertex_mask(model),
        steps=6, snapshot_every=2,
    )  # fmt: skip
    assert [s[0] for s in log["snapshots"]] == [0, 2, 4]
    step, img, cover, alpha, beta = log["snapshots"][-1]
    assert img.shape == (96, 96, 3) and cover.shape == (96, 96) and cover.dtype == torch.bool
    assert alpha.shape == (1, model.n_identity) and not alpha.requires_grad
    assert len(log["loss"]) == 6


def test_parallel_model_parsing_leaves_the_warning_filters_alone():
    """A first (uncached) ICT load parses its OBJ files in a thread pool. The parser's
    ``warnings.catch_warnings`` once interleaved across threads and left
    ``error::DeprecationWarning`` installed, and the chapter's next ``fit_landmarks`` (torch's
    forward-mode AD) crashed on a student's first run."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from facelab.models._files import _parse_floats

    before = list(warnings.filters)
    text = b" ".join(b"1.5 2.5 3.5" for _ in range(20000))
    with ThreadPoolExecutor(4) as pool:
        out = list(pool.map(_parse_floats, [text] * 48 + [b"1 2 x"] * 8))
    assert out[0] is not None and out[0].shape == (60000,) and out[-1] is None
    assert warnings.filters == before
