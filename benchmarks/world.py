"""Benchmark of facelab.world: throughput, memory, and the domain gap vs the realism knob.

Prints three tables (``--json`` for a machine-readable dict):

1. **Throughput** (images/s) of ``WorldRenderer`` (sampling + rendering, batched) at 64 and
   256 px, realism 0 and 1, with the machine's load average and the torch thread count. The
   reference measured in the same run is the plain Lambert-SH ``facelab.render.Renderer`` on
   the same batch (``ratio`` = world time / Lambert time). Targets from the issue: >= 50 img/s
   at 64 px and >= 10 img/s at 256 px on 2 cores.
2. **Memory**: resident set size while streaming a ``WorldDataset`` (it must not grow with N).
3. **Domain gap**: for realism levels 0 ... 1 on the same parameters,
   (a) the RMSE between the realistic photo and the Lambert-SH render over the face, and
   (b) a *fit*: the SH light (9 x 3) per colour channel estimated by linear least
   squares from the photo, given the true geometry and albedo — i.e. the best the fitter's
   image model can do — reporting its residual RMSE and the relative error of the fitted
   shading ``Y(n) L`` against the true one over the same pixels (the SH coefficients
   themselves are ill-conditioned on a half-sphere of normals). Both grow with realism and are
   0 at realism 0.

    python benchmarks/world.py            # full (about a minute)
    python benchmarks/world.py --quick    # smaller counts
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--model", default="builtin")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
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
    res["memory"] = memory(model, 64, 8 if a.quick else 30, 16)
    res["domain_gap"] = domain_gap(model, 128, 4 if a.quick else 8, [0.0, 0.25, 0.5, 0.75, 1.0])
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
    print(f"\nload average at the end: {res['load_average_end'][0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
