"""Gallery of the synthetic world: a PNG grid of samples at several realism levels.

Rows are realism levels (default 0, 0.5, 1), columns are samples (the same sample index in
every row, so a column shows one set of parameters under the three image models). With
``--ground-truth`` a second figure shows, for the first samples, the photo, face mask, depth,
normals and the 2D landmarks (visible green, hidden red).

    python scripts/world_gallery.py --out book/_static/world_gallery.png
    python scripts/world_gallery.py --model ict-face --size 192 --cols 5 --out gallery_ict.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from facelab.world.gallery import gallery, ground_truth_figure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="world_gallery.png")
    p.add_argument("--model", default="builtin")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--cols", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first sample index")
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    p.add_argument("--ground-truth", action="store_true", help="also write <out>_gt.png")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    gallery(a.model, a.size, a.cols, a.seed, tuple(a.levels), a.start).save(out)
    print(f"wrote {out}")
    if a.ground_truth:
        gt = out.with_name(out.stem + "_gt" + out.suffix)
        ground_truth_figure(a.model, a.size, min(3, a.cols), a.seed).save(gt)
        print(f"wrote {gt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
