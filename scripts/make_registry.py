"""Maintainer tool: (re)build ``facelab/assets/registry.json`` from local copies of the assets.

Usage::

    python scripts/make_registry.py --ict DIR/FaceXModel --sfm DIR/sfm-eos [--dlib DIR]

Hashes are of the uncompressed file content (``.obj.gz`` copies are gunzipped while hashing),
so the registry matches the plain files upstream serves. URLs are pinned to upstream commits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from facelab.data import open_bytes, sha256_file

ICT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
SFM_COMMIT = "ce984207a51c2edd2e7568a64fec9b98ef61aeed"
ICT_RAW = f"https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{ICT_COMMIT}/"
SFM_RAW = f"https://raw.githubusercontent.com/patrikhuber/eos/{SFM_COMMIT}/share/"
DLIB_FILES = {
    "shape_predictor_68_face_landmarks.dat": "http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2",
    "shape_predictor_5_face_landmarks.dat": "http://dlib.net/files/shape_predictor_5_face_landmarks.dat.bz2",
    "dlib_face_recognition_resnet_model_v1.dat": "http://dlib.net/files/dlib_face_recognition_resnet_model_v1.dat.bz2",
    "mmod_human_face_detector.dat": "http://dlib.net/files/mmod_human_face_detector.dat.bz2",
}


def _entry(path: Path, rel: str, url: str, compression: str = "") -> dict:
    return {
        "path": rel,
        "sha256": sha256_file(path),
        "size": len(open_bytes(path)),
        "url": url,
        "compression": compression,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ict", type=Path, required=True, help="folder FaceXModel (plain or .gz)")
    ap.add_argument("--sfm", type=Path, required=True, help="folder with the eos share/ files")
    ap.add_argument("--dlib", type=Path, help="folder with dlib .dat files")
    ap.add_argument("--out", type=Path, default=Path("facelab/assets/registry.json"))
    a = ap.parse_args()

    ict_files = []
    for p in sorted(a.ict.iterdir()):
        name = p.name[:-3] if p.name.endswith(".gz") else p.name
        ict_files.append(_entry(p, f"FaceXModel/{name}", ICT_RAW + f"FaceXModel/{name}"))
    lic = a.ict.parent / "LICENSE"
    if lic.exists():
        ict_files.append(_entry(lic, "LICENSE", ICT_RAW + "LICENSE"))
    sfm_files = [_entry(p, p.name, SFM_RAW + p.name) for p in sorted(a.sfm.iterdir())]

    dlib_dir = a.dlib
    if dlib_dir is None:
        spec = importlib.util.find_spec("face_recognition_models")
        dlib_dir = Path(next(iter(spec.submodule_search_locations))) / "models"
    dlib_files = [
        _entry(dlib_dir / name, name, url, "bz2") for name, url in sorted(DLIB_FILES.items())
    ]

    assets = [
        {
            "name": "ict-facekit",
            "title": "ICT Face Model Light (ICT-FaceKit)",
            "license": "MIT",
            "source": f"github.com/ICT-VGL/ICT-FaceKit@{ICT_COMMIT[:12]} (FaceXModel/)",
            "homepage": "https://github.com/ICT-VGL/ICT-FaceKit",
            "description": "Neutral head mesh with UVs, 100 identity PCA modes and 53 "
            "ARKit-style expression blendshapes, as OBJ files.",
            "citation": "Li et al., Learning Formation of Physically-Based Face Attributes, CVPR 2020.",
            "redistributable": True,
            "files": ict_files,
        },
        {
            "name": "sfm-eos",
            "title": "Surrey Face Model, low resolution (3,448 vertices), from eos",
            "license": "Non-commercial use only (University of Surrey); see the eos README",
            "source": f"github.com/patrikhuber/eos@{SFM_COMMIT[:12]} (share/)",
            "homepage": "https://github.com/patrikhuber/eos",
            "description": "Shape PCA model (63 components), 6 expression blendshapes, "
            "iBUG-68 landmark mapping, jaw contours, symmetry, reference mesh.",
            "citation": "Huber et al., A Multiresolution 3D Morphable Face Model and Fitting "
            "Framework, VISAPP 2016.",
            "redistributable": False,
            "files": sfm_files,
        },
        {
            "name": "dlib-models",
            "title": "dlib face detector, 68-landmark predictor and face recognition ResNet",
            "license": "Boost Software License (dlib); the 68-landmark predictor was trained "
            "on iBUG 300-W, whose images are licensed for research use only",
            "source": "dlib.net/files (the same files as PyPI face_recognition_models 0.3.0)",
            "homepage": "http://dlib.net/",
            "description": "shape_predictor_68_face_landmarks.dat, "
            "dlib_face_recognition_resnet_model_v1.dat and two more dlib model files.",
            "citation": "King, Dlib-ml: A Machine Learning Toolkit, JMLR 2009.",
            "redistributable": True,
            "python_package": "face_recognition_models",
            "package_subdir": "models",
            "files": dlib_files,
        },
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"version": 1, "assets": assets}, indent=1) + "\n")
    print(f"wrote {a.out}: " + ", ".join(f"{x['name']} ({len(x['files'])} files)" for x in assets))


if __name__ == "__main__":
    main()
