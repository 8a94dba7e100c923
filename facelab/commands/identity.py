"""``facelab identity PHOTO_A PHOTO_B [--json]`` -- are these the same person?

Detects the largest face in each photo, aligns it, embeds it with an identity network and
prints the distance, the cosine similarity and the decision, with the backend used:
``dlib`` (facelab's PyTorch port of dlib's face-recognition ResNet, 128-D, Euclidean
distance, same person below 0.6; offline) or ``arcface`` (insightface ONNX weights, 512-D,
cosine distance; used by ``--backend auto`` when its weights are found).

``--json`` output (stable keys)::

    {
      "backend":     "dlib" | "arcface",
      "metric":      "euclidean" | "cosine",
      "distance":    float,      # Euclidean (dlib) or 1 - cosine (arcface)
      "similarity":  float,      # cosine similarity of the two embeddings
      "threshold":   float,      # same person iff distance < threshold
      "same_person": bool,
      "faces": [{"image": PHOTO_A, "box": [x0, y0, x1, y1], "score": float},
                {"image": PHOTO_B, ...}]
    }
"""

from __future__ import annotations

import argparse

from ._util import add_json, add_threads, print_json, setup_compute


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "identity",
        help="identity distance/similarity between the faces in two photos",
        description="Compare the (largest) faces in PHOTO_A and PHOTO_B with an identity network.",
    )
    p.add_argument("photo_a", metavar="PHOTO_A")
    p.add_argument("photo_b", metavar="PHOTO_B")
    add_json(p)
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "dlib", "arcface"],
        help="identity network (default auto: ArcFace if its weights are found, else dlib)",
    )
    add_threads(p)
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import torch

    from ..errors import NoFaceFound
    from ..vision import detect_face, load_image
    from ..vision.identity import load_identity_encoder, similarity

    setup_compute(args)
    images = [load_image(p) for p in (args.photo_a, args.photo_b)]  # bad photos fail first
    enc = load_identity_encoder(args.backend)
    embs, faces = [], []
    for path, img in zip((args.photo_a, args.photo_b), images):
        try:
            face = detect_face(img)
        except NoFaceFound as e:
            raise NoFaceFound(f"{path}: {e}") from None  # say which of the two photos
        with torch.no_grad():
            embs.append(enc.embed(img.tensor, face.landmarks[None]))
        faces.append(
            {
                "image": path,
                "box": [round(float(v), 3) for v in face.box],
                "score": round(face.score, 6),
            }
        )
    a, b = embs
    dist = float(enc.distance(a, b)[0])
    sim = float(similarity(a, b)[0])
    same = dist < enc.threshold
    if args.json:
        print_json(
            {
                "backend": enc.name,
                "metric": enc.metric,
                "distance": round(dist, 6),
                "similarity": round(sim, 6),
                "threshold": enc.threshold,
                "same_person": bool(same),
                "faces": faces,
            }
        )
    else:
        verdict = "same person" if same else "different people"
        print(f"backend: {enc.name} ({enc.metric} distance, threshold {enc.threshold})")
        print(f"distance {dist:.4f}  cosine similarity {sim:.4f}  -> {verdict}")
    return 0
