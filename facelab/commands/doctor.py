"""``facelab doctor [--json]`` — what facelab can do on this machine.

The JSON report has the stable top-level keys::

    facelab   {"version", "path"}
    python    {"version", "executable"}
    torch     {"version", "threads", "device", "cuda": {"available", "devices": [names]}, "mps"}
    backends  {name: {"available": bool, "version" | "error"}}   # pytorch3d, dlib, onnxruntime, ...
    assets    [facelab data list --json entries]
    first_run {"bytes", "assets": [{"name", "title", "license", "files", "bytes"}],
               "offline", "mirror"}   # what the first use would download (missing files)
    book      {"jupyter_book", "node", "npm", "chromium", "js_assets"}
    data_dirs [paths searched]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from .. import __version__, data
from ._util import human_size, print_json

# name -> (import name, distribution name, what it is for)
BACKENDS = {
    "pytorch3d": ("pytorch3d", "pytorch3d", "optional renderer backend"),
    "dlib": ("dlib", "dlib-bin", "face detection, 68 landmarks, identity"),
    "face_alignment": ("face_alignment", "face-alignment", "FAN landmarks (downloads weights)"),
    "onnxruntime": ("onnxruntime", "onnxruntime", "ArcFace identity from ONNX"),
    "insightface": ("insightface", "insightface", "ArcFace model zoo"),
    "eos": ("eos", "eos-py", "Surrey Face Model and its fitter"),
    "h5py": ("h5py", "h5py", "BFM 2017 loader"),
    "trimesh": ("trimesh", "trimesh", "GLB export"),
    "skimage": ("skimage", "scikit-image", "sample photos"),
    "ipywidgets": ("ipywidgets", "ipywidgets", "interactive widgets in notebooks"),
}


def _probe(import_name: str, dist: str) -> dict:
    try:
        mod = importlib.import_module(import_name)
    except Exception as e:  # any import failure is a report line, not a crash
        return {"available": False, "error": f"{type(e).__name__}: {e}"[:200]}
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            version = md.version(dist)
        except md.PackageNotFoundError:
            version = "unknown"
    return {"available": True, "version": str(version)}


def _cmd_version(cmd: list[str]) -> str | None:
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _book_status() -> dict:
    try:
        jb = md.version("jupyter-book")
    except md.PackageNotFoundError:
        jb = None
    repo = Path(__file__).resolve().parents[2]
    static = repo / "book" / "_ext_static"
    needed = ["plotly.min.js", "require.js", "embed-amd.js", "mathjax/tex-chtml.js"]
    return {
        "jupyter_book": jb,
        "node": _cmd_version(["node", "--version"]),
        "npm": _cmd_version(["npm", "--version"]),
        "chromium": _cmd_version(["chromium", "--version"]),
        "js_assets": {n: (static / n).exists() for n in needed},
    }


def _first_run() -> dict:
    """What facelab would download on first use (assets with missing files), and how large."""
    todo = data.plan()
    return {
        "bytes": sum(p["bytes"] for p in todo),
        "assets": todo,
        "offline": data.offline(),
        "mirror": os.environ.get(data.ENV_MIRROR) or None,
    }


def collect() -> dict:
    """The doctor report as a dict (see the module docstring for its keys)."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    report = {
        "facelab": {"version": __version__, "path": str(Path(__file__).resolve().parents[1])},
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "torch": {
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": "cuda" if cuda else ("mps" if mps else "cpu"),
            "cuda": {
                "available": cuda,
                "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                if cuda
                else [],
            },
            "mps": mps,
        },
        "backends": {
            name: {**_probe(imp, dist), "for": why} for name, (imp, dist, why) in BACKENDS.items()
        },
        "assets": [data.status(n).to_json() for n in sorted(data.registry())],
        "first_run": _first_run(),
        "book": _book_status(),
        "data_dirs": [str(d) for d in data.data_dirs()],
        "cpu_count": os.cpu_count(),
    }
    return report


def _doctor(args: argparse.Namespace) -> int:
    r = collect()
    if args.json:
        print_json(r)
        return 0
    t = r["torch"]
    dev = t["device"] + (f" ({', '.join(t['cuda']['devices'])})" if t["cuda"]["devices"] else "")
    print(f"facelab {r['facelab']['version']}  ({r['facelab']['path']})")
    print(f"python  {r['python']['version']}  ({r['python']['executable']})")
    print(f"torch   {t['version']}  device: {dev}  threads: {t['threads']}  cpus: {r['cpu_count']}")
    print("\noptional backends:")
    for name, b in r["backends"].items():
        mark = "ok " if b["available"] else "-- "
        detail = b.get("version") if b["available"] else "not available"
        print(f"  {mark}{name:<15} {detail:<22} {b['for']}")
    print("\nassets (data directories: " + ", ".join(r["data_dirs"]) + "):")
    for a in r["assets"]:
        where = a["location"] or f"missing -> facelab data fetch {a['name']}"
        print(f"  {a['name']:<13} {a['state']:<8} {a['license'][:40]:<40} {where}")
    fr = r["first_run"]
    if fr["assets"]:
        what = ", ".join(f"{p['name']} {human_size(p['bytes'])}" for p in fr["assets"])
        how = (
            "FACELAB_OFFLINE=1: nothing is downloaded (facelab data fetch NAME does)"
            if fr["offline"]
            else "downloaded into the cache on first use"
        )
        print(f"  first run downloads {human_size(fr['bytes'])}: {what} ({how})")
    else:
        print("  first run downloads nothing: every asset is present")
    b = r["book"]
    print("\nbook toolchain:")
    print(
        f"  jupyter-book {b['jupyter_book'] or 'not installed'}; node {b['node'] or 'missing'}; "
        f"npm {b['npm'] or 'missing'}; chromium {b['chromium'] or 'not installed (optional)'}"
    )
    missing_js = [k for k, v in b["js_assets"].items() if not v]
    print(
        "  offline JS assets: "
        + (
            "all present"
            if not missing_js
            else "missing " + ", ".join(missing_js) + " (make book fetches them)"
        )
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="report versions, device, backends, assets, book toolchain")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_doctor)
