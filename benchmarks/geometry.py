"""Benchmark of facelab.geometry: mesh-file parsing, normals, rotations, alignment.

    python benchmarks/geometry.py            # table
    python benchmarks/geometry.py --json     # machine-readable

Rows (median of ``--repeat`` runs, torch single-threaded):

- ``load_obj``: the ICT-FaceKit neutral head (26,719 vertices, 26,384 polygons, 28,911 UVs;
  read from ``$FACELAB_DATA`` or ``../shared/data``) -- against two references measured in the
  same run: a plain Python parser with one loop iteration per line (the "slow twin") and
  ``trimesh.load`` (if installed). Without the data a synthetic grid OBJ of similar size is used.
- ``load_obj_vertices``: the vertices-only fast path (the model loader reads ~150 such files).
- ``vertex_normals``: on the loaded mesh, float32, forward and forward+backward.
- ``axis_angle_to_matrix`` / ``matrix_to_axis_angle`` on 100k rotations; ``umeyama`` batched.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facelab.geometry import (
    axis_angle_to_matrix,
    hat,
    load_obj,
    load_obj_vertices,
    matrix_to_axis_angle,
    umeyama,
    vertex_normals,
)


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def _naive_obj(path: Path):
    """Reference: one Python iteration per line (what a first implementation looks like)."""
    data = gzip.open(path, "rt") if path.suffix == ".gz" else open(path)  # noqa: SIM115
    v, vt, f, uf = [], [], [], []
    with data as fh:
        for ln in fh:
            t = ln.split()
            if not t:
                continue
            if t[0] == "v":
                v.append([float(x) for x in t[1:4]])
            elif t[0] == "vt":
                vt.append([float(x) for x in t[1:3]])
            elif t[0] == "f":
                idx = [tok.split("/") for tok in t[1:]]
                for k in range(1, len(idx) - 1):
                    f.append([int(idx[0][0]) - 1, int(idx[k][0]) - 1, int(idx[k + 1][0]) - 1])
                    uf.append([int(idx[0][1]) - 1, int(idx[k][1]) - 1, int(idx[k + 1][1]) - 1])
    return np.array(v), np.array(vt), np.array(f), np.array(uf)


def _find_ict() -> Path | None:
    roots = [p for p in os.environ.get("FACELAB_DATA", "").split(os.pathsep) if p]
    roots.append(str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    for r in roots:
        for name in ("generic_neutral_mesh.obj.gz", "generic_neutral_mesh.obj"):
            p = Path(r) / "ict-facekit" / "FaceXModel" / name
            if p.is_file():
                return p
    return None


def _synthetic_obj(tmp: Path) -> Path:
    n = 164  # 164 x 164 grid ~ 26.9k vertices, 26.6k quads
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    v = np.stack([jj, ii, np.sin(jj * 0.1) * np.cos(ii * 0.1)], -1).reshape(-1, 3) / n
    idx = np.arange(n * n).reshape(n, n) + 1
    q = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], -1).reshape(-1, 4)
    lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b, _ in v]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c} {d}/{d}" for a, b, c, d in q]
    p = tmp / "grid.obj.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return p


def run(repeat: int) -> dict:
    torch.set_num_threads(1)
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp())
    path = _find_ict()
    source = "ICT-FaceKit generic_neutral_mesh.obj.gz"
    if path is None:
        path, source = _synthetic_obj(tmp), "synthetic 164x164 quad grid (.obj.gz)"
    mesh = load_obj(path)
    t_ours = _median_ms(lambda: load_obj(path), repeat)
    t_naive = _median_ms(lambda: _naive_obj(path), max(1, repeat // 3))
    rows.append({"op": "load_obj", "impl": "facelab (numpy on whole text)", "ms": t_ours})
    rows.append({"op": "load_obj", "impl": "python loop per line (reference)", "ms": t_naive})
    t_tm = t_ours_plain = None
    try:
        import trimesh

        plain = tmp / "mesh.obj"
        plain.write_bytes(gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes())
        t_tm = _median_ms(
            lambda: trimesh.load(str(plain), force="mesh", process=False), max(1, repeat // 3)
        )
        t_ours_plain = _median_ms(lambda: load_obj(plain), repeat)
        rows.append({"op": "load_obj (plain .obj)", "impl": "facelab", "ms": t_ours_plain})
        rows.append({"op": "load_obj (plain .obj)", "impl": "trimesh.load (reference)", "ms": t_tm})
    except ImportError:
        pass
    rows.append(
        {
            "op": "load_obj_vertices",
            "impl": "facelab (v lines only)",
            "ms": _median_ms(lambda: load_obj_vertices(path), repeat),
        }
    )
    v, f = mesh.verts.float(), mesh.faces
    rows.append(
        {
            "op": f"vertex_normals V={len(v)} F={len(f)}",
            "impl": "forward",
            "ms": _median_ms(lambda: vertex_normals(v, f), repeat),
        }
    )
    vg = v.clone().requires_grad_(True)

    def fb():
        vertex_normals(vg, f).sum().backward()

    rows.append(
        {
            "op": f"vertex_normals V={len(v)} F={len(f)}",
            "impl": "forward+backward",
            "ms": _median_ms(fb, repeat),
        }
    )
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(100_000, 3, generator=g)
    r = axis_angle_to_matrix(aa)
    rows.append(
        {
            "op": "axis_angle_to_matrix 100k",
            "impl": "Rodrigues",
            "ms": _median_ms(lambda: axis_angle_to_matrix(aa), repeat),
        }
    )
    k = hat(aa)
    t_rod = rows[-1]["ms"]
    t_exp = _median_ms(lambda: torch.linalg.matrix_exp(k), max(1, repeat // 3))
    rows.append(
        {
            "op": "axis_angle_to_matrix 100k",
            "impl": "torch.linalg.matrix_exp (reference)",
            "ms": t_exp,
        }
    )
    rows.append(
        {
            "op": "matrix_to_axis_angle 100k",
            "impl": "Shepperd + atan2",
            "ms": _median_ms(lambda: matrix_to_axis_angle(r), repeat),
        }
    )
    x = torch.randn(1000, 68, 3, generator=g)
    y = x @ r[:1000].transpose(-1, -2) + 1.0
    rows.append(
        {
            "op": "umeyama B=1000 N=68",
            "impl": "batched SVD",
            "ms": _median_ms(lambda: umeyama(x, y), repeat),
        }
    )
    ratios = {
        "python_loop_over_facelab_load_obj": t_naive / t_ours,
        "matrix_exp_over_rodrigues": t_exp / t_rod,
    }
    if t_tm is not None:
        ratios["trimesh_over_facelab_load_obj_plain"] = t_tm / t_ours_plain
    return {
        "source": source,
        "threads": torch.get_num_threads(),
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "mesh": {
            "verts": mesh.num_verts,
            "tris": mesh.num_faces,
            "uvs": int(mesh.uvs.shape[0]) if mesh.uvs is not None else 0,
        },
        "rows": rows,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.repeat)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"# geometry benchmark -- {res['source']} {res['mesh']}, threads={res['threads']}, load={res['loadavg']}"
    )
    print(f"{'operation':42s} {'implementation':38s} {'median ms':>10s}")
    for row in res["rows"]:
        print(f"{row['op']:42s} {row['impl']:38s} {row['ms']:10.2f}")
    for k, val in res["ratios"].items():
        print(f"{k}: {val:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
