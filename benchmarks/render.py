"""Speed and memory of facelab's rasterizer and Lambert-SH renderer (printed tables, ``--json``).

    python benchmarks/render.py                 # ICT face + full head, 128/256/512 px, batch 1/8
    python benchmarks/render.py --quick         # 256 px, batch 1, face only
    python benchmarks/render.py --json          # machine-readable rows

With CUDA present, every configuration is also timed on the GPU (a ``cuda`` row). The
before/after rows (issue 12: one render path) time the pre-refactor code paths, kept in this
file only, against the library's, in the same run: ``Renderer.render`` and the fitter's
``render_face``, forward+backward, and print after/before ratios (< 1 = faster now).

Meshes: the ICT-FaceKit neutral mesh (``FACELAB_DATA`` / the asset registry): its **face**
region (vertices 0-9408: 9,409 vertices, 18,461 triangles) and the **full** mesh (26,719
vertices, 52,220 triangles: head, neck, mouth socket, teeth, eyes...). Without the asset, an
ico-sphere of similar size stands in (said in the table). The mesh is seen frontally and spans
~85 % of the image height.

Per configuration (mesh, image size, batch, torch threads): median wall time of

* ``raster``: :func:`facelab.render.rasterize` alone (forward, no grad),
* ``fwd``: :class:`facelab.render.Renderer` — rasterize, fused interpolation of normals,
  positions and vertex colours, Lambertian SH shading, scatter to ``(B, 3, H, W)``,
* ``fwd+bwd``: the same plus ``image.sum().backward()`` to vertices, colours and SH,

and the **peak memory** of one forward+backward (the high-water mark of live tensor memory,
replayed from the profiler's allocation events on CPU; ``torch.cuda.max_memory_allocated`` on
CUDA), summarised per mesh by a least-squares fit
``peak = batch x (MB per image + bytes per pixel x H x W)`` and its worst residual: the check
that memory is linear in batch x pixels. References measured in the same
run: a dense faces x pixels rasterizer (the cost model of PyTorch3D's naive CPU kernel, chunked,
at 64 px only) and PyTorch3D's ``rasterize_meshes`` when it is installed. The issue's target:
256 px ICT face, Lambert-SH, forward+backward < 30 ms on 2 cores. Thread count and
``os.getloadavg()`` are printed: these 2-core machines are shared, and 2 threads on a busy
machine can be many times slower than 1 (see ``shared/notes/performance.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facelab.geometry.camera import Camera  # noqa: E402
from facelab.render import Renderer, rasterize, sh_ambient  # noqa: E402

TARGET_MS = 30.0


def load_mesh(which: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(verts (V, 3), faces (F, 3), description)`` of the ``face`` or ``full`` ICT mesh."""
    try:
        from facelab.data import find_file
        from facelab.geometry.io import load_obj

        mesh = load_obj(find_file("ict-facekit", "FaceXModel/generic_neutral_mesh.obj"))
        v, f = mesh.verts, mesh.faces
        if which == "face":
            f = f[(f < 9409).all(1)]
            v = v[:9409]
        name = f"ICT {which}"
    except Exception as e:  # AssetMissing, or an older tree without the loader
        from facelab.render.shapes import ico_sphere

        v, f = ico_sphere(5 if which == "face" else 6)
        name = f"ico-sphere stand-in ({type(e).__name__}: ICT asset not found)"
    return v.float(), f.long(), name


def camera_for(v: torch.Tensor, size: int, batch: int, device) -> tuple[Camera, torch.Tensor]:
    """A frontal camera (model space = world) framing ``v``; returns (camera, centred verts)."""
    lo, hi = v.amin(0), v.amax(0)
    v = v - (lo + hi) / 2
    extent = float((hi - lo)[:2].max())
    fov = 15.0
    dist = extent / 0.85 / (2 * math.tan(math.radians(fov / 2))) + float(hi[2] - lo[2])
    cam = Camera.frontal(distance=dist, image_size=size, batch=batch, fov_degrees=fov)
    return cam.to(device), v.to(device)


def _inputs(v, f, size, batch, device):
    cam, vc = camera_for(v, size, batch, device)
    verts = vc.unsqueeze(0).repeat(batch, 1, 1)
    sh = sh_ambient(0.7, batch=batch, device=device)
    sh[:, 1:4] = 0.3
    col = torch.full_like(verts, 0.7)
    return cam, verts, sh, col


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, reps: int, device) -> float:
    fn()  # warm-up
    _sync(device)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        _sync(device)
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def run_once(v, f, size, batch, device, renderer_backend="torch"):
    """One forward+backward; returns the number of covered pixels."""
    cam, verts, sh, col = _inputs(v, f, size, batch, device)
    verts.requires_grad_(True)
    sh.requires_grad_(True)
    col.requires_grad_(True)
    r = Renderer(size, backend=renderer_backend)
    out = r.render(verts, f.to(device), camera=cam, sh=sh, vertex_colors=col)
    out.image.sum().backward()
    return int(out.fragments.pix.numel())


def time_config(v, f, size, batch, device, reps, backend="torch") -> dict:
    cam, verts, sh, col = _inputs(v, f, size, batch, device)
    fd = f.to(device)
    r = Renderer(size, backend=backend)
    screen = cam.to_screen(verts)
    if backend == "torch":
        t_r = _median_ms(lambda: rasterize(screen, fd, size, cull_backfaces=True), reps, device)
    else:
        from facelab.render.backends import rasterize_pytorch3d

        t_r = _median_ms(
            lambda: rasterize_pytorch3d(screen, fd, size, cull_backfaces=True), reps, device
        )

    def fwd():
        with torch.no_grad():
            return r.render(verts, fd, camera=cam, sh=sh, vertex_colors=col)

    vg, shg, colg = (t.clone().requires_grad_(True) for t in (verts, sh, col))

    def fwd_bwd():
        out = r.render(vg, fd, camera=cam, sh=shg, vertex_colors=colg)
        out.image.sum().backward()

    t_f = _median_ms(fwd, reps, device)
    t_fb = _median_ms(fwd_bwd, reps, device)
    covered = int(fwd().fragments.pix.numel())
    return {"raster_ms": t_r, "fwd_ms": t_f, "fwd_bwd_ms": t_fb, "covered_pixels": covered}


def peak_memory_mb(fn) -> float:
    """Peak of live tensor memory (MB) during ``fn()`` on CPU, from the profiler's memory events.

    Allocations are the positive ``self_cpu_memory_usage`` of each op, frees the profiler's
    ``[memory]`` events; replaying them in time order gives the high-water mark above the
    memory live before ``fn`` (inputs that already exist are not counted).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []
    for e in prof.events():
        m = e.cpu_memory_usage if e.name == "[memory]" else max(e.self_cpu_memory_usage, 0)
        if m:
            events.append((e.time_range.start, m))
    events.sort()
    cur = peak = 0
    for _, m in events:
        cur += m
        peak = max(peak, cur)
    return peak / 1e6


def memory_config(v, f, size, batch, device, backend="torch") -> float:
    """Peak memory (MB) of one forward+backward (``torch.cuda.max_memory_allocated`` on CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_once(v, f, size, batch, device, backend)
        return (torch.cuda.max_memory_allocated() - base) / 1e6
    return peak_memory_mb(lambda: run_once(v, f, size, batch, device, backend))


def memory_model(rows: list[dict]) -> list[dict]:
    """Check "memory linear in batch x pixels": per mesh, least-squares fit of
    ``peak = B * (a + b * H * W)`` (``a``: per-image vertex/face buffers, ``b``: per-pixel
    buffers) over the measured configurations, with the worst relative residual. Rows are
    deduplicated over thread counts (memory is measured once per configuration)."""
    groups: dict[tuple, dict[tuple, float]] = {}
    for r in rows:
        if math.isfinite(r["peak_mb"]):
            key = (r["mesh"], r["backend"], r["device"])
            groups.setdefault(key, {})[(r["size"], r["batch"])] = r["peak_mb"]
    fits = []
    for (mesh, backend, device), pts in groups.items():
        if len({s for s, _ in pts}) < 2:
            continue  # one image size: the per-pixel slope is not identifiable
        X = torch.tensor([[b, b * s * s] for s, b in pts], dtype=torch.float64)
        y = torch.tensor(list(pts.values()), dtype=torch.float64)
        coef = torch.linalg.lstsq(X, y.unsqueeze(1)).solution[:, 0]
        rel = ((X @ coef - y) / y).abs().max()
        fits.append({"mesh": mesh, "backend": backend, "device": device, "points": len(pts),
                     "mb_per_image": float(coef[0]), "bytes_per_pixel": float(coef[1]) * 1e6,
                     "max_rel_residual": float(rel)})  # fmt: skip
    return fits


def dense_reference_ms(v, f, size: int) -> float:
    """Coverage + depth test of every (face, pixel) pair in chunks: cost ~ faces x pixels."""
    cam, vc = camera_for(v, size, 1, torch.device("cpu"))
    s = cam.to_screen(vc.unsqueeze(0))[0]
    t = s[f]  # (F, 3, 3)
    jj, ii = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="xy")
    px, py = jj.reshape(1, -1), ii.reshape(1, -1)

    def run():
        zbest = torch.full((size * size,), float("inf"))
        for c in range(0, len(t), 512):
            x, y, z = (t[c : c + 512, :, k] for k in range(3))
            area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (
                y[:, 1] - y[:, 0]
            )
            w = []
            for k in range(3):
                a, b = (k + 1) % 3, (k + 2) % 3
                e = (x[:, b:b+1] - x[:, a:a+1]) * (py - y[:, a:a+1]) - (y[:, b:b+1] - y[:, a:a+1]) * (px - x[:, a:a+1])  # fmt: skip
                w.append(e / area.unsqueeze(1))
            inside = (w[0] >= 0) & (w[1] >= 0) & (w[2] >= 0)
            depth = 1 / (w[0] / z[:, :1] + w[1] / z[:, 1:2] + w[2] / z[:, 2:3])
            depth = torch.where(inside, depth, torch.full_like(depth, float("inf")))
            zbest = torch.minimum(zbest, depth.amin(0))
        return zbest

    return _median_ms(run, 1, torch.device("cpu"))


# --------------------------------------------------------------------------------------------
# Before / after issue 12 (one render path), measured in the same run. The "before" code is
# kept here, and only here, so the ratio stays measurable.


def _vertex_normals_before(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The renderer's private copy of vertex normals before issue 12 (now geometry.mesh's)."""
    B, V, _ = verts.shape
    a, b, c = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    x1, y1, z1 = (b - a).unbind(-1)
    x2, y2, z2 = (c - a).unbind(-1)
    n = torch.stack([y1 * z2 - z1 * y2, z1 * x2 - x1 * z2, x1 * y2 - y1 * x2], -1)
    idx = faces.T.reshape(1, -1) + V * torch.arange(B, device=verts.device).unsqueeze(1)
    acc = verts.new_zeros(B * V, 3).index_add(0, idx.reshape(-1), n.repeat(1, 3, 1).reshape(-1, 3))
    return torch.nn.functional.normalize(acc.view(B, V, 3), dim=-1, eps=1e-12)


def _render_face_before(verts_cam, faces, albedo, light, K, image_size):
    """fit.render.render_face before issue 12: its own dense project/rasterize/interpolate/shade."""
    from facelab.geometry.camera import project_depth
    from facelab.geometry.mesh import vertex_normals
    from facelab.render import interpolate
    from facelab.render.shading import sh_shading

    frags = rasterize(project_depth(verts_cam, K), faces, image_size, cull_backfaces=True)
    attrs = torch.cat([albedo, vertex_normals(verts_cam, faces)], -1)
    buf = interpolate(attrs, frags, faces)
    alb, nrm = buf[..., :3], buf[..., 3:]
    nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return alb * sh_shading(nrm, light) * frags.mask[..., None]


def before_after(v, f, size: int, batch: int, device, reps: int) -> list[dict]:
    """Median fwd+bwd ms of the old and the new code paths, same inputs, same run."""
    import facelab.render.renderer as renderer_mod
    from facelab.fit.render import render_face

    cam, verts, sh, col = _inputs(v, f, size, batch, device)
    fd = f.to(device)
    vc = cam.to_camera(verts)
    K = cam.K
    rows = []

    def renderer_fb():
        vg, shg, cg = (t.clone().requires_grad_(True) for t in (verts, sh, col))
        out = Renderer(size).render(vg, fd, camera=cam, sh=shg, vertex_colors=cg)
        out.image.sum().backward()

    new = _median_ms(renderer_fb, reps, device)
    orig = renderer_mod.vertex_normals
    renderer_mod.vertex_normals = _vertex_normals_before
    try:
        old = _median_ms(renderer_fb, reps, device)
    finally:
        renderer_mod.vertex_normals = orig
    rows.append({"path": "Renderer.render", "before_ms": old, "after_ms": new})

    def face_fb(fn):
        def run():
            vg, shg, cg = (t.clone().requires_grad_(True) for t in (vc, sh, col))
            img = fn(vg, fd, cg, shg, K, (size, size))
            (img.image if hasattr(img, "image") else img).sum().backward()

        return run

    old = _median_ms(face_fb(_render_face_before), reps, device)
    new = _median_ms(face_fb(render_face), reps, device)
    rows.append({"path": "fit render_face", "before_ms": old, "after_ms": new})
    for r in rows:
        r.update(size=size, batch=batch, device=device.type, ratio=r["after_ms"] / r["before_ms"])
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--meshes", nargs="+", default=["face", "full"], choices=["face", "full"])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="256 px, batch 1, face, 1 thread")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    ap.add_argument("--no-reference", action="store_true", help="skip the dense reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--no-compare", action="store_true", help="skip the before/after (issue 12) ratios"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.threads, args.meshes = [256], [1], [1], ["face"]
    devices = [torch.device(args.device)]
    if args.device == "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    from facelab.render import pytorch3d_available

    backends = ["torch"] + (["pytorch3d"] if pytorch3d_available() else [])
    rows, meshes = [], {}
    load0 = os.getloadavg()
    for which in args.meshes:
        meshes[which] = load_mesh(which)
    for which in args.meshes:
        v, f, name = meshes[which]
        for device in devices:
            for backend in backends:
                for size in args.sizes:
                    for batch in args.batches:
                        mem = float("nan")
                        if not args.no_memory:
                            torch.set_num_threads(1)
                            mem = memory_config(v, f, size, batch, device, backend)
                        for th in args.threads if device.type == "cpu" else [1]:
                            torch.set_num_threads(th)
                            r = time_config(v, f, size, batch, device, args.reps, backend)
                            r.update(mesh=name, verts=len(v), faces=len(f), size=size,
                                     batch=batch, threads=th, device=device.type,
                                     backend=backend, peak_mb=mem,
                                     load=os.getloadavg()[0])  # fmt: skip
                            rows.append(r)
                            if not args.json:
                                _print_row(r, header=len(rows) == 1)
    refs = []
    if not args.no_reference and "face" in meshes:
        torch.set_num_threads(1)
        v, f, name = meshes["face"]
        dense = dense_reference_ms(v, f, 64)
        ours = time_config(v, f, 64, 1, torch.device("cpu"), args.reps)["raster_ms"]
        refs.append({"reference": "dense faces x pixels rasterizer (chunked)", "mesh": name,
                     "size": 64, "ref_ms": dense, "ours_ms": ours, "ratio": dense / ours})  # fmt: skip
    target = next(
        (r for r in rows if r["size"] == 256 and r["batch"] == 1 and r["threads"] == 1
         and r["mesh"].startswith("ICT face") and r["backend"] == "torch" and r["device"] == "cpu"),
        None,
    )  # fmt: skip
    compare = []
    if not args.no_compare:
        torch.set_num_threads(1)
        wh = "face" if "face" in meshes else next(iter(meshes))
        v, f, _ = meshes[wh]
        for device in devices:
            for size in sorted({256} & set(args.sizes)) or args.sizes[:1]:
                compare += before_after(v, f, size, 1, device, args.reps)
    memory_fits = [] if args.no_memory else memory_model(rows)
    summary = {
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "pytorch3d": pytorch3d_available(),
        "target_ms": TARGET_MS,
        "target_row_fwd_bwd_ms": target["fwd_bwd_ms"] if target else None,
        "target_met": (target["fwd_bwd_ms"] < TARGET_MS) if target else None,
        "memory_model": memory_fits,
        "before_after": compare,
    }
    if args.json:
        print(json.dumps({"rows": rows, "references": refs, "summary": summary}, indent=2))
        return 0
    for m in memory_fits:
        print(f"\npeak memory {m['mesh']} ({m['backend']}, {m['device']}): "
              f"{m['mb_per_image']:.1f} MB/image + {m['bytes_per_pixel']:.0f} B/pixel x batch "
              f"(least squares over {m['points']} configurations; worst relative residual "
              f"{100 * m['max_rel_residual']:.1f} %)")  # fmt: skip
    for c in compare:
        print(f"\nbefore/after issue 12, {c['path']} fwd+bwd ({c['device']}, {c['size']} px, "
              f"B {c['batch']}, 1 thread): {c['before_ms']:.1f} -> {c['after_ms']:.1f} ms, "
              f"ratio {c['ratio']:.2f}")  # fmt: skip
    for ref in refs:
        print(f"\nreference: {ref['reference']} on {ref['mesh']} at {ref['size']} px: "
              f"{ref['ref_ms']:.0f} ms vs facelab rasterize {ref['ours_ms']:.1f} ms "
              f"-> {ref['ratio']:.0f}x faster")  # fmt: skip
    print(f"\ntorch {summary['torch']}, {summary['cpu_count']} CPUs, load average "
          f"{load0[0]:.2f} -> {summary['loadavg_end'][0]:.2f}; PyTorch3D installed: "
          f"{summary['pytorch3d']}")  # fmt: skip
    if target:
        ok = "met" if summary["target_met"] else "NOT met"
        print(f"target (256 px ICT face, Lambert-SH, fwd+bwd < {TARGET_MS:.0f} ms, 1 thread): "
              f"{target['fwd_bwd_ms']:.1f} ms -> {ok}")  # fmt: skip
    return 0


def _print_row(r: dict, header: bool) -> None:
    if header:
        print(f"{'mesh':<10} {'V':>6} {'F':>6} {'dev':>4} {'backend':>9} {'size':>5} {'B':>2} "
              f"{'thr':>3} {'covered':>8} {'raster':>8} {'fwd':>8} {'fwd+bwd':>8} "
              f"{'peak MB':>8} {'load':>5}")  # fmt: skip
    mesh = r["mesh"] if len(r["mesh"]) <= 10 else r["mesh"][:10]
    print(f"{mesh:<10} {r['verts']:>6} {r['faces']:>6} {r['device']:>4} {r['backend']:>9} "
          f"{r['size']:>5} {r['batch']:>2} {r['threads']:>3} {r['covered_pixels']:>8} "
          f"{r['raster_ms']:>8.1f} {r['fwd_ms']:>8.1f} {r['fwd_bwd_ms']:>8.1f} "
          f"{r['peak_mb']:>8.1f} {r['load']:>5.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
