"""Chapter 4's from-scratch rasterizer: it is the code the chapter shows, and it agrees with
facelab's rasterizer and with the loop-based reference."""

from __future__ import annotations

import inspect
import math
import re
import textwrap
from pathlib import Path

import pytest
import torch

from facelab.exercises.ch4 import rasterize_from_scratch
from facelab.geometry.camera import intrinsics, pose_to_camera, project_depth
from facelab.render import rasterize, rasterize_reference
from facelab.render.shapes import ico_sphere

CHAPTER = (
    Path(__file__).resolve().parents[1] / "book" / "chapters" / "04_differentiable_rendering.md"
)
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def _chapter_function_source() -> str:
    for m in CELL.finditer(CHAPTER.read_text()):
        body = m.group("body")
        if "def rasterize_from_scratch(" in body:
            start = body.index("def rasterize_from_scratch(")
            return body[start:].strip()
    raise AssertionError("the chapter has no cell defining rasterize_from_scratch")


def _library_function_source() -> str:
    return textwrap.dedent(inspect.getsource(rasterize_from_scratch)).strip()


def test_chapter_shows_the_tested_code():
    assert _chapter_function_source() == _library_function_source(), (
        "book/chapters/04_differentiable_rendering.md and facelab/exercises/ch4.py disagree: "
        "keep the two copies of rasterize_from_scratch identical"
    )


def test_chapter_cell_runs_and_matches_the_module():
    ns: dict = {"torch": torch}
    exec(compile(_chapter_function_source(), "ch4:rasterize_from_scratch", "exec"), ns)
    verts, faces = _sphere_scene(32)
    a = ns["rasterize_from_scratch"](verts[0], faces, 32, 32)
    b = rasterize_from_scratch(verts[0], faces, 32, 32)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _sphere_scene(size: int, dtype=torch.float32, seed: int = 0):
    """A sphere posed in front of a camera at a generic (random) pose, in screen space."""
    g = torch.Generator().manual_seed(seed)
    v, f = ico_sphere(2, dtype=dtype)
    rot = (0.5 * torch.randn(1, 3, generator=g)).to(dtype)
    tr = torch.tensor([[0.05, -0.03, 4.0]], dtype=dtype)
    fx = 0.5 * size / math.tan(math.radians(20))
    K = intrinsics(fx, fx, size / 2 + 0.123, size / 2 - 0.077).to(dtype)
    return project_depth(pose_to_camera(v[None], rot, tr), K), f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_scratch_agrees_with_rasterize(seed):
    verts, faces = _sphere_scene(48, torch.float64, seed)
    p2f, bary, depth = rasterize_from_scratch(verts[0], faces, 48, 48)
    frags = rasterize(verts, faces, 48)
    assert (frags.mask[0]).any()
    torch.testing.assert_close(p2f, frags.pix_to_face[0], rtol=0, atol=0)
    torch.testing.assert_close(bary, frags.bary[0].detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(depth, frags.zbuf[0].detach(), rtol=0, atol=1e-10)


def test_from_scratch_agrees_with_the_loop_reference():
    verts, faces = _sphere_scene(12, torch.float64, 3)
    p2f, bary, depth = rasterize_from_scratch(verts[0], faces, 12, 12)
    ref_p2f, ref_bary, ref_z = rasterize_reference(verts, faces, 12)
    torch.testing.assert_close(p2f, ref_p2f[0], rtol=0, atol=0)
    torch.testing.assert_close(bary, ref_bary[0], rtol=0, atol=1e-10)
    torch.testing.assert_close(depth, ref_z[0], rtol=0, atol=1e-10)


def test_from_scratch_handles_background_behind_and_chunks():
    # one triangle in front, one behind the camera (dropped), and a chunk smaller than a row
    verts = torch.tensor(
        [
            [1.0, 1.0, 2.0],
            [7.0, 1.5, 2.0],
            [2.0, 6.0, 2.0],
            [0, 0, -1.0],
            [8, 0, -1.0],
            [0, 8, -1.0],
        ]
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    p2f, bary, depth = rasterize_from_scratch(verts, faces, 8, 8, chunk=5)
    ref_p2f, ref_bary, ref_z = rasterize_reference(verts[None], faces, 8)
    torch.testing.assert_close(p2f, ref_p2f[0], rtol=0, atol=0)
    torch.testing.assert_close(bary, ref_bary[0])
    torch.testing.assert_close(depth, ref_z[0])
    assert (p2f == -1).any() and not (p2f == 1).any()
    assert bool((depth[p2f < 0] == -1).all()) and bool((bary[p2f < 0] == 0).all())
