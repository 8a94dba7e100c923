"""Benchmark of facelab's PyTorch port of dlib's face-recognition ResNet against dlib itself.

    python benchmarks/identity.py            # table
    python benchmarks/identity.py --json     # machine-readable
    python benchmarks/identity.py --batch 8 --repeat 5

On the real sample faces (astronaut, einstein, takeo, plus LFW crops upscaled to 150x150):

- accuracy: max |difference| and min cosine similarity between facelab's descriptors and
  ``dlib.face_recognition_model_v1.compute_face_descriptor`` on the *same* 150x150 chips
  (the network alone), and on the photo + landmarks (chip extraction + network);
- speed, median ms: dlib's descriptor per face (the reference), the port's forward per face
  (batch 1) and per face in a batch, forward+backward per face; ratios against dlib;
- identity: pairwise descriptor distances of four different people (astronaut, Einstein,
  takeo, the man seated behind Einstein); dlib's same-person threshold is 0.6.

torch runs single-threaded (``torch.set_num_threads(1)``); the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch


def _median_ms(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    import dlib

    from facelab.vision import get_detector, samples
    from facelab.vision.detect import dlib_model_path
    from facelab.vision.dlib_resnet import MODEL_FILE, load_dlib_face_resnet
    from facelab.vision.identity import DlibIdentity

    path = dlib_model_path(MODEL_FILE)
    t0 = time.perf_counter()
    net = load_dlib_face_resnet(path)
    parse_s = time.perf_counter() - t0
    rec = dlib.face_recognition_model_v1(str(path))
    enc = DlibIdentity(path)
    det = get_detector("dlib")

    names, chips, photo_refs, photo_ours = [], [], [], []
    for name in ("astronaut", "einstein", "takeo"):
        s = samples.load(name)
        f = det.detect(s.image)[0]
        rect = dlib.rectangle(*[int(v) for v in f.box.tolist()])
        shape = dlib.full_object_detection(
            rect, [dlib.point(int(x - 0.5), int(y - 0.5)) for x, y in f.landmarks.tolist()]
        )
        chips.append(dlib.get_face_chip(s.image.to_uint8(), shape, 150, 0.25))
        photo_refs.append(np.array(rec.compute_face_descriptor(s.image.to_uint8(), shape)))
        with torch.no_grad():
            photo_ours.append(enc.embed(s.image.tensor, f.landmarks[None])[0].double().numpy())
        names.append(name)
    # a fourth person: the man seated behind Einstein (found with upsampling)
    from facelab.vision import DlibConfig, select_faces

    two = det.with_config(DlibConfig(upsample=1, threshold=-0.5))
    ein = samples.einstein().image
    seated = select_faces(two.detect(ein), "all")[0]
    with torch.no_grad():
        photo_ours.append(enc.embed(ein.tensor, seated.landmarks[None])[0].double().numpy())
    people = names + ["einstein-seated-man"]
    # same-person pairs: each photo against a mirrored, rescaled, darker copy of itself
    same = {}
    for i, name in enumerate(names):
        src = samples.load(name).image.tensor
        aug = torch.nn.functional.interpolate(
            src.flip(-1), scale_factor=0.8, mode="bilinear", antialias=True
        ).pow(1.3)
        faces_aug = det.detect(aug)
        if faces_aug:
            with torch.no_grad():
                e_aug = enc.embed(aug, select_faces(faces_aug)[0].landmarks[None])[0]
            same[f"{name}/{name} (mirrored, 0.8x, gamma 1.3)"] = float(
                torch.linalg.norm(e_aug.double() - torch.from_numpy(photo_ours[i]))
            )
    lfw = torch.nn.functional.interpolate(
        samples.lfw_faces()[:5], size=150, mode="bilinear", align_corners=False
    )
    for i, c in enumerate(lfw):
        chips.append(np.ascontiguousarray((c.permute(1, 2, 0) * 255).round().byte().numpy()))
        names.append(f"lfw{i}")

    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255
    ref = np.stack([np.array(rec.compute_face_descriptor(c)) for c in chips])
    with torch.no_grad():
        ours = net.embed_chips(x).double().numpy()
    diff = float(np.abs(ours - ref).max())
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    pipe = np.linalg.norm(np.stack(photo_ours[:3]) - np.stack(photo_refs), axis=1)

    B = args.batch
    xb = x[:1].expand(B, -1, -1, -1).contiguous()
    dlib_ms = _median_ms(lambda: rec.compute_face_descriptor(chips[0]), args.repeat)
    with torch.no_grad():
        one_ms = _median_ms(lambda: net.embed_chips(x[:1]), args.repeat)
        batch_ms = _median_ms(lambda: net.embed_chips(xb), args.repeat) / B

    def fwd_bwd():
        xi = x[:1].clone().requires_grad_(True)
        net.embed_chips(xi).sum().backward()

    bwd_ms = _median_ms(fwd_bwd, args.repeat)

    E = torch.from_numpy(np.stack(photo_ours))
    D = torch.cdist(E, E).numpy()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = {
        "accuracy": {
            "chips": len(chips),
            "max_abs_diff": diff,
            "min_cosine": float(cos.min()),
            "photo_pipeline_max_distance": float(pipe.max()),
        },
        "speed_ms_per_face": {
            "dlib_compute_face_descriptor": dlib_ms,
            "port_forward_batch1": one_ms,
            f"port_forward_batch{B}": batch_ms,
            "port_forward_backward": bwd_ms,
            "ratio_forward_vs_dlib": one_ms / dlib_ms,
            "ratio_batched_vs_dlib": batch_ms / dlib_ms,
        },
        "parse_s": parse_s,
        "distances": {
            f"{people[i]}/{people[j]}": float(D[i, j])
            for i in range(len(people))
            for j in range(i + 1, len(people))
        },
        "same_person_distances": same,
        "threshold": enc.threshold,
        "load_average": load,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    a, sp = out["accuracy"], out["speed_ms_per_face"]
    print(
        f"dlib face ResNet port vs dlib (load avg {load:.2f}, {torch.get_num_threads()} thread; parse {parse_s * 1000:.0f} ms)"
    )
    print(
        f"  network on the same {a['chips']} real chips: max |diff| {a['max_abs_diff']:.2e}, min cosine {a['min_cosine']:.9f}"
    )
    print(
        f"  photo + landmarks -> descriptor (our chip warp): max distance to dlib {a['photo_pipeline_max_distance']:.4f}"
    )
    print(f"{'':34s} {'ms/face':>8s} {'x dlib':>7s}")
    print(
        f"  {'dlib compute_face_descriptor':32s} {sp['dlib_compute_face_descriptor']:8.1f} {1.0:7.2f}"
    )
    print(
        f"  {'port forward (batch 1)':32s} {sp['port_forward_batch1']:8.1f} {sp['ratio_forward_vs_dlib']:7.2f}"
    )
    print(f"  {f'port forward (batch {B})':32s} {batch_ms:8.1f} {sp['ratio_batched_vs_dlib']:7.2f}")
    print(f"  {'port forward + backward':32s} {bwd_ms:8.1f} {bwd_ms / dlib_ms:7.2f}")
    print(f"  pairwise distances (different people; same person < {enc.threshold:.2f}):")
    for k, v in out["distances"].items():
        print(f"    {k:34s} {v:.3f}")
    print("  same person:")
    for k, v in same.items():
        print(f"    {k:50s} {v:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
