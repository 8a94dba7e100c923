"""Chapter 10's from-scratch depth warp: it is the code the chapter shows, and it agrees with
facelab.methods.spi.depth_warp."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import torch

from facelab.exercises.ch10 import warp_from_scratch
from facelab.geometry.eg3d import (
    camera_params,
    normalized_intrinsics,
    orbit_cam2world,
    pixel_intrinsics,
)
from facelab.methods.spi import depth_warp

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "chapters" / "10_symmetry_inversion.md"
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
D64 = torch.float64


def _chapter_function_source() -> str:
    for m in CELL.finditer(CHAPTER.read_text()):
        body = m.group("body")
        if "def warp_from_scratch(" in body:
            start = body.index("def warp_from_scratch(")
            end = body.find("\n\n\n", start)
            src = body[start : end if end > 0 else None].strip()
            return src.removesuffix("# fmt: on").strip()
    raise AssertionError("the chapter has no cell defining warp_from_scratch")


def test_chapter_shows_the_tested_code():
    lib = textwrap.dedent(inspect.getsource(warp_from_scratch)).strip()
    assert _chapter_function_source() == lib, (
        "book/chapters/10_symmetry_inversion.md and facelab/exercises/ch10.py disagree: keep "
        "the two copies of warp_from_scratch identical"
    )


def test_from_scratch_agrees_with_the_library():
    ns: dict = {"torch": torch, "F": torch.nn.functional}
    exec(compile(_chapter_function_source(), "ch10:warp_from_scratch", "exec"), ns)
    fn = ns["warp_from_scratch"]
    g = torch.Generator().manual_seed(5)
    yaw = torch.tensor([0.5, -0.2], dtype=D64)
    c2w = orbit_cam2world(yaw, torch.tensor([0.1, -0.05], dtype=D64))
    cams = camera_params(c2w, normalized_intrinsics(batch=2, dtype=D64))
    K = pixel_intrinsics(normalized_intrinsics(batch=2, dtype=D64), 16)
    depth = 2.4 + 0.3 * torch.rand(1, 16, 16, generator=g, dtype=D64)
    src = torch.rand(1, 3, 16, 16, generator=g, dtype=D64)
    img, z = fn(src[0], depth[0], c2w[1], K[1], c2w[0], K[0])
    ref = depth_warp(src, depth, cams[1:], cams[:1])
    torch.testing.assert_close(img, ref.image[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(z, ref.z[0], rtol=0, atol=1e-12)
