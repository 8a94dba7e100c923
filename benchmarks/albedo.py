"""Benchmark of the procedural UV albedo (facelab.models.albedo), and a PNG grid of samples.

    python benchmarks/albedo.py                       # table
    python benchmarks/albedo.py --json                # machine-readable
    python benchmarks/albedo.py --png grid.png        # also save a 4x4 grid of samples (sRGB)
    python benchmarks/albedo.py --png g.png --only-png --rows 3 --cols 6 --seed 7

Measures (median of ``--repeat`` runs, torch single-threaded unless ``--threads``):
- ``sample``: ``ProceduralAlbedo.sample(B)`` at S, with and without detail;
- ``reference``: the direct twin of the colour step — the spectral skin model evaluated per
  texel (``skin_reflectance`` on B*S*S texels, 31 wavelengths) instead of the per-sample
  lookup table the generator uses; the ratio shows what the table buys;
- ``pca fit``: ``AlbedoPCA.fit`` of N smooth samples (Gram path) and ``project``/``forward``;
- ``layout``: building a ``UVLayout`` from the ICT-FaceKit mesh UVs (if the data is found
  via ``$FACELAB_DATA``), else the canonical layout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import torch

from facelab.models.albedo import (
    AlbedoConfig,
    AlbedoPCA,
    ProceduralAlbedo,
    UVLayout,
    skin_reflectance,
    uv_layout_from_mesh,
)

ICT_LANDMARKS = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
    6207, 6470, 5517, 5966,
]  # fmt: skip


def _ict_mesh():
    """The ICT neutral mesh (``Mesh``) or None when the data is not available."""
    try:
        from facelab.data import find_file
        from facelab.geometry.io import load_obj

        return load_obj(find_file("ict-facekit", "FaceXModel/generic_neutral_mesh.obj"))
    except Exception:  # noqa: BLE001 - any missing piece: fall back to the canonical layout
        return None


def make_layout(size: int, which: str) -> tuple[UVLayout, str]:
    if which in ("auto", "ict"):
        mesh = _ict_mesh()
        if mesh is not None:
            return uv_layout_from_mesh(
                mesh.uvs, mesh.uv_faces, mesh.faces, ICT_LANDMARKS, size
            ), "ict"
        if which == "ict":
            sys.exit("ICT-FaceKit data not found: set FACELAB_DATA (see facelab data --help)")
    return UVLayout.canonical(size), "canonical"


def write_png(path: str | os.PathLike, img: torch.Tensor) -> None:
    """Write ``img (3, H, W)`` in [0, 1] as an 8-bit RGB PNG (no imaging library needed)."""
    a = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def sample_grid(layout: UVLayout, rows: int, cols: int, seed: int, pad: int = 4) -> torch.Tensor:
    """``(3, H, W)`` sRGB grid of ``rows * cols`` detailed samples on a white background."""
    gen = ProceduralAlbedo(layout, AlbedoConfig(encoding="srgb"))
    img, _ = gen.sample(rows * cols, torch.Generator().manual_seed(seed))
    s = layout.size
    out = torch.ones(3, rows * (s + pad) + pad, cols * (s + pad) + pad)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        y, x = pad + r * (s + pad), pad + c * (s + pad)
        out[:, y : y + s, x : x + s] = img[k].float()
    return out


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up (FFT plans, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    layout, kind = make_layout(args.size, args.layout)
    layout_ms = (time.perf_counter() - t0) * 1e3
    b, s = args.batch, args.size
    gen = ProceduralAlbedo(layout)
    smooth = ProceduralAlbedo(layout, AlbedoConfig(detail=False))
    g = torch.Generator().manual_seed(0)
    params = gen.sample_params(b, g)
    rows = {}
    rows["sample (detail)"] = _median_ms(lambda: gen.sample(b, g), args.repeat)
    rows["render (detail)"] = _median_ms(lambda: gen.render(params), args.repeat)
    rows["render (smooth)"] = _median_ms(lambda: smooth.render(params), args.repeat)

    # reference: per-texel spectral evaluation of the colour step (the slow, direct twin)
    cm = params.melanin.float()[:, None, None].expand(b, s, s)
    ch = params.haemoglobin.float()[:, None, None].expand(b, s, s)
    be = params.eumelanin_ratio.float()[:, None, None].expand(b, s, s)
    ox = params.oxy_ratio.float()[:, None, None].expand(b, s, s)
    ref_repeat = max(1, args.repeat // 3)
    rows["reference: per-texel spectral colour"] = _median_ms(
        lambda: skin_reflectance(cm, ch, be, ox), ref_repeat
    )

    n = args.pca_n
    data = torch.cat(
        [smooth.render(smooth.sample_params(min(16, n - i), g)) for i in range(0, n, 16)]
    )
    t0 = time.perf_counter()
    pca = AlbedoPCA.fit(data, args.pca_k)
    rows[f"pca fit (N={n}, K={args.pca_k})"] = (time.perf_counter() - t0) * 1e3
    rows["pca project+forward (B)"] = _median_ms(lambda: pca(pca.project(data[:b])), args.repeat)
    evr = pca.explained_variance_ratio()
    return {
        "size": s,
        "batch": b,
        "threads": args.threads,
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "layout": kind,
        "layout_build_ms": layout_ms,
        "ms": rows,
        "speedup_vs_reference": rows["reference: per-texel spectral colour"]
        / rows["render (detail)"],
        "pca_explained_variance": {
            str(k): float(evr[:k].sum()) for k in (1, 5, 10, args.pca_k) if k <= pca.k
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layout", choices=["auto", "ict", "canonical"], default="auto")
    p.add_argument("--pca-n", type=int, default=200)
    p.add_argument("--pca-k", type=int, default=40)
    p.add_argument("--png", help="save a grid of samples (sRGB) to this path")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only-png", action="store_true", help="skip the timings")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.png:
        layout, kind = make_layout(args.size, args.layout)
        write_png(args.png, sample_grid(layout, args.rows, args.cols, args.seed))
        print(
            f"wrote {args.png} ({args.rows}x{args.cols} samples, {kind} layout, S={args.size})",
            file=sys.stderr,
        )
        if args.only_png:
            return 0
    res = run(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"procedural albedo: S={res['size']} B={res['batch']} threads={res['threads']} "
          f"load={res['loadavg']} layout={res['layout']} (built in {res['layout_build_ms']:.0f} ms)")  # fmt: skip
    print(f"| {'step':<40} | {'ms':>9} |")
    print(f"|{'-' * 42}|{'-' * 11}|")
    for k, v in res["ms"].items():
        print(f"| {k:<40} | {v:>9.1f} |")
    print(
        f"render (detail) is {res['speedup_vs_reference']:.1f}x faster than the per-texel spectral colour alone"
    )
    print(
        "PCA cumulative explained variance:",
        {k: round(v, 3) for k, v in res["pca_explained_variance"].items()},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
