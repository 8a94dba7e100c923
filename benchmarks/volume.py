"""Benchmark of facelab.render.volume: compositing and whole-image volume rendering, fwd + bwd.

Rows (median ms of ``--repeat`` runs, one torch thread unless ``--threads``):

1. **Compositing** of a ray batch (``R`` rays x ``N`` samples, 3 colour channels), forward and
   forward + backward: :func:`composite` (cumulative sum of optical depths) vs
   :func:`composite_reference` (the formula walked sample by sample, the plain loop) measured in
   the same run; ``ratio`` = reference / vectorised.
2. **Images**: ``render_rays`` of a tri-plane field (3 planes x 16 channels at 32 px, the
   32-unit decoder of :mod:`facelab.gan.triplane`) from an EG3D camera at 32 and 64 px,
   16 + 8 and 48 + 48 (EG3D's) samples per ray, batch 1 and 8, forward + backward, with the
   forward time spent in the field (plane lookups + MLP). Rows ``loop`` are the plain
   reference in the same run: the same stratified samples, the field queried one depth at a
   time (a loop over the N samples) and composited front to back by the loop twin
   (:func:`composite_reference`); compare with the vectorised row of the same N (no
   importance samples).

    python benchmarks/volume.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def bench_composite(R: int, N: int, repeat: int) -> dict:
    from facelab.render.volume import composite, composite_reference, intervals_from_depths

    g = torch.Generator().manual_seed(0)
    sigma = (torch.rand(1, R, N, generator=g) * 5).requires_grad_()
    color = torch.rand(1, R, N, 3, generator=g).requires_grad_()
    t = torch.sort(torch.rand(1, R, N, generator=g) + 2.25, -1).values
    d = intervals_from_depths(t, 2.25, 3.3)
    row = {"rays": R, "samples": N}
    for name, fn in (("vectorised", composite), ("loop", composite_reference)):

        def fwd(fn=fn):
            with torch.no_grad():
                fn(sigma, color, t, d)

        def fwdbwd(fn=fn):
            out = fn(sigma, color, t, d)
            (out.color.sum() + out.depth.sum()).backward()

        row[f"{name}_fwd_ms"] = round(_median_ms(fwd, repeat), 3)
        row[f"{name}_fwdbwd_ms"] = round(_median_ms(fwdbwd, repeat), 3)
    row["ratio_fwdbwd"] = round(row["loop_fwdbwd_ms"] / row["vectorised_fwdbwd_ms"], 2)
    return row


def bench_image(res: int, n: int, m: int, B: int, repeat: int) -> dict:
    from facelab.gan.triplane import TriplaneDecoder, sample_triplanes
    from facelab.geometry.eg3d import normalized_intrinsics, orbit_cam2world, pixel_intrinsics
    from facelab.render.volume import camera_rays, render_rays

    torch.manual_seed(0)
    planes = (torch.randn(B, 3, 16, 32, 32) * 0.5).requires_grad_()
    dec = TriplaneDecoder(16, 32, 3)
    c2w = orbit_cam2world(torch.linspace(-0.4, 0.4, B), torch.zeros(B))
    K = pixel_intrinsics(normalized_intrinsics(batch=B), res)
    field_time = [0.0]

    def field(p, d):
        t0 = time.perf_counter()
        out = dec(sample_triplanes(planes, p))
        field_time[0] += time.perf_counter() - t0
        return out

    def run():
        rays = camera_rays(c2w, K, res)
        out = render_rays(field, rays, 2.25, 3.3, n, m)
        (out.color.sum() + out.depth.sum()).backward()

    field_time[0] = 0.0
    ms = _median_ms(run, repeat)
    # field forward share (its backward is inside autograd; reported as forward share only)
    field_fwd_ms = field_time[0] * 1e3 / (repeat + 1)
    return {
        "res": res,
        "batch": B,
        "samples": f"{n}+{m}",
        "points": B * res * res * (n + m),
        "fwdbwd_ms": round(ms, 1),
        "ms_per_image": round(ms / B, 1),
        "field_fwd_ms": round(field_fwd_ms, 1),
        "ns_per_point": round(ms * 1e6 / (B * res * res * (n + m)), 1),
    }


def bench_image_loop(res: int, n: int, B: int, repeat: int) -> dict:
    """The plain reference: one field query per sample depth, loop compositing."""
    from facelab.gan.triplane import TriplaneDecoder, sample_triplanes
    from facelab.geometry.eg3d import normalized_intrinsics, orbit_cam2world, pixel_intrinsics
    from facelab.render.volume import (
        camera_rays,
        composite_reference,
        render_rays,
        stratified_depths,
    )

    torch.manual_seed(0)
    planes = (torch.randn(B, 3, 16, 32, 32) * 0.5).requires_grad_()
    dec = TriplaneDecoder(16, 32, 3)
    c2w = orbit_cam2world(torch.linspace(-0.4, 0.4, B), torch.zeros(B))
    K = pixel_intrinsics(normalized_intrinsics(batch=B), res)

    def loop():
        rays = camera_rays(c2w, K, res)
        Bq, R, _ = rays.origins.shape
        t, edges = stratified_depths(2.25, 3.3, n, (Bq, R), rays.origins)
        sig, col = [], []
        for i in range(n):  # one depth at a time
            pts = rays.origins + t[..., i : i + 1] * rays.directions
            s_i, c_i = dec(sample_triplanes(planes, pts))
            sig.append(s_i)
            col.append(c_i)
        out = composite_reference(torch.stack(sig, -1), torch.stack(col, -2), t, edges.diff(dim=-1))
        (out.color.sum() + out.depth.sum()).backward()

    def vec():
        rays = camera_rays(c2w, K, res)
        out = render_rays(lambda p, d: dec(sample_triplanes(planes, p)), rays, 2.25, 3.3, n, 0)
        (out.color.sum() + out.depth.sum()).backward()

    ms_loop = _median_ms(loop, repeat)
    ms_vec = _median_ms(vec, repeat)
    return {
        "res": res,
        "batch": B,
        "samples": n,
        "loop_ms": round(ms_loop, 1),
        "vectorised_ms": round(ms_vec, 1),
        "ratio": round(ms_loop / ms_vec, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    repeat = a.repeat or (2 if a.quick else 5)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    comp = [
        bench_composite(R, N, repeat)
        for R, N in (
            [(1024, 24), (4096, 96)]
            if a.quick
            else [(1024, 24), (4096, 48), (4096, 96), (16384, 24)]
        )
    ]
    imgs = [
        bench_image(res, n, m, B, repeat)
        for res, n, m, B in (
            [(32, 16, 8, 1), (32, 16, 8, 8)]
            if a.quick
            else [
                (32, 16, 8, 1),
                (32, 16, 8, 8),
                (64, 16, 8, 1),
                (64, 16, 8, 8),
                (32, 48, 48, 1),
                (64, 48, 48, 1),
            ]
        )
    ]
    sizes = [(32, 1)] if a.quick else [(32, 1), (32, 8), (64, 1)]
    loops = [bench_image_loop(res, 24, B, repeat) for res, B in sizes]
    result = {
        "threads": a.threads,
        "load_avg_1min": round(load, 2),
        "composite": comp,
        "image": imgs,
        "image_vs_loop": loops,
    }
    if a.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"# facelab.render.volume  threads={a.threads}  load={load:.2f}  torch {torch.__version__}"
    )
    print("\n## compositing a ray batch (ms, median)")
    print(
        f"{'rays':>6} {'N':>4} {'vec fwd':>8} {'vec f+b':>8} {'loop fwd':>9} {'loop f+b':>9} {'ratio':>6}"
    )
    for r in comp:
        print(
            f"{r['rays']:>6} {r['samples']:>4} {r['vectorised_fwd_ms']:>8.2f} {r['vectorised_fwdbwd_ms']:>8.2f} "
            f"{r['loop_fwd_ms']:>9.2f} {r['loop_fwdbwd_ms']:>9.2f} {r['ratio_fwdbwd']:>6.2f}"
        )
    print("\n## whole images, tri-plane field (16 ch, 32 px planes), fwd + bwd (ms, median)")
    print(
        f"{'res':>4} {'B':>3} {'samples':>8} {'points':>9} {'f+b ms':>8} {'ms/img':>7} {'field fwd':>9} {'ns/pt':>6}"
    )
    for r in imgs:
        print(
            f"{r['res']:>4} {r['batch']:>3} {r['samples']:>8} {r['points']:>9} {r['fwdbwd_ms']:>8.1f} "
            f"{r['ms_per_image']:>7.1f} {r['field_fwd_ms']:>9.1f} {r['ns_per_point']:>6.1f}"
        )
    print("\n## whole images vs the plain loop reference (24 stratified samples, fwd + bwd, ms)")
    print(f"{'res':>4} {'B':>3} {'loop':>8} {'vectorised':>11} {'ratio':>6}")
    for r in loops:
        print(
            f"{r['res']:>4} {r['batch']:>3} {r['loop_ms']:>8.1f} {r['vectorised_ms']:>11.1f} {r['ratio']:>6.2f}"
        )


if __name__ == "__main__":
    main()
