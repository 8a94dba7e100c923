"""Benchmark of symmetry-prior 3D GAN inversion (facelab.methods.spi) on world faces, TRUE novel views.

For each world face (the GAN's training world, a person not seen in training, pitch and roll 0)
the photo at an input yaw is inverted with the shipped tri-plane GAN (``cpu-32``) and its
renders from the true cameras at yaws +-15, 30, 45, 60 are compared with the world's true
views of the same person. Sets (interleaved, so a time-limited run stays balanced):
near-frontal (|yaw| <= 8), large yaw (30-45, both sides), asymmetric (30-45, a dark mark
painted on one cheek of the albedo), side light (30-45, a strong key light from one side of the
head, fixed to it: ``WorldFaces.set_side_light``).

Rows (the ablation ladder of the paper, then remove-one, an oracle and the floor):

- ``floor (mean latent)``: the mean-latent face, no inversion;
- ``W+ only``: latent inversion in W+, no mirror term, no tuning;
- ``W+ + symmetry``: with the mirror term (yaw-weighted; identical to ``W+ only`` for
  near-frontal photos, where its weight is 0);
- ``+ joint tuning (SPI)``: pivotal tuning with mirror, warp pseudo labels, conflict masks and
  the depth regulariser (the whole method);
- ``- warp`` / ``- conflict masks`` / ``- depth reg``: the whole method with one part removed;
- ``oracle: GT-depth warps``: the whole method with the warps through ground-truth depth.

Metrics (mean over faces and views; also per yaw bin |yaw| in {15, 30, 45, 60}): MSE (colour
in [0, 1]), ``perc`` = dlib-feature perceptual distance (not LPIPS), ``id`` = cosine of dlib
embeddings (unaligned 32 px), ``depth`` = mean |depth error| on true head pixels (EG3D units,
the head is ~0.4 deep), ``normal`` = mean angle (degrees) between the normals of the inverted
and true depth maps on true head pixels, ``collapse`` = frontal nose-to-cheek relief, inverted / true (1 = right,
0 = flat), ``proxy`` = the paper's own metric (mirrored view vs flipped photo, MSE).
The camera is the true one (isolating the inversion); the user pipeline's camera estimate
(dlib detector -> landmark fit, on a 256 px render of the same photo) is measured separately:
detection rate and yaw error.

    python benchmarks/spi.py [--minutes 10] [--faces N] [--json] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

ROWS = [
    "floor (mean latent)",
    "W+ only",
    "W+ + symmetry",
    "+ joint tuning (SPI)",
    "- warp",
    "- conflict masks",
    "- depth reg",
    "oracle: GT-depth warps",
]
SETS = ("near-frontal", "large yaw", "asymmetric", "side light")


def face_plan(n: int, seed: int):
    """``(index, set, input_yaw)`` for ``n`` faces, sets interleaved."""
    g = torch.Generator().manual_seed(seed)
    plan = []
    for i in range(n):
        kind = SETS[i % len(SETS)]
        u = float(torch.rand(1, generator=g))
        side = 1.0 if float(torch.rand(1, generator=g)) < 0.5 else -1.0
        yaw = (u * 16 - 8) if kind == "near-frontal" else side * (30 + 15 * u)
        plan.append((1000 + i, kind, round(yaw, 2)))
    return plan


def score(res, face, dist, net) -> dict:
    from facelab.methods.spi.evaluate import collapse_index, proxy_mirror_mse, view_metrics

    out = res.render(face.view_cameras)
    m = view_metrics(out, face, dist, net)
    k0 = face.yaws.index(0.0)
    per_view = {k: [float(x) for x in v[:k0]] for k, v in m.items()}
    per_view["yaws"] = face.yaws[:k0]
    return {
        "views": per_view,
        "collapse": collapse_index(out["depth"][k0], face.view_depth[k0], face.frontal_landmarks),
        "proxy": proxy_mirror_mse(res, face),
        "seconds": res.timings.get("total", 0.0),
    }


def camera_estimate(W, face) -> dict:
    """Detector -> landmark fit -> EG3D camera on a 256 px render of the photo."""
    from facelab.methods.spi.camera import estimate_camera

    batch = W.big.sample_views(face.index, W.seed, 1, yaws=[face.input_yaw])
    if face.asymmetric:
        W._paint_mark(batch)
    if face.side_light:
        W.set_side_light(batch)
    out = W.big.render(batch)  # the same person and camera at 256 px
    try:
        pc = estimate_camera(out["image"][:1].float(), resolution=W.res, model=W.big.model)
    except Exception as e:  # noqa: BLE001 — a failed detection is a counted failure
        return {"detected": False, "yaw_error": float("nan"), "error": type(e).__name__}
    from facelab.methods.spi.camera import camera_yaw_pitch

    true_yaw = math.degrees(float(camera_yaw_pitch(face.camera)[0][0]))
    return {
        "detected": True,
        "yaw_error": abs(pc.yaw - true_yaw),
        "yaw": pc.yaw,
        "true_yaw": true_yaw,
    }


def run(
    minutes: float,
    max_faces: int,
    seed: int,
    fast_steps: tuple[int, int],
    log,
    checkpoint: str | None = None,
) -> dict:
    from facelab.gan.triplane_train import load_triplane_generator, shipped_triplane_checkpoint
    from facelab.methods.spi.evaluate import WorldFaces, floor_result
    from facelab.methods.spi.invert import SPIConfig, invert3d, invert_latent, variant
    from facelab.methods.spi.losses import DlibFeatureDistance
    from facelab.vision.dlib_resnet import load_dlib_face_resnet
    from facelab.world import WorldRenderer

    G, meta = load_triplane_generator(checkpoint or shipped_triplane_checkpoint())
    net = load_dlib_face_resnet().eval()
    dist = DlibFeatureDistance(net)
    W = WorldFaces()
    from dataclasses import replace as _r

    W.big = WorldRenderer(_r(W.ds.config, image_size=256), model=W.r.model)
    cfg = SPIConfig.fast(w_steps=fast_steps[0], pti_steps=fast_steps[1])
    t_start = time.perf_counter()
    faces = []
    for index, kind, yaw in face_plan(max_faces, seed):
        if (time.perf_counter() - t_start) / 60 > minutes:
            break
        t0 = time.perf_counter()
        face = W.face(
            index, yaw, asymmetric=(kind == "asymmetric"), side_light=(kind == "side light")
        )
        rows = {}
        rows["floor (mean latent)"] = score(floor_result(G, face.camera, cfg), face, dist, net)
        lat0 = invert_latent(G, face.photo, face.camera, variant(cfg, symmetry=False), dist)
        r0 = invert3d(
            G, face.photo, face.camera, variant(cfg, symmetry=False, tune=False), dist, start=lat0
        )
        rows["W+ only"] = score(r0, face, dist, net)
        frontal = abs(yaw) <= cfg.frontal_degrees
        lat1 = lat0 if frontal else invert_latent(G, face.photo, face.camera, cfg, dist)
        rows["W+ + symmetry"] = (
            rows["W+ only"]
            if frontal
            else score(
                invert3d(G, face.photo, face.camera, variant(cfg, tune=False), dist, start=lat1),
                face,
                dist,
                net,
            )
        )
        fm = face.face_mask
        for name, c, oracle in (
            ("+ joint tuning (SPI)", cfg, None),
            ("- warp", variant(cfg, warp=0.0), None),
            ("- conflict masks", variant(cfg, conflict_masks=False), None),
            ("- depth reg", variant(cfg, depth=0.0), None),
            ("oracle: GT-depth warps", cfg, W.oracle(face)),
        ):
            res = invert3d(
                G, face.photo, face.camera, c, dist, face_mask=fm, oracle=oracle, start=lat1
            )
            rows[name] = score(res, face, dist, net)
        cam = camera_estimate(W, face)
        faces.append(
            {
                "index": index,
                "set": kind,
                "input_yaw": yaw,
                "rows": rows,
                "camera": cam,
                "seconds": time.perf_counter() - t0,
            }
        )
        log(
            f"face {len(faces)} ({kind}, yaw {yaw:+.1f}): {time.perf_counter() - t0:.0f} s; "
            f"SPI mse {_mean(rows['+ joint tuning (SPI)']['views']['mse']):.4f} vs W+ "
            f"{_mean(rows['W+ only']['views']['mse']):.4f}"
        )
    return {
        "faces": faces,
        "config": cfg.to_dict(),
        "generator": {"status": meta.get("status"), "step": meta.get("step")},
        "minutes": (time.perf_counter() - t_start) / 60,
        "seed": seed,
    }


def _mean(xs) -> float:
    xs = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def summarise(result: dict) -> dict:
    """Mean metrics per row: overall, per set, per |yaw| bin."""
    faces = result["faces"]
    out = {}
    for row in ROWS:
        entry = {}
        for subset in ("all", *SETS):
            fs = [f for f in faces if subset == "all" or f["set"] == subset]
            if not fs:
                continue
            d = {"faces": len(fs)}
            for k in ("mse", "perceptual", "identity", "depth", "normal"):
                if any(k not in f["rows"][row]["views"] for f in fs):
                    continue  # results written before the metric existed
                d[k] = _mean([x for f in fs for x in f["rows"][row]["views"][k]])
                for b in (15, 30, 45, 60):
                    d[f"{k}@{b}"] = _mean([
                        x for f in fs for x, y in zip(f["rows"][row]["views"][k], f["rows"][row]["views"]["yaws"])
                        if abs(abs(y) - b) < 1
                    ])  # fmt: skip
            d["collapse"] = _mean([f["rows"][row]["collapse"] for f in fs])
            d["proxy"] = _mean([f["rows"][row]["proxy"] for f in fs])
            d["seconds"] = _mean([f["rows"][row]["seconds"] for f in fs])
            entry[subset] = d
        out[row] = entry
    cams = [f["camera"] for f in faces]
    out["camera_estimate"] = {
        "faces": len(cams),
        "detected": sum(bool(c["detected"]) for c in cams),
        "yaw_error_deg": _mean([c["yaw_error"] for c in cams if c["detected"]]),
    }
    return out


def print_table(summary: dict, result: dict) -> None:
    print(
        f"generator: {result['generator']['status']}; {len(result['faces'])} faces in "
        f"{result['minutes']:.1f} min (FAST schedule: {result['config']['w_steps']} latent + "
        f"{result['config']['pti_steps']} tuning steps)"
    )
    for subset in ("all", *SETS):
        n = summary[ROWS[0]].get(subset, {}).get("faces", 0)
        if not n:
            continue
        print(
            f"\n[{subset}: {n} faces]  mse x1e3 (all | @45-60)  perc  id  depth  normal deg  collapse  proxy x1e3  s/face"
        )
        for row in ROWS:
            d = summary[row][subset]
            far = _mean([d["mse@45"], d["mse@60"]])
            print(
                f"  {row:24s} {1e3 * d['mse']:6.2f} | {1e3 * far:6.2f}  {d['perceptual']:.3f} "
                f"{d['identity']:.3f} {d['depth']:.3f} {d.get('normal', float('nan')):6.1f} "
                f"{d['collapse']:7.2f} {1e3 * d['proxy']:7.2f} "
                f"{d['seconds']:6.1f}"
            )
    c = summary["camera_estimate"]
    print(
        f"\ncamera estimate (dlib -> landmark fit, 256 px): detected {c['detected']}/{c['faces']}, "
        f"yaw error {c['yaw_error_deg']:.1f} deg"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="stop adding faces after this")
    p.add_argument("--faces", type=int, default=30, help="at most this many faces")
    p.add_argument("--steps", default="40,20", help="latent,tuning steps (FAST: 40,20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="also write the raw results + summary JSON here")
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="STEM",
        help="tri-plane checkpoint stem (default: the shipped one, facelab/assets/triplane_gan/"
        "cpu-32-prior)",
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import sys

    steps = tuple(int(s) for s in a.steps.split(","))
    result = run(
        a.minutes,
        a.faces,
        a.seed,
        steps,
        lambda m: print(m, file=sys.stderr, flush=True),
        checkpoint=a.checkpoint,
    )
    summary = summarise(result)
    doc = {"summary": summary, **result}
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(doc, fh, indent=1, default=float)
    if a.json:
        print(json.dumps(doc, indent=1, default=float))
    else:
        print_table(summary, result)


if __name__ == "__main__":
    main()
