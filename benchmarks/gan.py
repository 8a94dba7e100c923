"""Benchmark of facelab.gan: training-step time vs a plain reference, and the texture-GAN claim.

1. **Step time** (forward + backward of G and D, one optimiser step each, batch ``--batch``)
   at 32, 64 and 128 px for the cpu-64 channel plan, with the modulated convolution as
   - ``loop``: the plain reference (:func:`facelab.gan.networks.modulated_conv2d_reference`,
     one ``conv2d`` per sample),
   - ``grouped``: one grouped ``conv2d`` per layer (:func:`~facelab.gan.networks.modulated_conv2d`),
   - ``auto`` (what training uses): grouped where the activations outweigh the per-sample
     weights, else the input/output-scaling form
     (:func:`~facelab.gan.networks.modulated_conv2d_scaled`),
   all measured in the same run, median of ``--repeats``; ``ratio`` = loop time / this time.
   A CUDA row is added when a GPU is present. The load average is printed: on a shared 2-core
   machine the absolute numbers move with it, the ratios much less.
2. **Claim table** (``--claim``): the shipped texture GAN vs the PCA of the same latent size on
   the same 4096 training maps, with the floor rows
   (:func:`facelab.methods.ganfit.evaluate.claim_table`), with the paired verdicts of chapter 6
   (KID-dlib per subset; each sample's |log high-band ratio|).
3. **Selection split** (``--select 0.6,0.8,1``): KID-dlib of the GAN at each residual scale
   (``Generator.detail``) against the *held-out* maps, with other latents than the claim
   table's (:func:`facelab.methods.ganfit.evaluate.detail_selection`): how the shipped
   ``sample_detail`` was chosen, apart from the split the claim is reported on.

    python benchmarks/gan.py --quick            # step times, 1 thread
    python benchmarks/gan.py --claim            # + the claim table (a few minutes)
    python benchmarks/gan.py --steps-off --select 0.6,0.7,0.8,0.9,1 --model DIR/texture_gan

``--json`` prints one object: ``threads``, ``load_average``, ``batch``, ``steps`` (rows
``device, resolution, modconv, seconds, ratio_vs_loop``), and with ``--claim`` ``claim``
(``gan_step``, ``detail``, ``rows``, ``kid_verdict``, ``high_band_verdict``), with ``--select``
``selection`` (rows of ``detail_selection``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def _channels(res: int) -> dict:
    plan = {4: 64, 8: 64, 16: 64, 32: 32, 64: 16, 128: 16}
    return {str(r): plan[r] for r in plan if r <= res}


def step_time(res: int, mode: str, batch: int, repeats: int, device: str = "cpu") -> float:
    from facelab.gan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from facelab.gan.loss import d_logistic_loss, g_nonsaturating_loss

    torch.manual_seed(0)
    ch = _channels(res)
    G = Generator(GeneratorConfig(resolution=res, z_dim=64, w_dim=128, channels=ch), mode=mode).to(
        device
    )
    D = Discriminator(DiscriminatorConfig(resolution=res, channels=ch)).to(device)
    og = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.99))
    od = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.99))
    real = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    z = torch.randn(batch, 64, device=device)

    def one() -> None:
        og.zero_grad()
        img = G(z)
        g_nonsaturating_loss(D(img)).backward()
        og.step()
        od.zero_grad()
        d_logistic_loss(D(real), D(img.detach())).backward()
        od.step()

    one()  # warm-up
    ts = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        one()
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--resolutions", default="32,64,128")
    p.add_argument("--claim", action="store_true", help="also compute the claim table")
    p.add_argument("--samples", type=int, default=256, help="claim table: samples per model")
    p.add_argument(
        "--select",
        default=None,
        help="comma-separated residual scales to score on the selection split",
    )
    p.add_argument(
        "--model", default=None, help="exported generator stem (default: the shipped one)"
    )
    p.add_argument("--steps-off", action="store_true", help="skip the step-time table")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reps = 2 if args.quick else args.repeats
    out: dict = {
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "batch": args.batch,
        "steps": [],
    }
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices if not args.steps_off else []:
        for res in [int(r) for r in args.resolutions.split(",")]:
            times = {
                m: step_time(res, m, args.batch, reps, dev) for m in ("loop", "grouped", "auto")
            }
            for m, t in times.items():
                out["steps"].append({"device": dev, "resolution": res, "modconv": m, "seconds": t,
                                     "ratio_vs_loop": times["loop"] / t})  # fmt: skip
    if not args.json and out["steps"]:
        print(f"# training step (G + D fwd/bwd/Adam), batch {args.batch}, {args.threads} thread(s), "
              f"load average {out['load_average'][0]:.1f}")  # fmt: skip
        print(f"{'device':6} {'px':>4} {'modconv':8} {'s/step':>8} {'loop/this':>9}")
        for r in out["steps"]:
            print(
                f"{r['device']:6} {r['resolution']:>4} {r['modconv']:8} {r['seconds']:8.3f} {r['ratio_vs_loop']:9.2f}"
            )
    if args.claim or args.select:
        from facelab.methods.ganfit.evaluate import (
            claim_table,
            claim_verdicts,
            detail_selection,
            fit_pca,
        )
        from facelab.methods.ganfit.texture_gan import load_texture_gan, texture_maps_cached

        G, meta = load_texture_gan(args.model)
        train = texture_maps_cached(4096, 64, 0)
        test = texture_maps_cached(512, 64, 1)
        pca = fit_pca(train, G.config.z_dim)
        name = "shipped" if args.model is None else args.model
    if args.select:
        details = [float(v) for v in args.select.split(",")]
        out["selection"] = detail_selection(G, pca, test, details, n_samples=args.samples)
        if not args.json:
            print(f"\n# selection split ({name}, step {meta['step']}): reference = held-out maps")
            print(
                f"{'model':22} {'KID-dlib':>9} {'+-':>6} {'vs PCA':>8} {'+-':>6} {'P':>5} {'R':>5} {'high-band':>9}"
            )
            for r in out["selection"]:
                vs = (f"{r['kid_vs_pca']:+8.3f} {r['kid_vs_pca_std']:6.3f}" if "kid_vs_pca" in r
                      else f"{'':8} {'':6}")  # fmt: skip
                print(f"{r['model']:22} {r['kid_dlib']:9.3f} {r['kid_dlib_std']:6.3f} {vs} "
                      f"{r['precision']:5.2f} {r['recall']:5.2f} {r['high_band_ratio']:9.2f}")  # fmt: skip
    if args.claim:
        rows = claim_table(G, pca, train, test, n_samples=args.samples)
        vs = claim_verdicts(rows)
        v_kid, v_hb = vs["kid"], vs["high_band"]
        out["claim"] = {"gan_step": meta["step"], "detail": G.detail, "rows": rows,
                        "kid_verdict": v_kid.describe(digits=3), "kid_holds": v_kid.word,
                        "high_band_verdict": v_hb.describe(), "high_band_holds": v_hb.word}  # fmt: skip
        if not args.json:
            print(
                f"\n# claim: GAN ({name}, step {meta['step']}, detail {G.detail:g}) vs PCA at the same latent size"
            )
            keys = ["recon_rmse", "recon_rmse_high", "high_band_ratio", "kid_dlib", "kid_dlib_std",
                    "fid_dlib", "precision", "recall", "diversity"]  # fmt: skip
            print(f"{'model':28} " + " ".join(f"{k:>15}" for k in keys))
            for r in rows:
                print(f"{r['model']:28} " + " ".join(f"{r[k]:15.4f}" for k in keys))
            print(f"KID-dlib, GAN - PCA per subset: {v_kid.describe(digits=3)} ({v_kid.word})")
            print(f"|log high-band ratio| per sample, GAN - PCA: {v_hb.describe()} ({v_hb.word})")
    if args.json:
        print(json.dumps(out, indent=1, default=_jsonable))
    return 0


def _jsonable(o):
    """Tensors and arrays (e.g. the claim rows' spectra) as numbers or lists."""
    if hasattr(o, "tolist"):
        return o.tolist()
    return float(o)


if __name__ == "__main__":
    raise SystemExit(main())
