"""Benchmark of facelab.world: throughput, memory, and the domain gap vs the realism knob.

Prints three tables (``--json`` for a machine-readable dict):

1. **Throughput** (images/s) of ``WorldRenderer`` (sampling + rendering, batched) at 64 and
   256 px, realism 0 and 1, with the machine's load average and the torch thread count. The
   reference measured in the same run is the plain Lambert-SH ``facelab.render.Renderer`` on
   the same batch (``ratio`` = world time / Lambert time). Targets from the issue: >= 50 img/s
   at 64 px and >= 10 img/s at 256 px on 2 cores. The **DataLoader** rows measure the 2-core
   set-up itself: ``--workers`` (default 2) worker processes of one torch thread each, at
   realism 1 (``--workers 0`` skips them).
2. **Memory**: resident set size while streaming a ``WorldDataset`` (it must not grow with N).
3. **Domain gap**: for realism levels 0 ... 1 on the same parameters,
   (a) the RMSE between the realistic photo and the Lambert-SH render over the face, and
   (b) a *fit*: the SH light (9 x 3) per colour channel estimated by linear least
   squares from the photo, given the true geometry and albedo — i.e. the best the fitter's
   image model can do — reporting its residual RMSE and the relative error of the fitted
   shading ``Y(n) L`` against the true one over the same pixels (the SH coefficients
   themselves are ill-conditioned on a half-sphere of normals). Both grow with realism and are
   0 at realism 0.
4. **Fit error vs realism** (``--fit N``, off by default: about 10 s per face and level on 2
   cores): the same ``N`` faces (``--fit-model``, default ``ict-face`` at 256 px, yaw within
   +-40 deg) rendered at realism 0, 0.5 and 1 and reconstructed by :func:`facelab.fit.fit` from
   the photo and the exact 2D landmarks (FAST mode unless ``--fit-full``). Reported per level:
   the *geometry* error (mean vertex error in mm after a similarity alignment, of the
   photometric fit and of the landmark-only fit, which ignores the pixels and so is the same at
   every level) and the *appearance* error (RMSE of the fit's render against the Lambert-SH
   image of the true parameters -- the realism-0 photo -- over the true skin pixels the fit
   covers): what the fitter's image model recovers of the face's intrinsic appearance.

    python benchmarks/world.py            # full (about a minute)
    python benchmarks/world.py --quick    # smaller counts
    python benchmarks/world.py --quick --fit 3   # + fit error vs realism on 3 faces
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def throughput(model, size: int, realism: float, batch: int, repeats: int) -> dict:
    from facelab.world import WorldConfig, WorldRenderer

    r = WorldRenderer(WorldConfig(image_size=size, realism=realism), model)
    r(list(range(2)), 0)  # warm up (AO, albedo layout, patch images)
    t_world, t_lam = [], []
    for k in range(repeats):
        idx = list(range(1000 + k * batch, 1000 + (k + 1) * batch))
        t0 = time.perf_counter()
        b = r.sample(idx, 0)
        r.render(b)
        t1 = time.perf_counter()
        r.lambert_render(b)
        t2 = time.perf_counter()
        t_world.append(t1 - t0)
        t_lam.append(t2 - t1)
    tw, tl = min(t_world), min(t_lam)
    return {
        "size": size,
        "realism": realism,
        "batch": batch,
        "images_per_second": batch / tw,
        "ms_per_image": 1e3 * tw / batch,
        "lambert_ms_per_image": 1e3 * tl / batch,
        "ratio_vs_lambert": tw / tl,
    }


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def loader_throughput(
    model_name: str, size: int, realism: float, workers: int, batch: int, batches: int
) -> dict:
    """Images/s of ``DataLoader(WorldDataset, num_workers=workers)``, one torch thread per
    worker (how the 2 cores are used to make data). The clock starts once every worker has
    delivered its first batch (model load, AO and albedo set-up excluded)."""
    from facelab.world import WorldConfig, WorldDataset

    ds = WorldDataset(
        WorldConfig(model=model_name, image_size=size, realism=realism),
        length=(batches + workers) * batch,
        seed=0,
    )
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, num_workers=workers, worker_init_fn=_one_thread
    )
    n, t0 = 0, None
    for k, b in enumerate(loader):
        if k == workers - 1:
            t0 = time.perf_counter()
        elif k >= workers:
            n += int(b["image"].shape[0])
    dt = time.perf_counter() - t0
    return {
        "size": size,
        "realism": realism,
        "workers": workers,
        "batch": batch,
        "images": n,
        "images_per_second": n / dt,
    }


def memory(model, size: int, batches: int, batch: int) -> dict:
    from facelab.world import WorldConfig, WorldDataset

    ds = WorldDataset(
        WorldConfig(image_size=size, realism=1.0), length=batches * batch, seed=0, model=model
    )
    rss = []
    for out in ds.batches(batch):
        del out
        rss.append(_rss_mb())
    return {
        "samples": batches * batch,
        "rss_after_first_batch_mb": rss[0],
        "rss_after_last_batch_mb": rss[-1],
        "growth_mb": rss[-1] - rss[0],
    }


def domain_gap(model, size: int, n: int, levels: list[float]) -> list[dict]:
    """Image RMSE vs Lambert and the closed-form light fit's residual, per realism level.

    The parameters are drawn once (by a realism-1 world, so background and noise fields exist)
    and rendered at every level. Pixels: skin in both the Lambert and the realistic render.
    """
    from facelab.render.shading import sh_basis
    from facelab.world import WorldConfig, WorldRenderer

    rows = []
    batch = WorldRenderer(WorldConfig(image_size=size, realism=1.0), model).sample(
        list(range(n)), 123
    )
    base = WorldRenderer(WorldConfig(image_size=size, realism=0.0), model)
    lam = base.render(batch)
    frags = base.lambert_render(batch).fragments
    rho, _ = base._albedo_at(batch, frags)
    bidx = frags.batch_index
    Y = sh_basis(lam["normals"].reshape(-1, 3)[frags.pix])
    true_shade = (Y[:, :, None] * batch.params.light[bidx]).sum(1)  # (P, 3)
    for r in levels:
        out = WorldRenderer(WorldConfig(image_size=size, realism=r), model).render(batch)
        mask = lam["mask_skin"] & out["mask_skin"]
        img = out["image"].permute(0, 2, 3, 1)  # (B, H, W, 3)
        ref = lam["image"].permute(0, 2, 3, 1)
        rmse = ((img - ref)[mask] ** 2).mean().sqrt().item()
        # the fitter's best: I_c = rho_c * Y(n) L_c, least squares in L (9 x 3) per image
        pm = mask.reshape(-1)[frags.pix]
        obs = img.reshape(-1, 3)[frags.pix]
        res, serr = [], []
        for b in range(n):
            sel = (bidx == b) & pm
            r2, s2, t2 = 0.0, 0.0, 0.0
            for c in range(3):
                A = (Y[sel] * rho[sel][:, c : c + 1]).double()
                sol = torch.linalg.lstsq(A, obs[sel][:, c].double()).solution
                r2 += float(((A @ sol - obs[sel][:, c].double()) ** 2).mean())
                fit_shade = Y[sel].double() @ sol
                s2 += float(((fit_shade - true_shade[sel][:, c].double()) ** 2).mean())
                t2 += float((true_shade[sel][:, c].double() ** 2).mean())
            res.append((r2 / 3) ** 0.5)
            serr.append((s2 / t2) ** 0.5)
        rows.append(
            {
                "realism": r,
                "rmse_vs_lambert": rmse,
                "fit_residual_rmse": sum(res) / n,
                "fit_shading_rel_error": sum(serr) / n,
            }
        )
    return rows


def fit_gap(
    model_name: str, size: int, n: int, levels: list[float], fast: bool, seed: int = 7
) -> list[dict]:
    """Fit error (geometry and appearance) of :func:`facelab.fit.fit` per realism level.

    The parameters of ``n`` faces are drawn once and rendered at every level, so only the
    image model changes between rows.
    """
    from facelab.fit import LandmarkFitConfig, fit
    from facelab.metrics import aligned_vertex_error
    from facelab.models import load
    from facelab.world import WorldConfig, WorldRenderer

    model = load(model_name)
    mm = model.mm_per_unit
    cfg = WorldConfig(model=model_name, image_size=size, realism=1.0, yaw_range=(-40.0, 40.0))
    batch = WorldRenderer(cfg, model).sample(list(range(n)), seed)
    lcfg = LandmarkFitConfig(contour=False)  # the world's landmarks are fixed vertices
    truth = WorldRenderer(cfg.with_realism(0.0), model).render(batch)  # Lambert-SH of the truth
    gt = model.forward(batch.params.identity, batch.params.expression).double()
    lm_err = []
    for b in range(n):
        r = fit(
            truth["image"][b], model=model, landmarks=truth["landmarks2d"][b],
            photometric=False, landmark_config=lcfg, progress=False,
        )  # fmt: skip
        lm_err.append(
            float(aligned_vertex_error(r.vertices.double()[None], gt[b : b + 1])["mean"][0])
        )
    rows = []
    for level in levels:
        out = WorldRenderer(cfg.with_realism(level), model).render(batch)
        verr, aerr, secs = [], [], []
        for b in range(n):
            t0 = time.perf_counter()
            r = fit(
                out["image"][b], model=model, landmarks=out["landmarks2d"][b],
                landmark_config=lcfg, fast=fast, progress=False,
            )  # fmt: skip
            secs.append(time.perf_counter() - t0)
            e = aligned_vertex_error(r.vertices.double()[None], gt[b : b + 1])
            verr.append(float(e["mean"][0]))
            m = r.mask & truth["mask_skin"][b]
            d = (r.render.to(truth["image"].dtype) - truth["image"][b])[:, m]
            aerr.append(float(d.pow(2).mean().sqrt()))
        rows.append(
            {
                "realism": level,
                "faces": n,
                "vertex_mm_photometric": mm * sum(verr) / n,
                "vertex_mm_landmarks_only": mm * sum(lm_err) / n,
                "vertex_mm_per_face": [mm * v for v in verr],
                "appearance_rmse": sum(aerr) / n,
                "appearance_rmse_per_face": aerr,
                "seconds_per_fit": sum(secs) / n,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--model", default="builtin")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers for the loader rows (0: skip)"
    )
    p.add_argument(
        "--fit", type=int, default=0, metavar="N", help="fit error vs realism on N faces"
    )
    p.add_argument("--fit-model", default="ict-face")
    p.add_argument("--fit-size", type=int, default=256)
    p.add_argument("--fit-full", action="store_true", help="full photometric schedule, not FAST")
    a = p.parse_args(argv)
    from facelab.models import load

    model = load(a.model)
    reps = 2 if a.quick else 4
    res: dict = {"load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "model": a.model}
    tp = []
    for th in a.threads:
        torch.set_num_threads(th)
        for size, batch in ((64, 16), (256, 8)):
            for r in (0.0, 1.0):
                row = throughput(model, size, r, batch, reps)
                row["threads"] = th
                tp.append(row)
    torch.set_num_threads(1)
    res["throughput"] = tp
    lt = []
    if a.workers > 0:
        for size, batch in ((64, 16), (256, 8)):
            lt.append(loader_throughput(a.model, size, 1.0, a.workers, batch, 6 if a.quick else 16))
    res["loader_throughput"] = lt
    res["memory"] = memory(model, 64, 8 if a.quick else 30, 16)
    res["domain_gap"] = domain_gap(model, 128, 4 if a.quick else 8, [0.0, 0.25, 0.5, 0.75, 1.0])
    if a.fit > 0:
        res["fit_gap"] = fit_gap(a.fit_model, a.fit_size, a.fit, [0.0, 0.5, 1.0], not a.fit_full)
    res["load_average_end"] = os.getloadavg()
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    la = res["load_average"]
    print(
        f"# facelab.world benchmark ({a.model}); load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {res['cpu_count']} cores"
    )
    print(
        "\n## Throughput (sampling + rendering, batched; reference: Lambert-SH Renderer on the same batch)"
    )
    print("| threads | size | realism | batch | img/s | ms/img | Lambert ms/img | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for t in tp:
        print(
            f"| {t['threads']} | {t['size']} | {t['realism']:g} | {t['batch']} | {t['images_per_second']:.1f} "
            f"| {t['ms_per_image']:.1f} | {t['lambert_ms_per_image']:.1f} | {t['ratio_vs_lambert']:.1f}x |"
        )
    if lt:
        print(
            f"\n## DataLoader throughput at realism 1 ({a.workers} workers x 1 thread; targets: "
            ">= 50 img/s at 64 px, >= 10 img/s at 256 px on 2 cores)"
        )
        print("| size | workers | batch | images timed | img/s |")
        print("|---|---|---|---|---|")
        for t in lt:
            print(
                f"| {t['size']} | {t['workers']} | {t['batch']} | {t['images']} "
                f"| {t['images_per_second']:.1f} |"
            )
    m = res["memory"]
    print(f"\n## Memory while streaming {m['samples']} samples at 64 px")
    print(
        f"RSS after first batch {m['rss_after_first_batch_mb']:.0f} MB, after last {m['rss_after_last_batch_mb']:.0f} MB (growth {m['growth_mb']:+.1f} MB)"
    )
    print("\n## Domain gap vs realism (128 px, skin pixels)")
    print("| realism | RMSE vs Lambert | fit residual RMSE | fitted-shading rel. error |")
    print("|---|---|---|---|")
    for g in res["domain_gap"]:
        print(
            f"| {g['realism']:g} | {g['rmse_vs_lambert']:.4f} | {g['fit_residual_rmse']:.4f} | {g['fit_shading_rel_error']:.3f} |"
        )
    if "fit_gap" in res:
        mode = "full" if a.fit_full else "FAST"
        print(
            f"\n## Fit error vs realism ({a.fit_model}, {a.fit_size} px, {a.fit} faces, "
            f"facelab.fit {mode} from exact landmarks)"
        )
        print(
            "| realism | vertex mm (photometric) | vertex mm (landmarks only) "
            "| appearance RMSE vs Lambert truth | s/fit |"
        )
        print("|---|---|---|---|---|")
        for g in res["fit_gap"]:
            print(
                f"| {g['realism']:g} | {g['vertex_mm_photometric']:.3f} "
                f"| {g['vertex_mm_landmarks_only']:.3f} | {g['appearance_rmse']:.4f} "
                f"| {g['seconds_per_fit']:.1f} |"
            )
    print(f"\nload average at the end: {res['load_average_end'][0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
