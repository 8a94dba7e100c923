"""Chapter 9's from-scratch volume renderer: it is the code the chapter shows, and it agrees
with facelab.render.volume."""

from __future__ import annotations

import inspect
import math
import re
import textwrap
from pathlib import Path

import torch

from facelab.exercises.ch9 import render_ray_from_scratch
from facelab.render.volume import Rays, render_rays

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "chapters" / "09_volume_3d_gan.md"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
D64 = torch.float64


def _chapter_function_source() -> str:
    for m in CELL.finditer(CHAPTER.read_text()):
        body = m.group("body")
        if "def render_ray_from_scratch(" in body:
            start = body.index("def render_ray_from_scratch(")
            end = body.find("\n\n\n", start)
            src = body[start : end if end > 0 else None].strip()
            return src.removesuffix("# fmt: on").strip()
    raise AssertionError("the chapter has no cell defining render_ray_from_scratch")


def test_chapter_shows_the_tested_code():
    lib = textwrap.dedent(inspect.getsource(render_ray_from_scratch)).strip()
    assert _chapter_function_source() == lib, (
        "book/chapters/09_volume_3d_gan.md and facelab/exercises/ch9.py disagree: keep the two "
        "copies of render_ray_from_scratch identical"
    )


def _blob(p):
    s = 4.0 * torch.exp(-((p - p.new_tensor([0.1, 0.0, 2.0])) ** 2).sum(-1) / 0.05)
    return s, torch.stack([torch.sigmoid(3 * p[..., 2] - 6), p[..., 0] + 0.5], -1)


def test_from_scratch_agrees_with_the_library():
    o = torch.tensor([0.0, 0.0, 0.0], dtype=D64)
    d = torch.nn.functional.normalize(torch.tensor([0.05, 0.0, 1.0], dtype=D64), dim=0)
    ns: dict = {"torch": torch}
    exec(compile(_chapter_function_source(), "ch9:render_ray_from_scratch", "exec"), ns)
    col, depth, opa = ns["render_ray_from_scratch"](_blob, o, d, 1.0, 3.0, 64)
    rays = Rays(o.view(1, 1, 3), d.view(1, 1, 3), torch.ones(1, 1, dtype=D64))
    lib = render_rays(lambda p, _d: _blob(p), rays, 1.0, 3.0, 64, 0, perturb=False)
    torch.testing.assert_close(col, lib.color[0, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(depth, lib.depth[0, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(opa, lib.opacity[0, 0], rtol=0, atol=1e-12)
    # and the slab case is exact: opacity 1 - exp(-sigma L)
    slab = lambda p: (torch.where((p[..., 2] > 1.5) & (p[..., 2] < 2.0), 2.0, 0.0).to(p), p * 0 + 1)  # noqa: E731
    _, _, opa = render_ray_from_scratch(
        slab, o, torch.tensor([0.0, 0.0, 1.0], dtype=D64), 1.0, 3.0, 40
    )
    assert abs(float(opa) - (1 - math.exp(-1.0))) < 1e-12
